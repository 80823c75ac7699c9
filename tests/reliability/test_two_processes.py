"""Two `facesearch serve` processes on one folder store: ClientRequestToken races, concurrent writers with
exact final counts, DeleteCollection racing writes with an exact final state."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.reliability.conftest import rekognition, serving

pytestmark = pytest.mark.reliability

CLIENTS = 8
USERS_PER_WRITER = 6


def error_code(call, **params) -> str | None:
    try:
        call(**params)
    except ClientError as error:
        return error.response["Error"]["Code"]
    return None


def all_users(client, collection_id: str) -> list[str]:
    users, token = [], None
    while True:
        page = client.list_users(
            CollectionId=collection_id, MaxResults=500, **({"NextToken": token} if token else {})
        )
        users += [user["UserId"] for user in page["Users"]]
        token = page.get("NextToken")
        if not token:
            return sorted(users)


def test_one_token_across_two_processes(tmp_path, report):
    with serving(tmp_path / "store", count=2) as servers:
        # Default retries: a same-token caller that waits too long gets ThrottlingException, which is retried.
        clients = [rekognition(servers[i % 2].url, attempts=5) for i in range(CLIENTS)]
        clients[0].create_collection(CollectionId="race")
        barrier = threading.Barrier(CLIENTS)

        def create(client) -> dict:
            barrier.wait()
            answer = client.create_user(CollectionId="race", UserId="alice", ClientRequestToken="one-token")
            return {k: v for k, v in answer.items() if k != "ResponseMetadata"}

        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(create, clients))
        # Had CreateUser run twice, the second run would have answered ConflictException.
        assert answers == [{}] * CLIENTS
        mismatches = [
            error_code(client.create_user, CollectionId="race", UserId="bob", ClientRequestToken="one-token")
            for client in clients[:2]
        ]
        assert mismatches == ["IdempotentParameterMismatchException"] * 2
        assert all_users(clients[1], "race") == ["alice"]  # bob was never created
    report("two_processes", token_race_clients=CLIENTS, token_race_runs=1, token_mismatch_refused=2)


def test_concurrent_writers_exact_counts(tmp_path, report):
    with serving(tmp_path / "store", count=2) as servers:
        clients = [rekognition(servers[i % 2].url, attempts=5) for i in range(CLIENTS)]
        clients[0].create_collection(CollectionId="writers")

        def write(index: int) -> int:
            for n in range(USERS_PER_WRITER):
                clients[index].create_user(CollectionId="writers", UserId=f"w{index}-u{n}")
            return USERS_PER_WRITER

        with ThreadPoolExecutor(CLIENTS) as pool:
            written = sum(pool.map(write, range(CLIENTS)))
        expected = sorted(f"w{i}-u{n}" for i in range(CLIENTS) for n in range(USERS_PER_WRITER))
        assert written == len(expected)
        for client in clients[:2]:  # both processes see the same, exact set
            assert all_users(client, "writers") == expected
    report("two_processes", concurrent_writers=CLIENTS, concurrent_writes=len(expected), writes_lost=0)


def test_delete_collection_racing_writes(tmp_path, report):
    store = tmp_path / "store"
    with serving(store, count=2) as servers:
        writer_clients = [rekognition(servers[i % 2].url) for i in range(4)]
        deleter = rekognition(servers[1].url)
        deleter.create_collection(CollectionId="doomed")
        outcomes: dict[str, list[str]] = {"ok": [], "not_found": [], "other": []}
        lock = threading.Lock()
        started = threading.Barrier(5)

        def write(index: int) -> None:
            started.wait()
            for n in range(15):
                user = f"w{index}-{n}"
                code = error_code(writer_clients[index].create_user, CollectionId="doomed", UserId=user)
                kind = (
                    "ok" if code is None else "not_found" if code == "ResourceNotFoundException" else "other"
                )
                with lock:
                    outcomes[kind].append(f"{user}:{code}")

        def delete() -> None:
            started.wait()
            threading.Event().wait(0.3)
            deleter.delete_collection(CollectionId="doomed")

        with ThreadPoolExecutor(5) as pool:
            for future in [*(pool.submit(write, i) for i in range(4)), pool.submit(delete)]:
                future.result()
        assert outcomes["other"] == []
        assert error_code(deleter.describe_collection, CollectionId="doomed") == "ResourceNotFoundException"
        assert "doomed" not in deleter.list_collections()["CollectionIds"]
        leftovers = [p for p in (store / "collections").rglob("*") if p.is_file() and "doomed" in str(p)]
        assert leftovers == []  # no write resurrected part of the deleted collection
        # A new incarnation starts empty: nothing a racing write did survives into it.
        deleter.create_collection(CollectionId="doomed")
        assert all_users(writer_clients[0], "doomed") == []
    report(
        "two_processes",
        delete_race_writes_acknowledged=len(outcomes["ok"]),
        delete_race_writes_refused_not_found=len(outcomes["not_found"]),
        delete_race_leftover_objects=0,
    )
