"""Scheduled maintenance: compact every collection past its bounds and collect its orphan segments."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from facesearch.errors import ResourceNotFoundException
from facesearch.store import CollectionStore
from facesearch.store.compaction import GC_GRACE_SECONDS

# Collections per listing page: each page reads that many manifests before any is maintained.
PAGE_SIZE = 100


@dataclass(frozen=True)
class MaintenanceReport:
    """What one run did. ``stopped_early``: the deadline came before every collection was visited."""

    collections_visited: int
    collections_compacted: int
    segments_collected: int
    stopped_early: bool


def run(
    store: CollectionStore, *, deadline: float, grace_seconds: float = GC_GRACE_SECONDS
) -> MaintenanceReport:
    """Visit every collection (by id) until ``deadline`` (a ``time.monotonic()`` value) has passed.

    Each visit first deletes orphan segments older than ``grace_seconds``, then compacts the
    group the bounds select with no budget (the merges writes leave for this job). No collection is
    started once the deadline has passed; the one under way finishes (the caller keeps a margin for it).
    """
    visited = compacted = collected = 0
    token = None
    while True:
        page = store.list_collections(max_results=PAGE_SIZE, next_token=token)
        for info in page.items:
            if time.monotonic() >= deadline:
                return MaintenanceReport(visited, compacted, collected, stopped_early=True)
            # A collection deleted since it was listed has nothing left to maintain (and is not counted).
            with contextlib.suppress(ResourceNotFoundException):
                # Collect first: a compaction's own replaced segments are still in their grace period,
                # and the objects it collects itself would be missing from this count.
                keys = store.collect_garbage(info.collection_id, grace_seconds=grace_seconds)
                collected += len({key.rsplit(".", 1)[0] for key in keys})
                if store.compact(info.collection_id):
                    compacted += 1
                visited += 1
        token = page.next_token
        if token is None:
            return MaintenanceReport(visited, compacted, collected, stopped_early=False)
