"""Export/import between the hnsw and s3vectors engines: the same answers both ways; the CLI too."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pytest

from facesearch.devtools import cli
from facesearch.errors import InvalidParameterException, ResourceNotFoundException
from facesearch.store import open_store, transfer
from tests.functional.store_fixtures import MODEL, make_faces

DIM = 16


@pytest.fixture
def stores(tmp_path, s3_bucket, vector_bucket):
    """A folder store (hnsw) and an S3 store whose new collections are s3vectors."""
    return {
        "hnsw": open_store(str(tmp_path / "folder"), tmp_path / "cache-a"),
        "s3vectors": open_store(
            f"s3://{s3_bucket}/store", tmp_path / "cache-b", engine="s3vectors", vector_bucket=vector_bucket
        ),
    }


def _fill(store, collection_id: str, n: int = 300):
    store.create_collection(collection_id, face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(np.random.default_rng(11), n, DIM)
    store.add_faces(collection_id, records[:200], vectors[:200])  # two segments on hnsw
    store.add_faces(collection_id, records[200:], vectors[200:])
    store.delete_faces(collection_id, [records[5].face_id])
    store.create_user(collection_id, "alice")
    store.associate_faces(collection_id, "alice", [records[0].face_id, records[1].face_id])
    store.create_user(collection_id, "nobody")
    return records, vectors


def _answers(store, collection_id: str, queries: np.ndarray) -> dict:
    view = store.view(collection_id)
    return {
        "info": (view.info.face_count, view.info.user_count, view.info.face_model_version, view.info.dim),
        "search": [[(r.face_id, r.user_id) for r, _ in view.search(q, k=150)] for q in queries],
        "cosines": np.array([[c for _, c in view.search(q, k=150)] for q in queries]),
        "users": [[(m.user.user_id, m.face.face_id) for m in view.search_users(q, k=3)] for q in queries],
        "faces": view.list_faces(max_results=4096).items,
        "listed_users": view.list_users(max_results=10).items,
    }


@pytest.mark.parametrize("source,target", [("hnsw", "s3vectors"), ("s3vectors", "hnsw")])
def test_round_trip_between_engines_gives_the_same_answers(stores, source, target):
    records, vectors = _fill(stores[source], "src")
    lines = list(transfer.export_collection(stores[source], "src"))
    header = json.loads(lines[0])
    assert (header["engine"], header["faces"], header["users"]) == (source, 299, 2)
    assert sum(json.loads(line)["type"] == "face" for line in lines[1:]) == 299
    info = transfer.import_collection(stores[target], iter(lines), collection_id="dst", batch_faces=64)
    assert info.face_count == 299
    assert stores[target].view("dst").manifest.engine == target
    queries = vectors[[0, 7, 42]]
    before, after = _answers(stores[source], "src", queries), _answers(stores[target], "dst", queries)
    np.testing.assert_allclose(after.pop("cosines"), before.pop("cosines"), atol=1e-5)
    assert after == before
    assert records[5].face_id not in {r.face_id for r in after["faces"]}


def test_import_chooses_the_engine_it_is_asked_for(stores):
    _fill(stores["hnsw"], "src", n=30)
    lines = list(transfer.export_collection(stores["hnsw"], "src"))
    transfer.import_collection(stores["s3vectors"], iter(lines), collection_id="as-hnsw", engine="hnsw")
    assert stores["s3vectors"].view("as-hnsw").manifest.engine == "hnsw"


def test_a_bad_line_leaves_no_collection_and_no_vector_index(stores, vector_bucket):
    _fill(stores["hnsw"], "src", n=30)
    lines = list(transfer.export_collection(stores["hnsw"], "src"))
    lines.insert(5, '{"type": "face", "vector": "AAAA"}')
    with pytest.raises(InvalidParameterException, match="Line 6"):
        transfer.import_collection(stores["s3vectors"], iter(lines), collection_id="dst")
    with pytest.raises(ResourceNotFoundException):
        stores["s3vectors"].view("dst")
    assert boto3.client("s3vectors").list_indexes(vectorBucketName=vector_bucket)["indexes"] == []


def test_the_cli_exports_and_imports_through_store_locations(
    stores, tmp_path, s3_bucket, vector_bucket, capsys
):
    _fill(stores["hnsw"], "c")
    out = tmp_path / "c.jsonl"
    assert (
        cli.main(["export", "--collection", "c", "--out", str(out), "--store", str(tmp_path / "folder")]) == 0
    )
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["format"] == transfer.EXPORT_FORMAT
    assert [json.loads(line)["type"] for line in lines[-2:]] == ["user", "user"]
    target = f"s3://{s3_bucket}/store"
    argv = ["import", "--collection", "c2", "--in", str(out), "--store", target]
    assert cli.main([*argv, "--engine", "s3vectors", "--vector-bucket", vector_bucket]) == 0
    assert "299 faces, 2 users -> c2 (s3vectors)" in capsys.readouterr().err
    assert cli.main([*argv, "--engine", "s3vectors", "--vector-bucket", vector_bucket]) == 1
    assert "ResourceAlreadyExistsException" in capsys.readouterr().err
    assert cli.main(["export", "--collection", "missing", "--out", str(out), "--store", target]) == 1
