"""Search recall@10 against brute force: segments, tombstones, save/load, compaction, both backends."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facesearch.store import open_store
from tests.functional.store_fixtures import MODEL, fresh_store, make_faces, recall_at_k

DIM = 32
BATCHES = (700, 500, 300, 500)
QUERIES = 60
MIN_RECALL = 0.99


def _segments(store, collection_id):
    return json.loads(store.blobs.get(f"collections/{collection_id}/manifest.json").body)["segments"]


def test_recall_across_segments_tombstones_reload_and_compaction(store_location, tmp_path):
    rng = np.random.default_rng(20261125)
    store = open_store(store_location, tmp_path / "cache")
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    live: dict[str, np.ndarray] = {}
    for size in BATCHES:
        records, vectors = make_faces(rng, size, DIM)
        store.add_faces("c", records, vectors)
        live.update({r.face_id: v for r, v in zip(records, vectors, strict=True)})
    assert len(_segments(store, "c")) == len(BATCHES)
    # Queries near stored faces (as real searches are) and uniformly random ones.
    picks = rng.choice(list(live), QUERIES // 2)
    near = np.stack([live[i] + 0.3 * rng.normal(size=DIM) / np.sqrt(DIM) for i in picks])
    queries = np.vstack([near, rng.normal(size=(QUERIES // 2, DIM))])
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)

    assert recall_at_k(store, "c", live, queries) >= MIN_RECALL

    # Tombstones: 15% deleted (below the compaction bound, so they stay tombstones in the segments).
    doomed = list(rng.choice(list(live), int(0.15 * len(live)), replace=False))
    assert len(store.delete_faces("c", doomed).deleted) == len(doomed)
    for face_id in doomed:
        del live[face_id]
    assert len(_segments(store, "c")) == len(BATCHES)
    deleted = set(doomed)
    for query in queries[:10]:
        assert not {r.face_id for r, _ in store.view("c").search(query, k=50)} & deleted
    assert recall_at_k(store, "c", live, queries) >= MIN_RECALL

    # Save/load: a cold container (empty cache) and a warm-disk one read the same collection.
    assert recall_at_k(fresh_store(store_location, tmp_path / "cold"), "c", live, queries) >= MIN_RECALL
    assert recall_at_k(fresh_store(store_location, tmp_path / "cache"), "c", live, queries) >= MIN_RECALL

    # Compaction: one segment, no tombstones left, same faces, same recall, before and after reload.
    assert store.compact("c", force=True)
    segments = _segments(store, "c")
    assert len(segments) == 1 and segments[0]["count"] == len(live)
    manifest = json.loads(store.blobs.get("collections/c/manifest.json").body)
    assert manifest["tombstones"] == []
    assert manifest["index"] == {"space": "cosine", "dim": DIM, "M": 16, "ef_construction": 200, "ef": 160}
    assert store.view("c").info.face_count == len(live)
    assert recall_at_k(store, "c", live, queries) >= MIN_RECALL
    assert recall_at_k(fresh_store(store_location, tmp_path / "cold2"), "c", live, queries) >= MIN_RECALL


def test_automatic_compaction_on_segment_count_and_tombstone_share(store_location, tmp_path):
    from facesearch.store.compaction import MAX_SEGMENTS, MAX_TOMBSTONE_SHARE

    rng = np.random.default_rng(7)
    store = open_store(store_location, tmp_path / "cache")
    store.create_collection("c", face_model_version=MODEL, dim=8)
    live = {}
    for _ in range(MAX_SEGMENTS + 1):
        records, vectors = make_faces(rng, 5, 8)
        store.add_faces("c", records, vectors)
        live.update({r.face_id: v for r, v in zip(records, vectors, strict=True)})
        assert len(_segments(store, "c")) <= MAX_SEGMENTS
    assert sum(s["count"] for s in _segments(store, "c")) == len(live)
    # The first faces went into the segment the first compaction merged: a share above the bound in it.
    biggest = max(_segments(store, "c"), key=lambda s: s["count"])
    doomed = list(live)[: int(biggest["count"] * MAX_TOMBSTONE_SHARE) + 1]
    store.delete_faces("c", doomed)
    manifest = json.loads(store.blobs.get("collections/c/manifest.json").body)
    assert manifest["tombstones"] == [] and len(manifest["segments"]) == MAX_SEGMENTS // 2
    assert biggest["id"] not in {s["id"] for s in manifest["segments"]}
    assert store.view("c").info.face_count == len(live) - len(doomed)
    assert (
        recall_at_k(store, "c", {k: v for k, v in live.items() if k not in doomed}, list(live.values())[:10])
        == 1.0
    )
    # The replaced segments are orphans now; garbage collection takes them once the grace period passed.
    assert store.collect_garbage("c", grace_seconds=3600) == []
    before = {info.key for info in store.blobs.list("collections/c/segments/")}
    collected = store.collect_garbage("c", grace_seconds=0)
    # The smallest segments merged by the first compaction, then its output, two objects each.
    assert len(collected) == 2 * ((MAX_SEGMENTS + 1) - MAX_SEGMENTS // 2 + 1 + 1)
    remaining = {info.key for info in store.blobs.list("collections/c/segments/")}
    assert remaining == {
        f"collections/c/segments/{s['id']}.{ext}" for s in manifest["segments"] for ext in ("bin", "json")
    }
    assert set(collected) == before - remaining
    assert store.view("c").info.face_count == len(live) - len(doomed)


@pytest.mark.parametrize("k", [1, 10])
def test_tombstone_heavy_segment_still_fills_k(store_location, tmp_path, monkeypatch, k):
    rng = np.random.default_rng(11)
    store = open_store(store_location, tmp_path / "cache")
    store.create_collection("c", face_model_version=MODEL, dim=8)
    records, vectors = make_faces(rng, 200, 8)
    store.add_faces("c", records, vectors)
    keep = {r.face_id for r in records[:30]}
    gone = [r.face_id for r in records[30:]]
    # 85% tombstones kept in place (no compaction), so hnswlib must search around them.
    monkeypatch.setattr("facesearch.store.compaction.MAX_TOMBSTONE_SHARE", 1.0)
    store.delete_faces("c", gone)
    assert len(_segments(store, "c")) == 1
    live = {r.face_id: v for r, v in zip(records, vectors, strict=True) if r.face_id in keep}
    hits = store.view("c").search(vectors[100], k=k)
    assert len(hits) == k and {r.face_id for r, _ in hits} <= keep
    assert recall_at_k(store, "c", live, vectors[:20], k=k) == 1.0


def _segment_objects(store, collection_id) -> set[str]:
    return {info.key for info in store.blobs.list(f"collections/{collection_id}/segments/")}


@pytest.mark.parametrize(("budget", "inline_merged"), [(4, 0), (10, 2), (20, 3)])
def test_a_write_compacts_only_the_smallest_segments_within_the_inline_budget(
    store_location, tmp_path, monkeypatch, budget, inline_merged
):
    from facesearch.store.compaction import MAX_SEGMENTS

    monkeypatch.setattr("facesearch.store.compaction.INLINE_COMPACTION_MAX_FACES", budget)
    rng = np.random.default_rng(23)
    store = open_store(store_location, tmp_path / "cache")
    store.create_collection("c", face_model_version=MODEL, dim=8)
    live = {}
    # Two small segments among big ones, then a third small one that crosses MAX_SEGMENTS.
    for size in (5, 50, 5, *[50] * (MAX_SEGMENTS - 3), 5):
        records, vectors = make_faces(rng, size, 8)
        store.add_faces("c", records, vectors)
        live.update({r.face_id: v for r, v in zip(records, vectors, strict=True)})

    # The write committed its faces; it merged only the small segments whose 5 faces each fit.
    segments = _segments(store, "c")
    assert len(segments) == MAX_SEGMENTS + 1 - inline_merged + (1 if inline_merged else 0)
    small = [5 * inline_merged] + [5] * (3 - inline_merged) if inline_merged else [5, 5, 5]
    assert sorted(s["count"] for s in segments if s["count"] != 50) == sorted(small)
    assert store.view("c").info.face_count == len(live)
    # Without a merge nothing was uploaded but the write's own segment: two objects per segment.
    assert len(_segment_objects(store, "c")) == 2 * (MAX_SEGMENTS + 1 + (1 if inline_merged else 0))

    # The scheduled path (no budget) merges the whole group the bounds select, if one is still due:
    # the smallest segments, down to MAX_SEGMENTS // 2.
    assert store.compact("c") == (inline_merged == 0)
    assert len(_segments(store, "c")) == (MAX_SEGMENTS // 2 if inline_merged == 0 else len(segments))
    assert store.view("c").info.face_count == len(live)
    assert recall_at_k(store, "c", live, list(live.values())[:10]) == 1.0
    assert not store.compact("c")


@pytest.mark.parametrize(("budget", "inline"), [(69, False), (70, True)])
def test_a_tombstone_heavy_segment_is_compacted_inline_only_within_the_budget(
    store_location, tmp_path, monkeypatch, budget, inline
):
    monkeypatch.setattr("facesearch.store.compaction.INLINE_COMPACTION_MAX_FACES", budget)
    rng = np.random.default_rng(29)
    store = open_store(store_location, tmp_path / "cache")
    store.create_collection("c", face_model_version=MODEL, dim=8)
    records, vectors = make_faces(rng, 100, 8)
    store.add_faces("c", records, vectors)
    (before,) = _segments(store, "c")

    # 30% deleted: above MAX_TOMBSTONE_SHARE, leaving 70 live faces to re-index.
    result = store.delete_faces("c", [r.face_id for r in records[:30]])

    assert len(result.deleted) == 30
    assert store.view("c").info.face_count == 70
    manifest = json.loads(store.blobs.get("collections/c/manifest.json").body)
    if inline:
        assert manifest["tombstones"] == [] and [s["count"] for s in manifest["segments"]] == [70]
    else:
        assert len(manifest["tombstones"]) == 30 and manifest["segments"] == [before]
        assert _segment_objects(store, "c") == {
            f"collections/c/segments/{before['id']}.{ext}" for ext in ("bin", "json")
        }
        assert store.compact("c")
        manifest = json.loads(store.blobs.get("collections/c/manifest.json").body)
        assert manifest["tombstones"] == [] and [s["count"] for s in manifest["segments"]] == [70]
    assert store.view("c").info.face_count == 70
    assert {r.face_id for r, _ in store.view("c").search(vectors[0], k=100)} == {
        r.face_id for r in records[30:]
    }
