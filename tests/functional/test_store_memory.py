"""A writing process's memory stays flat: it releases the segments its writes replaced; caches are bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facesearch.store import open_store
from tests.functional.store_fixtures import MODEL, make_faces

DIM = 64
WRITES = 300
WARM_UP = 100
# Generous: a face's vector (256 B) and record are well under this; a leaked hnswlib index alone is ~2.5 MB.
MAX_RSS_GROWTH_PER_WRITE = 64 * 1024


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_single_face_writes_keep_only_referenced_segments_in_memory(tmp_path, monkeypatch):
    # Graphs from 9 faces up, so compactions replace hnswlib indexes as well as small exact segments.
    monkeypatch.setattr("facesearch.store.segment.BRUTE_FORCE_MAX_FACES", 8)
    store = open_store(str(tmp_path / "store"), tmp_path / "cache")
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(np.random.default_rng(17), WRITES, DIM)
    reader_queries = vectors[::25]
    rss_after_warm_up = 0
    for i in range(WRITES):
        store.add_faces("c", records[i : i + 1], vectors[i : i + 1])
        if i % 10 == 0:
            store.view("c").search(reader_queries[i // 25], k=3)  # the process reads too: graphs loaded
        if i + 1 == WARM_UP:
            rss_after_warm_up = _rss_bytes()
    report = store.memory_report()
    manifest_segments = {ref.segment_id for ref in store.view("c").manifest.segments}
    assert report.loaded_segments == report.referenced_segments == manifest_segments
    assert len(manifest_segments) < WRITES // 10  # compaction ran: most written segments were replaced
    growth = (_rss_bytes() - rss_after_warm_up) / (WRITES - WARM_UP)
    assert growth < MAX_RSS_GROWTH_PER_WRITE, f"RSS grew {growth:.0f} bytes per write"
    assert store.view("c").info.face_count == WRITES


def test_manifest_cache_is_bounded_and_releases_the_segments_of_what_it_drops(tmp_path, monkeypatch):
    monkeypatch.setattr("facesearch.store.core.MAX_CACHED_MANIFESTS", 2)
    store = open_store(str(tmp_path / "store"), tmp_path / "cache")
    rng = np.random.default_rng(3)
    for collection_id in ("a", "b", "c"):
        store.create_collection(collection_id, face_model_version=MODEL, dim=DIM)
        store.add_faces(collection_id, *make_faces(rng, 4, DIM))
    reader = open_store(str(tmp_path / "store"), tmp_path / "cache")
    for collection_id in ("a", "b", "c", "b"):
        reader.view(collection_id).search(rng.normal(size=DIM), k=1)
    report = reader.memory_report()
    assert report.cached_collections == ("c", "b")
    kept = {ref.segment_id for cid in ("b", "c") for ref in reader.view(cid).manifest.segments}
    assert report.loaded_segments == kept and len(kept) == 2
