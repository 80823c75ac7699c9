"""Segments in memory across warm invocations: loaded on demand from the disk cache, released when unnamed."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from facesearch.store import keys
from facesearch.store import segment as seg
from facesearch.store.blobs import BlobStore
from facesearch.store.cache import DiskCache
from facesearch.store.errors import CorruptSegmentError
from facesearch.store.manifest import Manifest, SegmentRef


class SegmentMemory:
    """The loaded segments of one store, by segment id (ids are unique per store, so never stale)."""

    def __init__(self, cache: DiskCache) -> None:
        self.cache = cache
        self._segments: dict[str, seg.LoadedSegment] = {}
        # One lock for the in-memory state: hnswlib's mark_deleted/set_ef must not race a query.
        self.lock = threading.RLock()

    def load(
        self, blobs: BlobStore, manifest: Manifest, ref: SegmentRef, *, graph: bool
    ) -> seg.LoadedSegment:
        """A segment in memory (records; the graph if ``graph``), with the manifest's tombstones marked."""
        with self.lock:
            loaded = self._segments.get(ref.segment_id)
            if loaded is None:
                body = self._fetch(blobs, manifest.collection_id, ref, "json").read_bytes()
                records = seg.parse_records(body, ref)
                loaded = seg.LoadedSegment(
                    ref=ref,
                    records=records,
                    row_of={record.face_id: row for row, record in enumerate(records)},
                )
                self._segments[ref.segment_id] = loaded
            if graph and loaded.index is None:
                path = self._fetch(blobs, manifest.collection_id, ref, "bin")
                loaded.index = seg.load_graph(path, ref, manifest.index)
            if loaded.index is not None and loaded.marked_for is not manifest.tombstones:
                loaded.marked_for = manifest.tombstones
                for face_id in manifest.tombstones:
                    row = loaded.row_of.get(face_id)
                    if row is not None and row not in loaded.marked:
                        loaded.index.mark_deleted(row)
                        loaded.marked.add(row)
            return loaded

    def remember(self, built: seg.BuiltSegment) -> None:
        """Keep a segment this process built and swapped in loaded, so the next read downloads nothing."""
        with self.lock:
            self._segments[built.ref.segment_id] = seg.LoadedSegment(
                ref=built.ref,
                records=built.records,
                row_of={record.face_id: row for row, record in enumerate(built.records)},
                index=built.index,
            )

    def retain(self, referenced: set[str]) -> None:
        """Release every loaded segment not in ``referenced`` (the segments the cached manifests name)."""
        with self.lock:
            for segment_id in [s for s in self._segments if s not in referenced]:
                del self._segments[segment_id]

    def loaded(self) -> list[seg.LoadedSegment]:
        """The segments in memory now (for measurements and the benchmark)."""
        with self.lock:
            return list(self._segments.values())

    def _fetch(self, blobs: BlobStore, collection_id: str, ref: SegmentRef, ext: str) -> Path:
        sha = ref.bin_sha256 if ext == "bin" else ref.json_sha256
        name = keys.cache_name(blobs.location, collection_id, ref.segment_id, ext)
        path = self.cache.path(name)
        if path.exists() and ext == "json" and hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            self.cache.discard(name)  # damaged on local disk: fetch it again
        try:
            return self.cache.fetch(blobs, keys.segment_key(collection_id, ref.segment_id, ext), name, sha)
        except CorruptSegmentError as error:
            raise CorruptSegmentError(
                f"Collection {collection_id} cannot be read: {error.message}"
            ) from error
