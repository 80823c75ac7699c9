"""Segments in memory across warm invocations: loaded on demand from the disk cache, released when unnamed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import hnswlib

from facesearch.store import keys
from facesearch.store import segment as seg
from facesearch.store.blobs import BlobStore
from facesearch.store.cache import DiskCache
from facesearch.store.errors import CorruptSegmentError
from facesearch.store.manifest import Manifest, SegmentRef


class SegmentMemory:
    """The loaded segments of one store, by segment id (ids are unique per store, so never stale).

    The store calls ``retain`` with the segments its cached manifests name whenever it installs a
    manifest (a read that changed, its own swap, an eviction), so a writing process releases what its
    compactions replaced. Reads of loaded segments take no lock; loading takes ``_lock``.
    """

    def __init__(self, cache: DiskCache) -> None:
        self.cache = cache
        self._segments: dict[str, seg.LoadedSegment] = {}
        self._lock = threading.Lock()

    def load(
        self, blobs: BlobStore, manifest: Manifest, ref: SegmentRef, *, graph: bool, keep: bool = True
    ) -> seg.LoadedSegment:
        """A segment in memory: its records, and if ``graph`` what it is searched with.

        ``keep=False`` (a one-off scan such as an export): a segment not already loaded is read for the
        caller only, so scanning a collection holds one segment at a time.
        """
        loaded = self._segments.get(ref.segment_id)
        if loaded is not None and (loaded.searchable or not graph):
            return loaded
        with self._lock:
            loaded = self._segments.get(ref.segment_id)
            if loaded is None:
                # Records are re-hashed on every load (a damaged file would silently change answers);
                # a damaged graph fails load_graph's own checks.
                with _named(manifest.collection_id):
                    body = self.cache.read(blobs, *_cached(blobs, manifest.collection_id, ref, "json"))
                records = seg.parse_records(body, ref)
                loaded = seg.LoadedSegment(
                    ref=ref,
                    records=records,
                    row_of={record.face_id: row for row, record in enumerate(records)},
                )
            if graph and not loaded.searchable:
                graph_index = self.read_graph(blobs, manifest, ref, capacity=ref.count)
                loaded = seg.searchable(ref, loaded.records, graph_index)
            if keep:
                self._segments[ref.segment_id] = loaded
            return loaded

    def read_graph(
        self, blobs: BlobStore, manifest: Manifest, ref: SegmentRef, capacity: int
    ) -> hnswlib.Index:
        """A segment's graph read from the disk cache (a new index object) with room for ``capacity`` rows.

        Compaction inserts into one with more room than rows: a private copy, while readers keep
        searching the loaded segment.
        """
        with (
            _named(manifest.collection_id),
            self.cache.pinned(blobs, *_cached(blobs, manifest.collection_id, ref, "bin")) as path,
        ):
            return seg.load_graph(path, ref, manifest.index, capacity=capacity)

    def remember(self, built: seg.BuiltSegment) -> None:
        """Keep a segment this process built and swapped in loaded, so the next read downloads nothing."""
        loaded = seg.searchable(built.ref, built.records, built.index, built.vectors)
        with self._lock:
            self._segments[built.ref.segment_id] = loaded

    def retain(self, referenced: set[str]) -> None:
        """Release every loaded segment not in ``referenced`` (the segments the cached manifests name)."""
        with self._lock:
            for segment_id in [s for s in self._segments if s not in referenced]:
                del self._segments[segment_id]

    def loaded(self) -> list[seg.LoadedSegment]:
        """The segments in memory now (for the store's accounting, its tests and the benchmark)."""
        with self._lock:
            return list(self._segments.values())


def _cached(blobs: BlobStore, collection_id: str, ref: SegmentRef, ext: str) -> tuple[str, str, str]:
    """A segment object's blob key, disk-cache name and sha256."""
    return (
        keys.segment_key(collection_id, ref.segment_id, ext),
        keys.cache_name(blobs.location, collection_id, ref.segment_id, ext),
        ref.bin_sha256 if ext == "bin" else ref.json_sha256,
    )


@contextlib.contextmanager
def _named(collection_id: str) -> Iterator[None]:
    """Name the collection in a corrupt segment's message."""
    try:
        yield
    except CorruptSegmentError as error:
        raise CorruptSegmentError(f"Collection {collection_id} cannot be read: {error.message}") from error
