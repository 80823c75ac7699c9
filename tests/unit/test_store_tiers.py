"""The size-tiered merge policy as a pure function, over long simulated single-face ingestions."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import pytest

from facesearch.store.compaction import (
    FAN_OUT,
    FOLD_SHARE,
    INLINE_COMPACTION_MAX_FACES,
    Merge,
    SegmentSize,
    plan,
    plan_job,
)
from facesearch.store.segment import BRUTE_FORCE_MAX_FACES

WRITES = 20_000


@dataclass(frozen=True)
class _Simulated:
    """A segment of the simulation: its size and how often its most re-indexed face was re-indexed."""

    size: SegmentSize
    reindexed: int


def _ingest(writes: int, *, budget: int | None, maintenance_every: int | None = None, job_plan: bool = True):
    """Single-face writes, each followed by the write's compaction (and the job every so often)."""
    segments: list[_Simulated] = []
    most_segments = 0
    most_per_write = 0
    for n in range(1, writes + 1):
        segments.append(_Simulated(SegmentSize(f"s{n}", 1), 0))
        passes = [budget]
        if maintenance_every and n % maintenance_every == 0:
            passes.append(None)
        for limit in passes:
            remaining = limit
            while True:
                sizes = [s.size for s in segments]
                job = plan_job(sizes) if limit is None and job_plan else None
                chosen = set(job.sources) | {job.base} - {None} if job else set(plan(sizes, budget=remaining))
                if not chosen:
                    break
                group = [s for s in segments if s.size.segment_id in chosen]
                # A fold indexes only the faces inserted into the base; the base's are not re-indexed.
                merged = sum(s.size.live for s in group if not job or s.size.segment_id != job.base)
                if limit is not None:
                    most_per_write = max(most_per_write, limit - remaining + merged)
                    remaining -= merged
                segments = [s for s in segments if s.size.segment_id not in chosen]
                segments.append(
                    _Simulated(
                        SegmentSize(f"m{n}-{len(segments)}", sum(s.size.live for s in group)),
                        max(s.reindexed + (not job or s.size.segment_id != job.base) for s in group),
                    )
                )
        most_segments = max(most_segments, len(segments))
    return segments, most_segments, most_per_write


def test_single_writes_reindex_each_face_log_n_times_and_keep_few_segments():
    segments, most_segments, _ = _ingest(WRITES, budget=None, job_plan=False)
    tiers = math.floor(math.log(WRITES, FAN_OUT)) + 1
    assert sum(s.size.count for s in segments) == WRITES
    # Each merge lifts its faces a tier: at most one re-index per tier above the first.
    assert max(s.reindexed for s in segments) <= tiers - 1
    # At most FAN_OUT - 1 segments per tier once a write's merges are done (one more while it writes).
    assert most_segments <= (FAN_OUT - 1) * tiers + 1
    assert max(Counter(s.size.tier for s in segments).values()) < FAN_OUT


@pytest.mark.parametrize("budget", [100, 1000])
def test_a_write_reindexes_within_its_budget_and_the_job_does_the_rest(budget):
    segments, most_segments, most_per_write = _ingest(WRITES, budget=budget, maintenance_every=2000)
    assert most_per_write <= budget
    tiers = math.floor(math.log(WRITES, FAN_OUT)) + 1
    assert max(s.reindexed for s in segments) <= tiers - 1
    # Between job runs, merges over the budget wait: at most one segment per budget's worth of writes
    # accumulates in each tier the budget cannot merge.
    assert most_segments <= (FAN_OUT - 1) * tiers + 2000 // (budget // FAN_OUT) + 1


def test_heavy_segments_are_rebuilt_alone_smallest_first_and_force_takes_everything():
    sizes = [SegmentSize("big", 1000, 300), SegmentSize("small", 10, 5), SegmentSize("ok", 1000, 10)]
    assert plan(sizes) == ["small"]
    assert plan(sizes, budget=4) == []
    assert plan(sizes[:1], budget=699) == []
    assert plan(sizes[:1], budget=700) == ["big"]
    assert plan(sizes, force=True) == ["big", "small", "ok"]
    assert plan([SegmentSize("one", 5)], force=True) == []
    assert plan([SegmentSize("one", 5, 1)], force=True) == ["one"]


def test_a_full_tier_merges_whole_and_other_tiers_are_left_alone():
    full = [SegmentSize(f"t1-{i}", 4 + i) for i in range(FAN_OUT)]
    others = [SegmentSize("big", 5000), SegmentSize("t0", 1)]
    assert sorted(plan([*others, *full])) == sorted(s.segment_id for s in full)
    assert plan([*others, *full[:-1]]) == []
    assert plan([*others, *full], budget=sum(s.live for s in full) - 1) == []


def test_the_shipped_write_budget_merges_up_to_exactly_searched_segments_and_builds_no_graph():
    segments, _, most_per_write = _ingest(
        WRITES, budget=INLINE_COMPACTION_MAX_FACES, maintenance_every=10_000
    )
    # A cascade ending in a BRUTE_FORCE_MAX_FACES segment fits a write's budget; a graph-sized merge
    # (FAN_OUT of those) does not, and is the job's.
    assert most_per_write == INLINE_COMPACTION_MAX_FACES
    assert sum(FAN_OUT**tier for tier in range(1, 6)) == INLINE_COMPACTION_MAX_FACES
    assert FAN_OUT**5 == BRUTE_FORCE_MAX_FACES < FAN_OUT * BRUTE_FORCE_MAX_FACES
    without_job, _, _ = _ingest(WRITES, budget=INLINE_COMPACTION_MAX_FACES)
    assert max(s.size.count for s in without_job) == BRUTE_FORCE_MAX_FACES
    # Between job runs the 1 024-face segments wait: one per BRUTE_FORCE_MAX_FACES writes.
    assert len(without_job) <= (FAN_OUT - 1) * 5 + WRITES // BRUTE_FORCE_MAX_FACES + 1
    # The job left one graph and at most one smaller segment.
    assert len(segments) <= 2 and max(s.size.count for s in segments) > FAN_OUT * BRUTE_FORCE_MAX_FACES


def test_the_job_inserts_into_the_largest_graph_once_the_rest_holds_its_share():
    big = SegmentSize("big", 8000, 100)
    rest = [SegmentSize("a", 600), SegmentSize("b", 400, 10)]
    assert FOLD_SHARE * big.live <= 990
    assert plan_job([big, *rest]) == Merge(("a", "b"), base="big")
    # Below the share the rest merge into one smaller segment, which then stays until it grows.
    assert plan_job([big, SegmentSize("a", 500), SegmentSize("b", 400)]) == Merge(("a", "b"))
    assert plan_job([big, SegmentSize("ab", 900)]) is None
    assert plan_job([big, SegmentSize("ab", 900, 1)]) == Merge(("ab",))
    assert plan_job([big]) is None


def test_the_job_rebuilds_heavy_segments_first_and_merges_a_collection_without_a_graph_whole():
    heavy = SegmentSize("heavy", 8000, 4000)
    assert plan_job([heavy, SegmentSize("a", 600)]) == Merge(("heavy",))
    small = [SegmentSize(f"s{i}", BRUTE_FORCE_MAX_FACES) for i in range(3)]
    assert plan_job(small) == Merge(tuple(s.segment_id for s in small))


def test_between_job_runs_single_writes_leave_one_graph_and_a_bounded_rest():
    segments, _, most_per_write = _ingest(WRITES, budget=INLINE_COMPACTION_MAX_FACES, maintenance_every=2000)
    assert most_per_write <= INLINE_COMPACTION_MAX_FACES
    assert sum(s.size.count for s in segments) == WRITES
    # Each face was indexed into a graph at most twice: in the smaller graph, then inserted into the big one.
    assert max(s.reindexed for s in segments) <= 5 + 2
