"""Compaction (merge segments into one without their tombstoned faces) and garbage collection of orphans."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from facesearch.domain import FaceRecord
from facesearch.store import changes, keys
from facesearch.store.manifest import Manifest, SegmentRef

if TYPE_CHECKING:
    from facesearch.store.core import CollectionStore

# Compaction bounds: more segments than this, or a segment with this share of tombstones, is merged.
MAX_SEGMENTS = 8
MAX_TOMBSTONE_SHARE = 0.2
# Live faces a write may re-index when it compacts: segment build runs at ~1 200 faces/s at 512-D
# (bench/store.py: 100 000 faces in 76-90 s), so ~8 s, well inside the function's 29 s timeout (API
# Gateway's limit). Bigger merges are left to the scheduled maintenance job (facesearch.maintenance).
INLINE_COMPACTION_MAX_FACES = 10_000
# Orphan segments (from crashed or losing writers, or replaced by compaction) are deleted after this long;
# it must exceed the slowest write (upload -> manifest swap) and the slowest reader's download.
GC_GRACE_SECONDS = 3600.0


def plan(
    manifest: Manifest, dead: dict[str, int], *, force: bool, budget: int | None = None
) -> list[SegmentRef]:
    """Segments to merge: all (``force``), else the smallest beyond MAX_SEGMENTS and tombstone-heavy ones.

    ``dead`` counts each segment's tombstoned faces. Merging only the small segments (size-tiered, as in
    an LSM tree) and the segments whose own tombstone share crossed the bound keeps a write's compaction
    cost near what changed. With a ``budget``, only the smallest selected segments whose live faces fit
    in it are kept (nothing if fewer than two fit, unless that one is tombstone-heavy).
    """
    segments = list(manifest.segments)
    heavy = {
        ref.segment_id for ref in segments if dead.get(ref.segment_id, 0) > MAX_TOMBSTONE_SHARE * ref.count
    }
    if force:
        group = segments if len(segments) > 1 or manifest.tombstones else []
    else:
        chosen: dict[str, SegmentRef] = {}
        if len(segments) > MAX_SEGMENTS:
            merged = len(segments) - MAX_SEGMENTS // 2 + 1
            smallest = sorted(segments, key=lambda ref: ref.count)[:merged]
            chosen.update((ref.segment_id, ref) for ref in smallest)
        chosen.update((ref.segment_id, ref) for ref in segments if ref.segment_id in heavy)
        group = list(chosen.values())
    if budget is None:
        return group

    def live(ref: SegmentRef) -> int:
        return ref.count - dead.get(ref.segment_id, 0)

    fitting: list[SegmentRef] = []
    for ref in sorted(group, key=live):
        if sum(map(live, fitting)) + live(ref) > budget:
            break
        fitting.append(ref)
    if len(fitting) >= 2 or (fitting and fitting[0].segment_id in heavy):
        return fitting
    return []


def compact(store: CollectionStore, collection_id: str, *, force: bool, budget: int | None) -> bool:
    """Merge the segments ``plan`` selects into one new HNSW segment; True if the manifest swap applied."""
    view = store.view(collection_id)
    manifest = view.manifest
    dead: dict[str, int] = {}
    if manifest.tombstones:
        for ref in manifest.segments:
            rows = store.segment(manifest, ref, graph=False).row_of
            dead[ref.segment_id] = sum(1 for face_id in manifest.tombstones if face_id in rows)
    group = plan(manifest, dead, force=force, budget=budget)
    if not group:
        return False
    records: list[FaceRecord] = []
    vectors: list[np.ndarray] = []
    gone: set[str] = set()
    for ref in group:
        loaded = store.segment(manifest, ref, graph=True)
        rows = [row for row, record in enumerate(loaded.records) if record.face_id not in manifest.tombstones]
        gone.update(record.face_id for record in loaded.records if record.face_id in manifest.tombstones)
        records.extend(loaded.records[row] for row in rows)
        if rows:
            vectors.append(loaded.vectors(rows))
    merged = np.concatenate(vectors) if vectors else np.zeros((0, manifest.index.dim), np.float32)
    built = store.upload_segment(collection_id, manifest, tuple(records), merged) if records else None
    group_ids = frozenset(ref.segment_id for ref in group)
    swapped = store.mutate(
        collection_id,
        lambda current: changes.replace_segments(
            current.manifest, group_ids, built.ref if built else None, frozenset(gone)
        ),
    )
    if swapped and built:
        store.memory.remember(built)
    if swapped:
        collect_garbage(store, collection_id)
    if not swapped and built:
        # Never referenced by any manifest, so nobody can be reading it.
        for key in keys.segment_keys(collection_id, built.ref.segment_id):
            store.blobs.delete(key)
    return swapped


def collect_garbage(
    store: CollectionStore, collection_id: str, *, grace_seconds: float = GC_GRACE_SECONDS
) -> list[str]:
    """Delete segment objects no manifest references that are older than ``grace_seconds``; their keys.

    Only segment objects: idempotency records and anything else under the collection are not GC's.
    """
    manifest = store.view(collection_id).manifest
    referenced = {
        key for ref in manifest.segments for key in keys.segment_keys(collection_id, ref.segment_id)
    }
    now = time.time()
    collected = []
    for info in store.blobs.list(keys.segments_prefix(collection_id)):
        if (
            keys.is_segment_object(collection_id, info.key)
            and info.key not in referenced
            and now - info.last_modified >= grace_seconds
        ):
            store.blobs.delete(info.key)
            collected.append(info.key)
    return collected
