"""The maintenance job's merges on both backends: what writes left is inserted into the largest graph."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facesearch.store import open_store
from facesearch.store import segment as seg
from tests.functional.store_fixtures import MODEL, fresh_store, make_faces, recall_at_k

DIM = 16
BASE = 400


def _manifest(store, collection_id="c"):
    return json.loads(store.blobs.get(f"collections/{collection_id}/manifest.json").body)


@pytest.fixture
def based(store_location, tmp_path, monkeypatch):
    """A collection of one graph segment of BASE faces (segments over 50 faces have a graph)."""
    monkeypatch.setattr("facesearch.store.segment.BRUTE_FORCE_MAX_FACES", 50)
    store = open_store(store_location, tmp_path / "cache")
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    rng = np.random.default_rng(77)
    records, vectors = make_faces(rng, BASE, DIM)
    store.add_faces("c", records, vectors)
    return store, rng, records, vectors


def _write(store, rng, sizes, live):
    for size in sizes:
        records, vectors = make_faces(rng, size, DIM)
        store.add_faces("c", records, vectors)
        live.update({r.face_id: v for r, v in zip(records, vectors, strict=True)})


def test_the_job_inserts_what_writes_left_into_the_largest_graph(
    based, store_location, tmp_path, monkeypatch
):
    store, rng, base_records, base_vectors = based
    live = {r.face_id: v for r, v in zip(base_records, base_vectors, strict=True)}
    dead = [r.face_id for r in base_records[:10]]
    store.delete_faces("c", dead)
    for face_id in dead:
        del live[face_id]
    new: dict = {}
    _write(store, rng, [20, 20, 15], new)  # 55 faces >= FOLD_SHARE of the base's 390 live ones
    live.update(new)
    base_id = _manifest(store)["segments"][0]["id"]
    built_sizes = []
    build = seg.build
    monkeypatch.setattr(seg, "build", lambda *a, **k: built_sizes.append(len(a[1])) or build(*a, **k))

    assert store.compact("c")

    assert built_sizes == []  # nothing rebuilt: the new faces went into a copy of the base's graph
    manifest = _manifest(store)
    assert [s["count"] for s in manifest["segments"]] == [BASE + len(new)]
    assert manifest["segments"][0]["id"] != base_id
    # The base's tombstoned rows are still stored, so their tombstones stay (and still apply).
    assert sorted(manifest["tombstones"]) == sorted(dead)
    reader = fresh_store(store_location, tmp_path / "reader")
    loaded = reader.view("c")
    records = reader.segment(loaded.manifest, loaded.manifest.segments[0], graph=False).records
    assert [r.face_id for r in records[:BASE]] == [r.face_id for r in base_records]
    assert {r.face_id for r in records[BASE:]} == set(new)
    assert np.allclose(loaded.get_vectors(list(new)[:5]), np.stack(list(new.values())[:5]), atol=1e-6)
    for vector in base_vectors[:10]:
        assert not {r.face_id for r, _ in loaded.search(vector, k=5)} & set(dead)
    assert recall_at_k(reader, "c", live, list(new.values())[:20] + list(live.values())[:20]) >= 0.99
    assert loaded.info.face_count == len(live)
    assert not store.compact("c")


def test_below_the_fold_share_the_rest_merge_into_one_smaller_graph(based):
    store, rng, _, _ = based
    live: dict = {}
    _write(store, rng, [10, 10, 10], live)  # 30 faces < FOLD_SHARE of 400
    assert store.compact("c")
    assert [s["count"] for s in _manifest(store)["segments"]] == [BASE, 30]
    assert not store.compact("c")
    _write(store, rng, [25], live)  # now 55: folded, the smaller graph with it
    assert store.compact("c")
    assert [s["count"] for s in _manifest(store)["segments"]] == [BASE + 55]


def test_a_tombstone_heavy_base_is_rebuilt_before_anything_is_inserted(based):
    store, rng, base_records, _ = based
    store.delete_faces("c", [r.face_id for r in base_records[:100]])  # 25 % > MAX_TOMBSTONE_SHARE
    live: dict = {}
    _write(store, rng, [20, 20], live)
    assert store.compact("c")
    manifest = _manifest(store)
    assert [s["count"] for s in manifest["segments"]] == [BASE - 100 + 40]
    assert manifest["tombstones"] == []


def test_a_fold_that_loses_its_swap_leaves_no_object_behind(based, monkeypatch):
    store, rng, _, _ = based
    _write(store, rng, [30, 30], {})
    before = {i.key for i in store.blobs.list("collections/c/segments/")}
    # Another writer replaced a segment the fold read (its swap then finds it gone): nothing applies.
    monkeypatch.setattr("facesearch.store.changes.replace_segments", lambda current, *_: (None, False))
    assert not store.compact("c")
    assert {i.key for i in store.blobs.list("collections/c/segments/")} == before
