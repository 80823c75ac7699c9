"""Compaction (merge segments into one without their tombstoned faces) and garbage collection of orphans."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from facesearch.domain import FaceRecord
from facesearch.store import changes, keys
from facesearch.store import segment as seg
from facesearch.store.blobs import BlobStore
from facesearch.store.manifest import Manifest, SegmentRef
from facesearch.store.memory import SegmentMemory
from facesearch.store.view import CollectionView

R = TypeVar("R")


class CollectionStore(Protocol):
    """What compaction and GC use of ``store.core.CollectionStore`` (a structural type: no import cycle)."""

    blobs: BlobStore
    memory: SegmentMemory

    def view(self, collection_id: str) -> CollectionView: ...

    def segment(self, manifest: Manifest, ref: SegmentRef, *, graph: bool) -> seg.LoadedSegment: ...

    def mutate(
        self, collection_id: str, change: Callable[[CollectionView], tuple[Manifest | None, R]]
    ) -> R: ...

    def forget_cached(self, collection_id: str, segment_id: str) -> None: ...

    def upload_segment(self, collection_id: str, built: seg.BuiltSegment) -> None: ...


# Size tiers: a segment of n live faces is in tier floor(log_FAN_OUT(n)); FAN_OUT segments of one tier
# merge into one of a higher tier. Each merge lifts its faces at least one tier, so a face is re-indexed
# at most log_FAN_OUT(N) times however it was ingested, and a collection holds at most FAN_OUT - 1
# segments per tier: O(FAN_OUT * log N) segments. 4 keeps both the re-index count (~8 at 100 000) and the
# segments a search visits low.
FAN_OUT = 4
# A segment whose tombstoned share passes this is rebuilt without them (search then skips fewer rows).
MAX_TOMBSTONE_SHARE = 0.2
# Live faces a write may re-index when it compacts. A cascade of single-face writes ending in a segment of
# segment.BRUTE_FORCE_MAX_FACES (1 024 = FAN_OUT**5) re-indexes 4 + 16 + 64 + 256 + 1 024 = 1 364 faces:
# ~1.1 s at the measured ~1 200 faces/s (512-D), so no write waits for more than about a second of
# merging (bench/store.py --writes-of 1 reports write max). The merges above (4 096 faces and up, the
# graphs hnswlib searches) are left to the scheduled maintenance job (facesearch.maintenance). Between
# its runs a collection gains one segment per ~1 024 faces written; those are searched exactly as one
# block (store.view), ~0.1 ms per 1 024 faces a search at 512-D.
INLINE_COMPACTION_MAX_FACES = 1_364
# The job's merges (``plan_job``) keep a collection at one large graph plus at most one smaller one:
# searching several graphs costs about one whole-collection graph search each at equal recall
# (bench/ingest_recall.py), so tiers of graphs would make a collection built by single writes ~3x
# slower to search than one built in bulk. The job inserts what writes left into the largest graph once
# they hold this share of its faces; below it, they are merged into the one smaller graph. Inserting
# indexes each face once, but rewrites the large graph, which every warm reader then downloads again:
# this share bounds that to once per ~1/8 of the collection written.
FOLD_SHARE = 1 / 8
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


@dataclass(frozen=True)
class Merge:
    """One merge: ``sources`` become one new segment without their tombstoned faces. With a ``base``,
    the new segment is the base's rows (tombstoned ones too: their tombstones stay) followed by the
    sources' live faces, inserted into a copy of the base's graph instead of rebuilding it."""

    sources: tuple[str, ...]
    base: str | None = None


def plan_job(segments: Sequence[SegmentSize]) -> Merge | None:
    """The scheduled job's next merge (None: the collection is as compact as the job makes it).

    A tombstone-heavy segment is rebuilt first (as ``plan``). Then everything but the largest segment
    is inserted into it once it holds ``FOLD_SHARE`` of the largest's live faces, or else merged into
    one smaller segment; a collection with no graph-sized segment is merged whole.
    """
    heavy = plan([s for s in segments if s.heavy])
    if heavy:
        return Merge(tuple(heavy))
    if len(segments) < 2:
        return None
    largest = max(segments, key=lambda s: s.live)
    others = [s for s in segments if s is not largest]
    if largest.count <= seg.BRUTE_FORCE_MAX_FACES:
        return Merge(tuple(s.segment_id for s in segments))
    if sum(s.live for s in others) >= FOLD_SHARE * largest.live:
        return Merge(tuple(s.segment_id for s in others), base=largest.segment_id)
    if len(others) > 1 or others[0].dead:
        return Merge(tuple(s.segment_id for s in others))
    return None


def compact(store: CollectionStore, collection_id: str, *, force: bool, budget: int | None) -> bool:
    """Run merges, each its own manifest swap, until none is due or fits what is left of ``budget``;
    True if any swap applied. ``force``: first everything into one rebuilt segment. No ``budget``: the
    scheduled job's merges (``plan_job``); else a write's (``plan``, within the budget)."""
    swapped_any = False
    remaining = budget
    while remaining is None or remaining > 0:
        manifest = store.view(collection_id).manifest
        sizes = _sizes(store, manifest)
        if force or budget is not None:
            chosen = plan(sizes, force=force, budget=remaining)
            merge = Merge(tuple(chosen)) if chosen else None
        else:
            merge = plan_job(sizes)
        if merge is None:
            break
        merged = _merge(store, collection_id, manifest, merge)
        if merged is None:
            break
        swapped_any = True
        force = False
        if remaining is not None:
            remaining -= merged
    return swapped_any


def _sizes(store: CollectionStore, manifest: Manifest) -> list[SegmentSize]:
    dead: dict[str, int] = {}
    if manifest.tombstones:
        for ref in manifest.segments:
            row_of = store.segment(manifest, ref, graph=False).row_of
            dead[ref.segment_id] = sum(1 for face_id in manifest.tombstones if face_id in row_of)
    return [SegmentSize(ref.segment_id, ref.count, dead.get(ref.segment_id, 0)) for ref in manifest.segments]


def _merge(store: CollectionStore, collection_id: str, manifest: Manifest, merge: Merge) -> int | None:
    """Apply ``merge`` to ``manifest``: the faces it (re-)indexed, or None if its swap lost a race."""
    refs = {ref.segment_id: ref for ref in manifest.segments}
    records: list[FaceRecord] = []
    vectors: list[np.ndarray] = []
    gone: set[str] = set()
    for segment_id in merge.sources:
        loaded = store.segment(manifest, refs[segment_id], graph=True)
        rows = [row for row, record in enumerate(loaded.records) if record.face_id not in manifest.tombstones]
        gone.update(record.face_id for record in loaded.records if record.face_id in manifest.tombstones)
        records.extend(loaded.records[row] for row in rows)
        if rows:
            vectors.append(loaded.vectors(rows))
    stacked = np.concatenate(vectors) if vectors else np.zeros((0, manifest.index.dim), np.float32)
    replaced = set(merge.sources)
    built: seg.BuiltSegment | None = None
    if merge.base is not None:
        replaced.add(merge.base)
        base = refs[merge.base]
        graph = store.memory.read_graph(store.blobs, manifest, base, capacity=base.count + len(records))
        base_records = store.segment(manifest, base, graph=False).records
        built = seg.extend(
            keys.new_segment_id(),
            base_records,
            graph,
            tuple(records),
            stacked,
            manifest.index,
            manifest.face_model_version,
        )
    elif records:
        built = seg.build(
            keys.new_segment_id(), tuple(records), stacked, manifest.index, manifest.face_model_version
        )
    if built is not None:
        store.upload_segment(collection_id, built)
    swapped = store.mutate(
        collection_id,
        lambda current: changes.replace_segments(
            current.manifest, frozenset(replaced), built.ref if built else None, frozenset(gone)
        ),
    )
    if swapped and built:
        store.memory.remember(built)
    if swapped:
        # This process will not read the merged segments again (readers of an older manifest elsewhere
        # download them if they need them: GC keeps the objects for GC_GRACE_SECONDS). Their objects are
        # left to the scheduled GC: listing every segment object on each merge would cost O(objects).
        for segment_id in replaced:
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
