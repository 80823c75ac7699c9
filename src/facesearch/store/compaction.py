"""Compaction (merge segments into one without their tombstoned faces) and garbage collection of orphans."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from facesearch.domain import FaceRecord
from facesearch.store import changes, keys

if TYPE_CHECKING:
    from facesearch.store.core import CollectionStore

# Size tiers: a segment of n live faces is in tier floor(log_FAN_OUT(n)); FAN_OUT segments of one tier
# merge into one of a higher tier. Each merge lifts its faces at least one tier, so a face is re-indexed
# at most log_FAN_OUT(N) times however it was ingested, and a collection holds at most FAN_OUT - 1
# segments per tier: O(FAN_OUT * log N) segments. 4 keeps both the re-index count (~8 at 100 000) and the
# segments a search visits low.
FAN_OUT = 4
# A segment whose tombstoned share passes this is rebuilt without them (search then skips fewer rows).
MAX_TOMBSTONE_SHARE = 0.2
# Live faces a write may re-index when it compacts: segment build runs at ~1 200 faces/s at 512-D
# (bench/store.py: 100 000 faces in 76-90 s), so ~8 s, well inside the function's 29 s timeout (API
# Gateway's limit). Merges bigger than that are left to the scheduled maintenance job
# (facesearch.maintenance), so between its runs a collection gains about one segment per this many faces.
INLINE_COMPACTION_MAX_FACES = 10_000
# Orphan segments (from crashed or losing writers, or replaced by compaction) are deleted after this long;
# it must exceed the slowest write (upload -> manifest swap) and the slowest reader's download.
GC_GRACE_SECONDS = 3600.0


@dataclass(frozen=True)
class SegmentSize:
    """What the merge policy knows of a segment: its id, stored faces and tombstoned faces."""

    segment_id: str
    count: int
    dead: int = 0

    @property
    def live(self) -> int:
        return self.count - self.dead

    @property
    def heavy(self) -> bool:
        return self.dead > MAX_TOMBSTONE_SHARE * self.count

    @property
    def tier(self) -> int:
        return int(math.log(max(self.live, 1), FAN_OUT) + 1e-9)


def plan(segments: Sequence[SegmentSize], *, force: bool = False, budget: int | None = None) -> list[str]:
    """The ids of the next segments to merge into one (empty: nothing is due, or nothing due fits).

    ``force``: all of them. Otherwise a tombstone-heavy segment is rebuilt alone (the smallest first),
    else the lowest tier holding FAN_OUT or more segments merges whole. A ``budget`` caps the live faces
    the merge re-indexes; a due merge over it is left for a call without one (the scheduled job). Called
    again after each merge until it returns nothing, so cascades (a merge filling the next tier) finish.
    """
    if force:
        return [s.segment_id for s in segments] if len(segments) > 1 or any(s.dead for s in segments) else []

    def fits(group: Sequence[SegmentSize]) -> bool:
        return budget is None or sum(s.live for s in group) <= budget

    for segment in sorted((s for s in segments if s.heavy), key=lambda s: s.live):
        if fits([segment]):
            return [segment.segment_id]
    tiers: dict[int, list[SegmentSize]] = {}
    for segment in segments:
        tiers.setdefault(segment.tier, []).append(segment)
    for tier in sorted(tiers):
        group = tiers[tier]
        if len(group) >= FAN_OUT and fits(group):
            return [s.segment_id for s in group]
    return []


def compact(store: CollectionStore, collection_id: str, *, force: bool, budget: int | None) -> bool:
    """Run the merges ``plan`` selects, each its own manifest swap, until none is due or fits what is left
    of ``budget``; True if any swap applied."""
    swapped_any = False
    remaining = budget
    while remaining is None or remaining > 0:
        merged = _merge_once(store, collection_id, force=force, budget=remaining)
        if merged is None:
            break
        swapped_any = True
        force = False
        if remaining is not None:
            remaining -= merged
    return swapped_any


def _merge_once(store: CollectionStore, collection_id: str, *, force: bool, budget: int | None) -> int | None:
    """One merge of what ``plan`` selects: the live faces it re-indexed, or None if nothing swapped."""
    view = store.view(collection_id)
    manifest = view.manifest
    dead: dict[str, int] = {}
    if manifest.tombstones:
        for ref in manifest.segments:
            rows = store.segment(manifest, ref, graph=False).row_of
            dead[ref.segment_id] = sum(1 for face_id in manifest.tombstones if face_id in rows)
    sizes = [SegmentSize(ref.segment_id, ref.count, dead.get(ref.segment_id, 0)) for ref in manifest.segments]
    chosen = set(plan(sizes, force=force, budget=budget))
    if not chosen:
        return None
    group = [ref for ref in manifest.segments if ref.segment_id in chosen]
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
    swapped = store.mutate(
        collection_id,
        lambda current: changes.replace_segments(
            current.manifest, frozenset(chosen), built.ref if built else None, frozenset(gone)
        ),
    )
    if swapped and built:
        store.memory.remember(built)
    if swapped:
        # This process will not read the merged segments again (readers of an older manifest elsewhere
        # download them if they need them: GC keeps the objects for GC_GRACE_SECONDS). Their objects are
        # left to the scheduled GC: listing every segment object on each merge would cost O(objects).
        for segment_id in chosen:
            store.forget_cached(collection_id, segment_id)
    if not swapped and built:
        # Never referenced by any manifest, so nobody can be reading it.
        for key in keys.segment_keys(collection_id, built.ref.segment_id):
            store.blobs.delete(key)
    return len(records) if swapped else None


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
