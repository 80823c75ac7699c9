"""CollectionStore on both backends (folder; S3 on a moto server): collections, faces, users, errors."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import numpy as np
import pytest

from facesearch.domain import (
    REASON_ASSOCIATED_TO_A_DIFFERENT_USER,
    REASON_ASSOCIATED_TO_AN_EXISTING_USER,
    REASON_FACE_NOT_FOUND,
    REASON_LOW_MATCH_CONFIDENCE,
    USER_STATUS_ACTIVE,
    USER_STATUS_CREATED,
)
from facesearch.errors import (
    ConflictException,
    InvalidPaginationTokenException,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)
from facesearch.store import CorruptSegmentError, ManifestFormatError, keys, open_store
from facesearch.store.changes import MAX_FACES_PER_USER
from facesearch.store.manifest import FORMAT_VERSION
from tests.functional.store_fixtures import MODEL, InstrumentedBlobs, fresh_store, make_faces

DIM = 16


@pytest.fixture
def store(store_location, tmp_path):
    return open_store(store_location, tmp_path / "cache")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def test_create_describe_list_delete_collection(store):
    before = datetime.now(UTC)
    info = store.create_collection("faces-1", face_model_version=MODEL, dim=DIM)
    assert (info.collection_id, info.face_model_version, info.dim, info.face_count, info.user_count) == (
        "faces-1",
        MODEL,
        DIM,
        0,
        0,
    )
    assert info.created_at.tzinfo is not None
    assert abs((info.created_at - before).total_seconds()) < 60
    assert store.view("faces-1").info == info
    store.create_collection("faces-0", face_model_version=MODEL, dim=DIM)
    assert [c.collection_id for c in store.list_collections(max_results=10).items] == ["faces-0", "faces-1"]
    store.delete_collection("faces-1")
    with pytest.raises(ResourceNotFoundException) as error:
        store.view("faces-1")
    assert error.value.code == "ResourceNotFoundException"
    assert error.value.message == "The collection id: faces-1 does not exist"
    assert [c.collection_id for c in store.list_collections(max_results=10).items] == ["faces-0"]


def test_create_existing_collection_is_refused(store):
    store.create_collection("dup", face_model_version=MODEL, dim=DIM)
    with pytest.raises(ResourceAlreadyExistsException) as error:
        store.create_collection("dup", face_model_version="other", dim=DIM * 2)
    assert error.value.message == "The collection id: dup already exists"
    assert store.view("dup").info.dim == DIM


def test_operations_on_missing_collection(store, rng):
    records, vectors = make_faces(rng, 2, DIM)
    calls = [
        lambda: store.delete_collection("nope"),
        lambda: store.add_faces("nope", records, vectors),
        lambda: store.delete_faces("nope", [records[0].face_id]),
        lambda: store.view("nope").list_faces(max_results=5),
        lambda: store.view("nope").search(vectors[0], k=3),
        lambda: store.create_user("nope", "u"),
        lambda: store.view("nope").list_users(max_results=5),
        lambda: store.view("nope").search_users(vectors[0], k=3),
    ]
    for call in calls:
        with pytest.raises(ResourceNotFoundException) as error:
            call()
        assert error.value.message == "The collection id: nope does not exist"


def test_collection_ids_with_dots_stay_inside_the_store(store, rng):
    for collection_id in ("..", ".", ".hidden", "a.b"):
        store.create_collection(collection_id, face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(rng, 3, DIM)
    store.add_faces("..", records, vectors)
    listed = [c.collection_id for c in store.list_collections(max_results=10).items]
    assert listed == [".", "..", ".hidden", "a.b"]
    assert store.view("..").info.face_count == 3
    assert store.view(".").info.face_count == 0


def test_list_collections_pages_are_stable_and_tokens_checked(store):
    ids = [f"c{i:02d}" for i in range(7)]
    for collection_id in ids:
        store.create_collection(collection_id, face_model_version=MODEL, dim=DIM)
    seen, token = [], None
    page = store.list_collections(max_results=3)
    seen += [c.collection_id for c in page.items]
    store.create_collection(
        "c00a", face_model_version=MODEL, dim=DIM
    )  # sorts before the token: not re-listed
    while page.next_token:
        page = store.list_collections(max_results=3, next_token=page.next_token)
        seen += [c.collection_id for c in page.items]
    assert seen == ids
    with pytest.raises(InvalidPaginationTokenException) as error:
        store.list_collections(max_results=3, next_token="not-a-token")
    assert error.value.message == "Invalid Token"
    token = store.list_collections(max_results=1).next_token
    with pytest.raises(InvalidPaginationTokenException):
        store.view("c00").list_users(max_results=1, next_token=token)
    assert token is not None and len(token) <= 255


def test_long_collection_ids_paginate_within_the_token_limit(store):
    ids = sorted(["x" * 255, "x" * 254 + "y", "x" * 200])
    for collection_id in ids:
        store.create_collection(collection_id, face_model_version=MODEL, dim=DIM)
    seen, token = [], None
    while True:
        page = store.list_collections(max_results=1, next_token=token)
        seen += [c.collection_id for c in page.items]
        token = page.next_token
        assert token is None or len(token) <= 255
        if token is None:
            break
    assert seen == ids


def test_add_search_get_delete_faces(store, rng):
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(rng, 40, DIM)
    store.add_faces("c", records[:25], vectors[:25])
    store.add_faces("c", records[25:], vectors[25:])
    assert store.view("c").info.face_count == 40
    hits = store.view("c").search(vectors[30], k=3)
    assert hits[0][0] == records[30]
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [c for _, c in hits] == sorted((c for _, c in hits), reverse=True)
    got = store.view("c").get_faces([records[1].face_id, "00000000-0000-4000-8000-000000000000"])
    assert got == {records[1].face_id: records[1]}
    np.testing.assert_allclose(store.view("c").get_vectors([records[2].face_id]), vectors[2:3], atol=1e-6)
    result = store.delete_faces(
        "c", [records[30].face_id, records[30].face_id, "00000000-0000-4000-8000-00000000dead"]
    )
    assert result.deleted == (records[30].face_id,)
    assert [(u.face_id, u.reasons) for u in result.unsuccessful] == [
        ("00000000-0000-4000-8000-00000000dead", (REASON_FACE_NOT_FOUND,))
    ]
    assert store.view("c").info.face_count == 39
    assert records[30].face_id not in {r.face_id for r, _ in store.view("c").search(vectors[30], k=40)}
    assert store.view("c").get_faces([records[30].face_id]) == {}
    again = store.delete_faces("c", [records[30].face_id])
    assert again.deleted == () and again.unsuccessful[0].reasons == (REASON_FACE_NOT_FOUND,)
    with pytest.raises(ResourceNotFoundException) as error:
        store.view("c").get_vectors([records[30].face_id])
    assert error.value.message == f"The face id: {records[30].face_id} does not exist in the collection c"


def test_search_edge_cases(store, rng):
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(rng, 5, DIM)
    assert store.view("c").search(vectors[0], k=10) == []
    store.add_faces("c", records, vectors)
    hits = store.view("c").search(vectors[0], k=100)
    assert sorted(r.face_id for r, _ in hits) == sorted(r.face_id for r in records)
    assert all(c >= 0.5 for _, c in store.view("c").search(vectors[0], k=100, min_cosine=0.5))
    assert store.view("c").search(vectors[0], k=100, min_cosine=0.5)[0][0] == records[0]
    assert store.view("c").search(vectors[0], k=1, face_model_version=MODEL)[0][0] == records[0]
    with pytest.raises(InvalidParameterException) as error:
        store.view("c").search(vectors[0], k=1, face_model_version="other-model")
    assert error.value.message == (
        "The query was embedded with face model other-model; the collection c uses face model test-model-1."
    )
    with pytest.raises(InvalidParameterException) as error:
        store.view("c").search(vectors[0][:4], k=1)
    assert "do not match the collection c's dimension 16" in error.value.message
    with pytest.raises(InvalidParameterException) as error:
        store.view("c").search(vectors[0], k=0)
    assert error.value.message == "k must be at least 1, got 0."
    store.delete_faces("c", [r.face_id for r in records])
    assert store.view("c").search(vectors[0], k=3) == []
    assert store.view("c").info.face_count == 0


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (
            np.ones((2, DIM + 1), np.float32),
            "do not match the collection c's dimension 16 (face model test-model-1)",
        ),
        (np.zeros((2, DIM), np.float32), "Vectors must be finite and non-zero."),
        (np.full((2, DIM), np.nan, np.float32), "Vectors must be finite and non-zero."),
        (np.ones((3, DIM), np.float32), "Got 3 vectors for 2 face records."),
    ],
)
def test_add_faces_rejects_bad_vectors_and_writes_nothing(
    store, store_location, tmp_path, rng, vectors, message
):
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, _ = make_faces(rng, 2, DIM)
    counting = InstrumentedBlobs(store.blobs)
    store.blobs = counting
    with pytest.raises(InvalidParameterException) as error:
        store.add_faces("c", records, vectors)
    assert message in error.value.message
    assert counting.writes == 0
    assert store.view("c").info.face_count == 0


def test_add_faces_rejects_another_model_version(store, rng):
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(rng, 2, DIM, model="other-model")
    with pytest.raises(InvalidParameterException) as error:
        store.add_faces("c", records, vectors)
    assert error.value.message == (
        "Face model version other-model does not match the collection c's face model version test-model-1."
    )
    records, vectors = make_faces(rng, 2, DIM)
    with pytest.raises(InvalidParameterException) as error:
        store.add_faces("c", [records[0], records[0]], vectors)
    assert error.value.message == "Face ids must be unique."


def test_list_faces_pagination_is_stable_and_filtered(store, rng):
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    store.create_collection("d", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(rng, 23, DIM)
    store.add_faces("c", records[:20], vectors[:20])
    first = store.view("c").list_faces(max_results=8)
    assert [r.face_id for r in first.items] == sorted(r.face_id for r in records[:20])[:8]
    store.add_faces("c", records[20:], vectors[20:])  # concurrent insert between pages
    seen = list(first.items)
    token = first.next_token
    while token:
        page = store.view("c").list_faces(max_results=8, next_token=token)
        seen += page.items
        token = page.next_token
    ids = [r.face_id for r in seen]
    assert len(ids) == len(set(ids))
    assert set(ids) >= {r.face_id for r in records[:20]}
    assert ids == sorted(ids)
    chosen = [records[3].face_id, records[5].face_id, "00000000-0000-4000-8000-000000000000"]
    assert {r.face_id for r in store.view("c").list_faces(max_results=10, face_ids=chosen).items} == set(
        chosen[:2]
    )
    with pytest.raises(InvalidPaginationTokenException):
        store.view("d").list_faces(max_results=8, next_token=first.next_token)
    with pytest.raises(InvalidPaginationTokenException):
        store.view("c").list_faces(max_results=8, next_token=first.next_token, user_id="someone")
    with pytest.raises(InvalidParameterException) as error:
        store.view("c").list_faces(max_results=0)
    assert error.value.message == "MaxResults must be at least 1, got 0."


def test_users_lifecycle(store, rng):
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(rng, 6, DIM)
    store.add_faces("c", records, vectors)
    ids = [r.face_id for r in records]
    store.create_user("c", "alice")
    store.create_user("c", "bob")
    with pytest.raises(ConflictException) as error:
        store.create_user("c", "alice")
    assert error.value.message == "The user id: alice already exists in the collection c"
    assert [(u.user_id, u.user_status) for u in store.view("c").list_users(max_results=10).items] == [
        ("alice", USER_STATUS_CREATED),
        ("bob", USER_STATUS_CREATED),
    ]
    result = store.associate_faces("c", "alice", [ids[0], ids[1], "00000000-0000-4000-8000-000000000000"])
    assert result.associated == (ids[0], ids[1])
    assert result.user_status == USER_STATUS_ACTIVE
    assert [(u.face_id, u.reasons) for u in result.unsuccessful] == [
        ("00000000-0000-4000-8000-000000000000", (REASON_FACE_NOT_FOUND,))
    ]
    again = store.associate_faces("c", "alice", [ids[0]])
    assert again.associated == () and again.unsuccessful == ()
    stolen = store.associate_faces("c", "bob", [ids[0], ids[2]])
    assert stolen.associated == (ids[2],)
    assert [(u.face_id, u.user_id, u.reasons) for u in stolen.unsuccessful] == [
        (ids[0], "alice", (REASON_ASSOCIATED_TO_A_DIFFERENT_USER,))
    ]
    assert store.view("c").get_faces([ids[0]])[ids[0]].user_id == "alice"
    assert {r.face_id for r in store.view("c").list_faces(max_results=10, user_id="alice").items} == {
        ids[0],
        ids[1],
    }
    assert store.view("c").list_faces(max_results=10, user_id="nobody").items == ()
    refused = store.delete_faces("c", [ids[0], ids[5]])
    assert refused.deleted == (ids[5],)
    assert [(u.face_id, u.user_id, u.reasons) for u in refused.unsuccessful] == [
        (ids[0], "alice", (REASON_ASSOCIATED_TO_AN_EXISTING_USER,))
    ]
    matches = store.view("c").search_users(vectors[1], k=5, min_cosine=-1.0)
    assert matches[0].user.user_id == "alice"
    assert matches[0].face.face_id == ids[1] and matches[0].cosine == pytest.approx(1.0, abs=1e-5)
    assert {m.user.user_id for m in matches} == {"alice", "bob"}
    dis = store.disassociate_faces("c", "alice", [ids[1], ids[2], ids[3], ids[5]])
    assert dis.disassociated == (ids[1],)
    assert [(u.face_id, u.user_id, u.reasons) for u in dis.unsuccessful] == [
        (ids[2], "bob", (REASON_ASSOCIATED_TO_A_DIFFERENT_USER,)),
        (ids[5], "alice", (REASON_FACE_NOT_FOUND,)),
    ]
    assert dis.user_status == USER_STATUS_ACTIVE
    store.delete_user("c", "alice")
    with pytest.raises(ResourceNotFoundException) as error:
        store.delete_user("c", "alice")
    assert error.value.message == "The user id: alice does not exist in the collection c"
    with pytest.raises(ResourceNotFoundException):
        store.associate_faces("c", "alice", [ids[0]])
    assert store.view("c").get_faces([ids[0]])[ids[0]].user_id is None
    assert store.delete_faces("c", [ids[0]]).deleted == (ids[0],)
    assert store.view("c").info.user_count == 1


def test_associate_refuses_low_match_and_quota(store, rng):
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(rng, MAX_FACES_PER_USER + 2, DIM)
    near = vectors[0] + 0.05 * vectors[1]
    records_near, _ = make_faces(rng, 1, DIM)
    store.add_faces("c", records + records_near, np.vstack([vectors, near[None, :]]))
    store.create_user("c", "u")
    store.associate_faces("c", "u", [records[0].face_id])
    result = store.associate_faces("c", "u", [records_near[0].face_id, records[1].face_id], min_cosine=0.9)
    assert result.associated == (records_near[0].face_id,)
    low = result.unsuccessful[0]
    assert (low.face_id, low.reasons) == (records[1].face_id, (REASON_LOW_MATCH_CONFIDENCE,))
    assert low.cosine == pytest.approx(float(vectors[1] @ vectors[0]), abs=1e-5)
    ids = [r.face_id for r in records[2 : MAX_FACES_PER_USER + 2]]
    with pytest.raises(ServiceQuotaExceededException) as error:
        store.associate_faces("c", "u", ids)
    assert error.value.message == (
        "The user id: u has 2 faces; associating 100 more would exceed the limit of 100 faces per user."
    )
    assert len(store.view("c").list_users(max_results=5).items[0].face_ids) == 2


def test_list_users_pagination(store):
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    names = [f"user-{i:02d}" for i in range(11)]
    for name in names:
        store.create_user("c", name)
    seen, token = [], None
    while True:
        page = store.view("c").list_users(max_results=4, next_token=token)
        seen += [u.user_id for u in page.items]
        token = page.next_token
        if token is None:
            break
    assert seen == names


def test_newer_manifest_format_is_refused_clearly(store, store_location, tmp_path):
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    got = store.blobs.get("collections/c/manifest.json")
    document = json.loads(got.body)
    document["format"] = FORMAT_VERSION + 1
    store.blobs.put_if_match("collections/c/manifest.json", json.dumps(document).encode(), got.etag)
    with pytest.raises(ManifestFormatError) as error:
        fresh_store(store_location, tmp_path / "cache2").view("c")
    assert error.value.code == "InternalServerError"
    assert error.value.message == (
        f"The manifest of collection c has format version {FORMAT_VERSION + 1}; this FaceSearch reads "
        f"versions up to {FORMAT_VERSION}. Upgrade FaceSearch to read this collection."
    )


@pytest.mark.parametrize("ext", ["bin", "json"])
def test_corrupt_segment_is_refused_cleanly(store, store_location, tmp_path, rng, ext):
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(rng, 10, DIM)
    store.add_faces("c", records[:5], vectors[:5])
    store.add_faces("c", records[5:], vectors[5:])
    segment = json.loads(store.blobs.get("collections/c/manifest.json").body)["segments"][0]["id"]
    key = f"collections/c/segments/{segment}.{ext}"
    body = bytearray(store.blobs.get(key).body)
    body[len(body) // 2] ^= 0xFF
    store.blobs.delete(key)
    store.blobs.put_if_absent(key, bytes(body))
    cold = fresh_store(store_location, tmp_path / "cold-cache")
    assert cold.view("c").info.face_count == 10  # the manifest alone still answers
    with pytest.raises(CorruptSegmentError) as error:
        cold.view("c").search(vectors[0], k=3)
    assert error.value.code == "InternalServerError"
    assert error.value.message.startswith(
        f"Collection c cannot be read: Segment object {key} is corrupt: its sha256"
    )
    # The warm store verified its copy when it wrote it; it keeps answering.
    assert store.view("c").search(vectors[7], k=1)[0][0] == records[7]


def test_get_store_uses_settings(monkeypatch, tmp_path, store_location):
    from facesearch.settings import ENV_CACHE_DIR, ENV_STORE
    from facesearch.store import get_store

    monkeypatch.setenv(ENV_STORE, store_location)
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "settings-cache"))
    store = get_store()
    assert store is get_store()
    assert store.blobs.location.rstrip("/").endswith(store_location.rstrip("/").rsplit("/", 1)[-1])
    store.create_collection("via-settings", face_model_version=MODEL, dim=DIM)
    assert open_store(store_location, tmp_path / "c2").view("via-settings").info.dim == DIM


def test_records_are_plain_dataclasses(store, rng):
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(rng, 1, DIM)
    store.add_faces("c", records, vectors)
    assert dataclasses.asdict(store.view("c").list_faces(max_results=1).items[0]) == dataclasses.asdict(
        records[0]
    )


def test_collection_objects_other_than_segments_survive_gc_and_go_with_the_collection(store, rng):
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    store.add_faces("c", *make_faces(rng, 3, DIM))
    record = keys.collection_key("c", "idempotency/token.json")
    stray = keys.segments_prefix("c") + "README.txt"
    for key in (record, stray):
        store.blobs.put_if_absent(key, b"{}")
    assert store.collect_garbage("c", grace_seconds=0) == []
    assert {info.key for info in store.blobs.list(keys.collection_prefix("c"))} >= {record, stray}
    store.delete_collection("c")
    assert store.blobs.list(keys.collection_prefix("c")) == []
    assert store.list_collections(max_results=10).items == ()
