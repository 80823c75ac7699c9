"""The s3vectors engine on moto (QueryVectors: tests.support.s3vectors_query) behaves as the hnsw engine."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from facesearch.errors import (
    InternalServerError,
    ProvisionedThroughputExceededException,
    ResourceNotFoundException,
)
from facesearch.store import keys as store_keys
from facesearch.store import open_store, vectorindex
from facesearch.store.manifest import Manifest
from tests.functional.store_fixtures import MODEL, brute_force, make_faces
from tests.support import s3vectors_query

DIM = 16


class Faulty:
    """An s3vectors client that throttles chosen calls, or runs hooks around them, else is the real one."""

    def __init__(self, inner, fail=None, before=None, after=None) -> None:
        self.inner, self.calls = inner, []
        self.fail, self.before, self.after = dict(fail or {}), dict(before or {}), dict(after or {})

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def call(**params):
            self.calls.append(name)
            if self.fail.get(name, 0) > 0:
                self.fail[name] -= 1
                raise ClientError(
                    {
                        "Error": {"Code": "TooManyRequestsException", "Message": "Request rate exceeded"},
                        "ResponseMetadata": {"HTTPStatusCode": 429},
                    },
                    name,
                )
            if name in self.before:
                self.before.pop(name)()
            answer = method(**params)
            if name in self.after:
                self.after.pop(name)()
            return answer

        return call


@pytest.fixture
def open_vectors(s3_bucket, vector_bucket, tmp_path):
    def opener(client=None, **options):
        return open_store(
            f"s3://{s3_bucket}/store",
            tmp_path / "cache",
            engine=options.pop("engine", "s3vectors"),
            vector_bucket=vector_bucket,
            s3vectors_client=client or boto3.client("s3vectors"),
            **options,
        )

    return opener


def _indexes(vector_bucket: str) -> list[str]:
    return [
        i["indexName"]
        for i in boto3.client("s3vectors").list_indexes(vectorBucketName=vector_bucket)["indexes"]
    ]


def test_engine_is_recorded_and_faces_live_in_the_index(open_vectors, vector_bucket, s3_bucket):
    store = open_vectors()
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(np.random.default_rng(1), 5, DIM)
    store.add_faces("c", records, vectors)
    body = boto3.client("s3").get_object(Bucket=s3_bucket, Key="store/" + store_keys.manifest_key("c"))[
        "Body"
    ]
    document = json.loads(body.read())
    assert document["format"] == 2 and document["engine"]["name"] == "s3vectors"
    assert document["segments"] == [] and document["engine"]["vector_count"] == 5
    assert _indexes(vector_bucket) == [document["engine"]["vector_index"]]
    view = store.view("c")
    assert view.info.face_count == 5
    assert view.get_faces([records[0].face_id]) == {records[0].face_id: records[0]}
    np.testing.assert_allclose(view.get_vectors([records[1].face_id])[0], vectors[1], atol=1e-6)
    store.delete_collection("c")
    assert _indexes(vector_bucket) == []


def test_hnsw_manifests_keep_format_1_and_overrides_choose_per_collection(open_vectors):
    store = open_vectors(engine="hnsw", engine_overrides=[("big-*", "s3vectors")])
    store.create_collection("small", face_model_version=MODEL, dim=DIM)
    store.create_collection("big-1", face_model_version=MODEL, dim=DIM)
    assert store.view("small").manifest.engine == "hnsw"
    assert json.loads(store.view("small").manifest.to_json())["format"] == 1
    assert store.view("big-1").manifest.engine == "s3vectors"
    assert Manifest.from_json(store.view("big-1").manifest.to_json(), "x") == store.view("big-1").manifest


def test_a_folder_store_is_hnsw_only(tmp_path):
    store = open_store(str(tmp_path / "store"), tmp_path / "cache", engine="s3vectors", vector_bucket="v")
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    assert store.view("c").manifest.engine == "hnsw"


def test_s3vectors_without_a_vector_bucket_is_a_server_error(s3_bucket, tmp_path):
    store = open_store(f"s3://{s3_bucket}/store", tmp_path / "cache", engine="s3vectors")
    with pytest.raises(InternalServerError):
        store.create_collection("c", face_model_version=MODEL, dim=DIM)


def test_cosine_distance_maps_to_the_same_cosine_as_hnsw(open_vectors):
    """S3 Vectors answers cosine distance (1 - cosine); the store turns it back into the cosine that
    Similarity is computed from, equal to the hnsw engine's for the same faces."""
    records, vectors = make_faces(np.random.default_rng(2), 40, DIM)
    query = make_faces(np.random.default_rng(3), 1, DIM)[1][0]
    answers = {}
    for name in ("hnsw", "s3vectors"):
        store = open_vectors(engine=name)
        store.create_collection(name, face_model_version=MODEL, dim=DIM)
        store.add_faces(name, records, vectors)
        answers[name] = [(r.face_id, c) for r, c in store.view(name).search(query, k=10)]
    exact = vectors @ query
    by_id = {r.face_id: i for i, r in enumerate(records)}
    assert [face_id for face_id, _ in answers["s3vectors"]] == [face_id for face_id, _ in answers["hnsw"]]
    for (face_id, cosine), (_, hnsw_cosine) in zip(answers["s3vectors"], answers["hnsw"], strict=True):
        assert cosine == pytest.approx(float(exact[by_id[face_id]]), abs=1e-5)
        assert cosine == pytest.approx(hnsw_cosine, abs=1e-5)
    same = open_vectors().view("s3vectors").search(vectors[0], k=1)[0][1]
    assert same <= 1.0 and same == pytest.approx(1.0, abs=1e-6)


def test_searches_wider_than_100_are_split_into_queries_of_at_most_100(open_vectors):
    store = open_vectors()
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(np.random.default_rng(4), 600, DIM)
    store.add_faces("c", records, vectors)
    ids = [r.face_id for r in records]
    query = vectors[7]
    s3vectors_query.TOP_K_SEEN.clear()
    hits = store.view("c").search(query, k=450)
    assert [r.face_id for r, _ in hits] == brute_force(ids, vectors, query, 450)
    assert max(s3vectors_query.TOP_K_SEEN) == vectorindex.QUERY_TOP_K_MAX
    assert len(s3vectors_query.TOP_K_SEEN) > 1
    # A threshold the 100 nearest already cross answers with one query.
    s3vectors_query.TOP_K_SEEN.clear()
    threshold = float(np.sort(vectors @ query)[-50])
    hits = store.view("c").search(query, k=450, min_cosine=threshold)
    assert len(hits) == 50 and len(s3vectors_query.TOP_K_SEEN) == 1
    with pytest.raises(ClientError, match="topK"):  # the test service refuses what AWS refuses
        boto3.client("s3vectors").query_vectors(
            vectorBucketName=store.vectors.bucket,
            indexName=store.view("c").manifest.vector_index,
            topK=101,
            queryVector={"float32": query.tolist()},
        )


def test_throttled_writes_are_retried_and_nothing_is_lost(open_vectors, monkeypatch):
    monkeypatch.setattr(vectorindex, "_BACKOFF_BASE", 0.001)
    client = Faulty(boto3.client("s3vectors"), fail={"put_vectors": 3})
    store = open_vectors(client)
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(np.random.default_rng(5), 1200, DIM)
    store.add_faces("c", records, vectors)
    assert client.calls.count("put_vectors") == 3 + 3  # three batches of <= 500, three throttled attempts
    assert store.view("c").info.face_count == 1200
    listed = store.view("c").list_faces(max_results=4096).items
    assert sorted(r.face_id for r in listed) == sorted(r.face_id for r in records)


def test_throttling_that_never_ends_fails_the_write_without_counting_it(open_vectors, monkeypatch):
    monkeypatch.setattr(vectorindex, "_BACKOFF_BASE", 0.001)
    client = Faulty(boto3.client("s3vectors"), fail={"put_vectors": vectorindex.MAX_ATTEMPTS})
    store = open_vectors(client)
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(np.random.default_rng(6), 3, DIM)
    with pytest.raises(ProvisionedThroughputExceededException):
        store.add_faces("c", records, vectors)
    assert store.view("c").info.face_count == 0


@pytest.mark.parametrize("recreate", [False, True], ids=["deleted", "recreated"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_collection_deleted_while_a_write_is_in_flight(open_vectors, vector_bucket, when, recreate):
    """Deleted before PutVectors reaches its index, or after the vectors landed but before the manifest
    swap: the write fails with ResourceNotFoundException and nothing reaches a re-created collection."""
    other = open_vectors()
    other.create_collection("c", face_model_version=MODEL, dim=DIM)

    def delete():
        other.delete_collection("c")
        if recreate:
            other.create_collection("c", face_model_version=MODEL, dim=DIM)

    client = Faulty(boto3.client("s3vectors"), **{when: {"put_vectors": delete}})
    store = open_vectors(client)
    records, vectors = make_faces(np.random.default_rng(7), 4, DIM)
    with pytest.raises(ResourceNotFoundException):
        store.add_faces("c", records, vectors)
    assert "put_vectors" in client.calls
    if recreate:
        fresh = open_vectors().view("c")
        assert fresh.info.face_count == 0
        assert fresh.list_faces(max_results=10).items == ()
        assert fresh.search(vectors[0], k=4) == []
        assert _indexes(vector_bucket) == [fresh.manifest.vector_index]
    else:
        assert _indexes(vector_bucket) == []


def test_delete_faces_removes_vectors_and_uncounts_them(open_vectors):
    store = open_vectors()
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(np.random.default_rng(8), 10, DIM)
    store.add_faces("c", records, vectors)
    store.create_user("c", "u")
    store.associate_faces("c", "u", [records[2].face_id])
    result = store.delete_faces("c", [records[0].face_id, records[2].face_id, "missing"])
    assert result.deleted == (records[0].face_id,)
    assert [f.reasons for f in result.unsuccessful] == [
        ("ASSOCIATED_TO_AN_EXISTING_USER",),
        ("FACE_NOT_FOUND",),
    ]
    view = store.view("c")
    assert view.info.face_count == 9 and not view.manifest.tombstones and view.manifest.vector_count == 9
    index = view.manifest.vector_index
    assert records[0].face_id not in set(store.vectors.keys(index))
    assert store.delete_faces("c", [records[0].face_id]).deleted == ()


def test_search_users_finds_users_among_many_faces_without_users(open_vectors):
    store = open_vectors()
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(np.random.default_rng(9), 400, DIM)
    store.add_faces("c", records, vectors)
    store.create_user("c", "far")
    # The user's face is the one farthest from the query: 399 faces without a user are nearer.
    query = vectors[0]
    farthest = int(np.argmin(vectors @ query))
    store.associate_faces("c", "far", [records[farthest].face_id])
    matches = store.view("c").search_users(query, k=5)
    assert [m.user.user_id for m in matches] == ["far"]
    assert matches[0].face.face_id == records[farthest].face_id
    assert matches[0].cosine == pytest.approx(float(vectors[farthest] @ query), abs=1e-5)
    # Disassociated: the stale hint on the vector is filtered through the manifest.
    store.disassociate_faces("c", "far", [records[farthest].face_id])
    assert store.view("c").search_users(query, k=5) == []


def test_list_faces_pages_sorted_with_tokens(open_vectors):
    store = open_vectors()
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(np.random.default_rng(10), 25, DIM)
    store.add_faces("c", records, vectors)
    seen, token = [], None
    while True:
        page = store.view("c").list_faces(max_results=7, next_token=token)
        seen += [r.face_id for r in page.items]
        token = page.next_token
        if token is None:
            break
    assert seen == sorted(r.face_id for r in records)
    chosen = sorted(r.face_id for r in records[:3])
    assert [r.face_id for r in store.view("c").list_faces(max_results=10, face_ids=chosen).items] == chosen
