"""Search recall@10 against brute force: segments, tombstones, save/load, compaction, both backends."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from facesearch.store import open_store
from tests.functional.store_fixtures import MODEL, fresh_store, make_faces, recall_at_k

DIM = 32
# Three graph segments of one size tier (no merge is due) and one small segment searched exactly.
BATCHES = (700, 500, 40, 500)
QUERIES = 60
MIN_RECALL = 0.99


def _segments(store, collection_id):
    return json.loads(store.blobs.get(f"collections/{collection_id}/manifest.json").body)["segments"]


def test_recall_across_segments_tombstones_reload_and_compaction(store_location, tmp_path, monkeypatch):
    monkeypatch.setattr("facesearch.store.segment.BRUTE_FORCE_MAX_FACES", 100)
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


def test_single_face_writes_merge_by_size_tier_and_tombstone_heavy_segments_are_rebuilt(
    store_location, tmp_path
):
    from facesearch.store.compaction import FAN_OUT, MAX_TOMBSTONE_SHARE, SegmentSize

    rng = np.random.default_rng(7)
    store = open_store(store_location, tmp_path / "cache")
    store.create_collection("c", face_model_version=MODEL, dim=8)
    live = {}
    for _ in range(FAN_OUT**2):
        records, vectors = make_faces(rng, 1, 8)
        store.add_faces("c", records, vectors)
        live.update({r.face_id: v for r, v in zip(records, vectors, strict=True)})
        # A write never leaves FAN_OUT segments of one tier behind.
        tiers = Counter(SegmentSize(s["id"], s["count"]).tier for s in _segments(store, "c"))
        assert max(tiers.values()) < FAN_OUT
    # FAN_OUT**2 one-face writes: FAN_OUT one-face segments merged FAN_OUT times, then those merged.
    assert [s["count"] for s in _segments(store, "c")] == [FAN_OUT**2]
    assert store.view("c").info.face_count == len(live)
    (segment,) = _segments(store, "c")
    doomed = list(live)[: int(segment["count"] * MAX_TOMBSTONE_SHARE) + 1]
    store.delete_faces("c", doomed)
    manifest = json.loads(store.blobs.get("collections/c/manifest.json").body)
    assert manifest["tombstones"] == [] and [s["count"] for s in manifest["segments"]] == [
        FAN_OUT**2 - len(doomed)
    ]
    remaining = {k: v for k, v in live.items() if k not in doomed}
    assert recall_at_k(store, "c", remaining, list(live.values())[:10]) == 1.0
    # The replaced segments are orphans now; garbage collection takes them once the grace period passed.
    assert store.collect_garbage("c", grace_seconds=3600) == []
    before = {info.key for info in store.blobs.list("collections/c/segments/")}
    collected = store.collect_garbage("c", grace_seconds=0)
    # FAN_OUT**2 written, FAN_OUT merged, their merge, the rebuild: two objects each, all but the last.
    assert len(collected) == 2 * (FAN_OUT**2 + FAN_OUT + 1)
    remaining_keys = {info.key for info in store.blobs.list("collections/c/segments/")}
    assert remaining_keys == {
        f"collections/c/segments/{s['id']}.{ext}" for s in manifest["segments"] for ext in ("bin", "json")
    }
    assert set(collected) == before - remaining_keys


@pytest.mark.parametrize("k", [1, 10])
@pytest.mark.parametrize("exact_up_to", [100, 1024], ids=["graph", "exact"])
def test_tombstone_heavy_segment_still_fills_k(store_location, tmp_path, monkeypatch, k, exact_up_to):
    monkeypatch.setattr("facesearch.store.segment.BRUTE_FORCE_MAX_FACES", exact_up_to)
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


@pytest.mark.parametrize(("budget", "inline"), [(4 * 5 - 1, False), (4 * 5, True)])
def test_a_write_merges_a_full_tier_only_within_the_inline_budget(
    store_location, tmp_path, monkeypatch, budget, inline
):
    from facesearch.store.compaction import FAN_OUT

    monkeypatch.setattr("facesearch.store.compaction.FAN_OUT", 4)
    monkeypatch.setattr("facesearch.store.compaction.INLINE_COMPACTION_MAX_FACES", budget)
    rng = np.random.default_rng(23)
    store = open_store(store_location, tmp_path / "cache")
    store.create_collection("c", face_model_version=MODEL, dim=8)
    live = {}
    # A big segment (its own tier), then FAN_OUT segments of 5 faces: the last write fills their tier.
    for size in (100, *[5] * FAN_OUT):
        records, vectors = make_faces(rng, size, 8)
        store.add_faces("c", records, vectors)
        live.update({r.face_id: v for r, v in zip(records, vectors, strict=True)})

    counts = sorted(s["count"] for s in _segments(store, "c"))
    assert counts == ([5 * FAN_OUT, 100] if inline else [5] * FAN_OUT + [100])
    assert store.view("c").info.face_count == len(live)
    # Without a merge nothing was uploaded but the writes' own segments: two objects per segment.
    assert len(_segment_objects(store, "c")) == 2 * (1 + FAN_OUT + (1 if inline else 0))
    # The scheduled job (no budget) merges a collection with no graph-sized segment whole.
    assert store.compact("c")
    assert [s["count"] for s in _segments(store, "c")] == [100 + 5 * FAN_OUT]
    assert recall_at_k(store, "c", live, list(live.values())[:10]) == 1.0
    assert not store.compact("c")


def test_a_merge_that_fills_the_next_tier_cascades_in_the_same_write(store_location, tmp_path, monkeypatch):
    monkeypatch.setattr("facesearch.store.compaction.FAN_OUT", 2)
    rng = np.random.default_rng(31)
    store = open_store(store_location, tmp_path / "cache")
    store.create_collection("c", face_model_version=MODEL, dim=8)
    # Tiers of 2: [4, 2, 1] then one more face: 1+1 -> 2, 2+2 -> 4, 4+4 -> 8, all in that write.
    for size in (4, 2, 1, 1):
        store.add_faces("c", *make_faces(rng, size, 8))
    assert [s["count"] for s in _segments(store, "c")] == [8]


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


def test_small_segments_are_searched_as_one_block_that_follows_every_manifest(
    store_location, tmp_path, monkeypatch
):
    monkeypatch.setattr("facesearch.store.segment.BRUTE_FORCE_MAX_FACES", 100)
    rng = np.random.default_rng(20261202)
    store = open_store(store_location, tmp_path / "cache")
    store.create_collection("c", face_model_version=MODEL, dim=16)
    live: dict[str, np.ndarray] = {}
    # One segment per size tier (no merge is due): four searched exactly as one block, one graph.
    for size in (3, 7, 20, 70, 300):
        records, vectors = make_faces(rng, size, 16)
        store.add_faces("c", records, vectors)
        live.update({r.face_id: v for r, v in zip(records, vectors, strict=True)})
    assert [s["count"] for s in _segments(store, "c")] == [3, 7, 20, 70, 300]
    queries = np.stack(list(live.values())[::9])
    assert recall_at_k(store, "c", live, queries) == 1.0
    block = store.view("c").snapshot.exact["small"]
    assert len(block.records) == 100 and store.view("c").snapshot.exact["small"] is block  # built once
    assert store.memory_report().block_bytes == 100 * 16 * 4

    # A delete is a new manifest: its block leaves the face out.
    victim = list(live)[5]
    assert store.view("c").search(live[victim], k=1)[0][0].face_id == victim
    assert store.delete_faces("c", [victim]).deleted == (victim,)
    assert victim not in {r.face_id for r, _ in store.view("c").search(live.pop(victim), k=10)}
    assert store.view("c").snapshot.exact["small"] is not block
    assert store.memory_report().block_bytes == 99 * 16 * 4  # the old manifest's block went with it
    assert recall_at_k(store, "c", live, queries) == 1.0

    # Another process's write: this one reads the new manifest and searches the new face too.
    records, vectors = make_faces(rng, 2, 16)
    fresh_store(store_location, tmp_path / "other").add_faces("c", records, vectors)
    assert store.view("c").search(vectors[1], k=1)[0][0].face_id == records[1].face_id
    live.update({r.face_id: v for r, v in zip(records, vectors, strict=True)})
    assert recall_at_k(store, "c", live, queries) == 1.0
