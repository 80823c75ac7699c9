"""ClientRequestToken: claimed before the operation runs, replayed after, released on error, taken over after
a crash; records live under the collection's prefix (both store backends)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from facesearch.errors import (
    ConflictException,
    IdempotentParameterMismatchException,
    ResourceNotFoundException,
    ThrottlingException,
)
from facesearch.operations import idempotency
from facesearch.protocol.context import RequestContext
from facesearch.protocol.dispatch import dispatch
from facesearch.settings import ENV_STORE
from facesearch.store import get_store
from facesearch.store.keys import collection_prefix

CONTEXT = RequestContext(request_id="test", region="us-east-1", account_id="000000000000")
COLLECTION = "tokens"
MODEL = "1.0"


@pytest.fixture
def store(store_location, monkeypatch):
    monkeypatch.setenv(ENV_STORE, store_location)
    get_store().create_collection(COLLECTION, face_model_version=MODEL, dim=8)
    return get_store()


def create_user(user_id: str, token: str = "token-1") -> dict:
    params = {"CollectionId": COLLECTION, "UserId": user_id, "ClientRequestToken": token}
    return dispatch("CreateUser", params, CONTEXT)


def users(store) -> list[str]:
    return [user.user_id for user in store.view(COLLECTION).list_users(max_results=100).items]


def record_keys(store) -> list[str]:
    return [info.key for info in store.blobs.list(collection_prefix(COLLECTION) + "idempotency/")]


def test_same_token_replays_and_other_parameters_are_refused_before_anything_runs(store):
    assert create_user("alice") == {}
    assert create_user("alice") == {}  # replayed: a second CreateUser of alice would be a conflict
    with pytest.raises(IdempotentParameterMismatchException):
        create_user("bob")
    assert users(store) == ["alice"]  # bob was not created (it was, before the token was claimed first)


def test_records_live_under_the_collection_and_go_with_it(store):
    create_user("alice")
    (key,) = record_keys(store)
    assert key.startswith(f"collections/{COLLECTION}/idempotency/") and key.endswith(".json")
    assert json.loads(store.blobs.get(key).body)["state"] == idempotency.COMPLETED
    store.delete_collection(COLLECTION)
    assert list(store.blobs.list(collection_prefix(COLLECTION))) == []


def test_a_recreated_collection_starts_with_no_tokens(store):
    create_user("alice")
    store.delete_collection(COLLECTION)
    store.create_collection(COLLECTION, face_model_version=MODEL, dim=8)
    create_user("bob")  # same token, other parameters: a new incarnation, so no mismatch
    assert users(store) == ["bob"]


def test_an_error_answer_releases_the_token_for_a_retry(store):
    params = {"CollectionId": COLLECTION, "UserId": "carol", "ClientRequestToken": "token-9"}
    with pytest.raises(ResourceNotFoundException):
        dispatch("DeleteUser", params, CONTEXT)
    (key,) = record_keys(store)
    assert json.loads(store.blobs.get(key).body)["state"] == idempotency.RELEASED
    store.create_user(COLLECTION, "carol")
    assert dispatch("DeleteUser", params, CONTEXT) == {}  # ran again rather than replaying the error
    assert users(store) == []


def _write_claim(store, params: dict, operation: str, *, expires_in: float) -> str:
    created = store.view(COLLECTION).info.created_at.isoformat()
    key = idempotency.record_key(operation, COLLECTION, created, params["ClientRequestToken"])
    claim = idempotency.Record(
        idempotency.IN_PROGRESS, idempotency.fingerprint(params), time.time() + expires_in
    )
    store.blobs.put_if_absent(key, claim.body())
    return key


def test_a_crash_between_the_change_and_the_record_does_not_turn_the_retry_into_a_conflict(store):
    params = {"CollectionId": COLLECTION, "UserId": "dave", "ClientRequestToken": "token-crash"}
    # The first attempt claimed the token, created the user, and died before completing the record.
    store.create_user(COLLECTION, "dave")
    _write_claim(store, params, "CreateUser", expires_in=-1.0)
    assert dispatch("CreateUser", params, CONTEXT) == {}
    assert users(store) == ["dave"]
    # Without a takeover (no token) the same call is the conflict it should be.
    with pytest.raises(ConflictException):
        dispatch("CreateUser", {k: v for k, v in params.items() if k != "ClientRequestToken"}, CONTEXT)


def test_a_claim_in_progress_makes_the_same_token_wait_then_answer_retryable(store, monkeypatch):
    monkeypatch.setattr(idempotency, "WAIT_FOR_CLAIM_SECONDS", 0.3)
    params = {"CollectionId": COLLECTION, "UserId": "erin", "ClientRequestToken": "token-held"}
    _write_claim(store, params, "CreateUser", expires_in=60.0)
    with pytest.raises(ThrottlingException):
        dispatch("CreateUser", params, CONTEXT)
    with pytest.raises(IdempotentParameterMismatchException):
        dispatch("CreateUser", {**params, "UserId": "frank"}, CONTEXT)
    assert users(store) == []  # neither ran while the token was held


def test_concurrent_same_token_requests_run_once_and_all_get_the_answer(store):
    results, errors = [], []

    def call() -> None:
        try:
            results.append(create_user("gina", token="token-race"))
        except Exception as exc:  # any error fails the test below, with its type
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == [{}] * 8
    assert users(store) == ["gina"]


def test_requests_without_a_token_write_no_record(store):
    dispatch("CreateUser", {"CollectionId": COLLECTION, "UserId": "hal"}, CONTEXT)
    assert record_keys(store) == []
