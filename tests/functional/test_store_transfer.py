"""Export to versioned JSON Lines and import back: same faces, vectors, users, index parameters, answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facesearch.errors import InvalidParameterException, ResourceNotFoundException
from facesearch.store import open_store
from facesearch.store.manifest import IndexParams
from facesearch.store.transfer import EXPORT_FORMAT, EXPORT_VERSION, export_collection, import_collection
from tests.functional.store_fixtures import MODEL, make_faces

DIM = 12
PARAMS = IndexParams(space="cosine", dim=DIM, m=8, ef_construction=64, ef=40)


def _all_faces(view):
    faces, token = [], None
    while True:
        page = view.list_faces(max_results=100, next_token=token)
        faces += page.items
        token = page.next_token
        if token is None:
            return faces


@pytest.fixture
def source(store_location, tmp_path):
    """Three segments, a tombstone, two users (one with faces)."""
    store = open_store(store_location, tmp_path / "cache")
    store.create_collection("src", face_model_version=MODEL, dim=DIM, index=PARAMS)
    rng = np.random.default_rng(77)
    records = []
    for size in (40, 25, 7):
        batch, vectors = make_faces(rng, size, DIM)
        store.add_faces("src", batch, vectors)
        records += batch
    store.delete_faces("src", [records[3].face_id])
    store.create_user("src", "alice")
    store.create_user("src", "bob")
    store.associate_faces("src", "alice", [records[0].face_id, records[50].face_id])
    return store


def test_round_trip_keeps_every_face_vector_user_and_parameter(source):
    lines = list(export_collection(source, "src"))
    header = json.loads(lines[0])
    assert (header["format"], header["version"]) == (EXPORT_FORMAT, EXPORT_VERSION)
    assert header["index"] == {"space": "cosine", "dim": DIM, "M": 8, "ef_construction": 64, "ef": 40}
    assert (header["faces"], header["users"]) == (71, 2)
    assert [json.loads(line)["type"] for line in lines[1:]] == ["face"] * 71 + ["user"] * 2

    info = import_collection(source, iter(lines), collection_id="copy", batch_faces=30)

    before, after = source.view("src"), source.view("copy")
    assert (info.face_count, info.user_count, info.face_model_version) == (71, 2, MODEL)
    assert after.manifest.index == PARAMS
    assert _all_faces(after) == _all_faces(before)
    ids = [face.face_id for face in _all_faces(before)]
    # Exported bit for bit; the import normalises them again (a float32 rounding step at most).
    np.testing.assert_allclose(after.get_vectors(ids), before.get_vectors(ids), rtol=0, atol=1e-7)
    assert after.list_users(max_results=10) == before.list_users(max_results=10)
    for query in before.get_vectors(ids[::9]):
        got, expected = after.search(query, k=5), before.search(query, k=5)
        assert [record for record, _ in got] == [record for record, _ in expected]
        np.testing.assert_allclose([c for _, c in got], [c for _, c in expected], atol=1e-6)
    # And the copy exports to the same lines but its id.
    again = list(export_collection(source, "copy"))
    assert json.loads(again[0])["collection_id"] == "copy"
    assert sorted(json.loads(line).get("face_id", "") for line in again) == sorted(
        json.loads(line).get("face_id", "") for line in lines
    )


def test_export_streams_one_segment_at_a_time_without_keeping_them(source, store_location, tmp_path):
    cold = open_store(store_location, tmp_path / "cold-cache")
    lines = export_collection(cold, "src")
    next(lines)
    next(lines)
    assert cold.memory_report().loaded_segments == frozenset()
    assert sum(1 for _ in lines) == 70 + 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: ["{}", *lines[1:]], "Line 1 is not a facesearch.collection header."),
        (
            lambda lines: [lines[0].replace('"version": 1', '"version": 2'), *lines[1:]],
            "Line 1: export format 'facesearch.collection' version 2; this FaceSearch reads",
        ),
        (lambda lines: [*lines[:5], "not json", *lines[5:]], "Line 6 is not JSON."),
        (lambda lines: [*lines[:-3], lines[-1], lines[-3]], "expected a face line or, after them, users"),
        (lambda lines: [*lines[:2], lines[2].replace('"vector": "', '"vector": "AAAA'), *lines[3:]], "bytes"),
        (lambda lines: lines[:-1], "The import holds 71 faces and 1 users; its header says 71 and 2."),
    ],
)
def test_a_bad_import_is_refused_and_leaves_nothing(source, edit, message):
    lines = edit(list(export_collection(source, "src")))
    with pytest.raises(InvalidParameterException) as error:
        import_collection(source, lines, collection_id="copy", batch_faces=30)
    assert message in error.value.message
    with pytest.raises(ResourceNotFoundException):
        source.view("copy")
    assert source.blobs.list("collections/copy/") == []
