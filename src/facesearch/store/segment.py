"""Immutable segments: an hnswlib graph (``.bin``) plus the face records of its rows (``.json``).

Row ``i`` of the graph has label ``i`` and belongs to ``faces[i]`` of the JSON. Vectors are stored
L2-normalised (cosine space), so ``get_items`` returns them as searched. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import hnswlib
import numpy as np

from facesearch.domain import BoundingBox, FaceRecord
from facesearch.store.errors import CorruptSegmentError
from facesearch.store.manifest import IndexParams, SegmentRef

SEGMENT_FORMAT_VERSION = 1
# hnswlib's own default seed, fixed so the same input builds the same graph.
HNSW_RANDOM_SEED = 100
# Segments up to this many faces are searched exactly from a matrix (no graph in memory): a 512-D scan
# costs ~0.18 us a face (bench/store.py's brute force: 17.5 ms for 100 000), so ~0.2 ms here, below one
# graph search (~1 ms), and an hnswlib index has a fixed ~2.5 MB cost (HNSW_FIXED_BYTES).
BRUTE_FORCE_MAX_FACES = 1024
HNSW_FIXED_BYTES = 65_536 * 40


@dataclass(frozen=True)
class BuiltSegment:
    """A freshly built segment: its manifest entry, the two objects to upload, and what was indexed."""

    ref: SegmentRef
    bin_body: bytes
    json_body: bytes
    index: hnswlib.Index
    records: tuple[FaceRecord, ...]
    vectors: np.ndarray | None  # None for an extended segment (always graph-sized: no matrix is kept)


class DeletedRows:
    """The rows of one segment whose faces are tombstoned, and (graph segments) marked deleted in hnswlib.

    Only grows: face ids are never reused, and a tombstone leaves the manifest only with its segment.
    Readers take ``rows_for`` without a lock when the tombstone set is the one last applied (compared by
    identity, so an unchanged manifest costs nothing); a new set is applied under this segment's lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (tombstone set last applied, sorted dead rows): replaced whole, so readers see a consistent pair.
        self._state: tuple[frozenset[str] | None, np.ndarray] = (None, np.zeros(0, dtype=np.int64))

    def rows_for(self, tombstones: frozenset[str], row_of: dict[str, int], index: hnswlib.Index | None):
        applied, rows = self._state
        if applied is tombstones:
            return rows
        with self._lock:
            applied, rows = self._state
            if applied is not tombstones:
                known = set(rows.tolist())
                new = sorted({row_of[f] for f in tombstones if f in row_of} - known)
                if index is not None:
                    for row in new:
                        index.mark_deleted(row)
                rows = np.array(sorted(known.union(new)), dtype=np.int64)
                self._state = (tombstones, rows)
            return rows


@dataclass(frozen=True)
class LoadedSegment:
    """A segment in memory: records always; for searching, a graph or (small segments) a vector matrix.

    Segments of at most ``BRUTE_FORCE_MAX_FACES`` faces keep their vectors as one float32 matrix and are
    searched exactly: an hnswlib index costs ~2.5 MB however small (65 536 label-operation mutexes of
    40 bytes each), and scanning that many vectors is as fast as a graph search. Nothing here changes
    after load except the deleted rows, which only grow.
    """

    ref: SegmentRef
    records: tuple[FaceRecord, ...]
    row_of: dict[str, int]
    index: hnswlib.Index | None = None
    matrix: np.ndarray | None = None
    deleted: DeletedRows = field(default_factory=DeletedRows, compare=False)

    @property
    def searchable(self) -> bool:
        return self.index is not None or self.matrix is not None

    def vectors(self, rows: list[int]) -> np.ndarray:
        """The unit vectors of ``rows``, shape (len(rows), dim)."""
        if self.matrix is not None:
            return self.matrix[rows]
        return np.asarray(self.graph().get_items(rows), dtype=np.float32)

    def graph(self) -> hnswlib.Index:
        """The hnswlib index: segments loaded with ``graph=True`` and over the exact-search size have one."""
        if self.index is None:
            raise RuntimeError(f"segment {self.ref.segment_id} was loaded without its graph")
        return self.index

    def nbytes(self) -> int:
        """Approximate memory of the vectors and graph (for the store's own accounting and tests)."""
        if self.matrix is not None:
            return self.matrix.nbytes
        if self.index is None:
            return 0
        # hnswlib: per element the vector, level-0 links (2*M) and label; plus the fixed lock table.
        per_element = 4 * self.index.dim + 4 * (2 * self.index.M + 1) + 8
        return per_element * self.ref.count + HNSW_FIXED_BYTES


def searchable(
    ref: SegmentRef,
    records: tuple[FaceRecord, ...],
    index: hnswlib.Index,
    vectors: np.ndarray | None = None,
) -> LoadedSegment:
    """A loaded segment ready to search: small ones keep a matrix and drop their graph (see LoadedSegment)."""
    row_of = {record.face_id: row for row, record in enumerate(records)}
    if ref.count > BRUTE_FORCE_MAX_FACES:
        return LoadedSegment(ref=ref, records=records, row_of=row_of, index=index)
    if vectors is None:
        vectors = np.asarray(index.get_items(list(range(ref.count))), dtype=np.float32)
    matrix = np.ascontiguousarray(vectors, dtype=np.float32).reshape(ref.count, -1)
    return LoadedSegment(ref=ref, records=records, row_of=row_of, matrix=matrix)


@dataclass(frozen=True)
class ExactBlock:
    """The live faces of a manifest's matrix segments as one matrix, searched with one product.

    A collection built by single-face writes holds up to FAN_OUT - 1 small segments per size tier below
    ``BRUTE_FORCE_MAX_FACES``; scanning them one by one costs a product, a partition and a sort each
    (~25 us of Python apiece, bench/store.py --writes-of 1), so a search scans them once, together. Built
    per manifest (a write's new segment or tombstone makes a new one); tombstoned rows are left out.
    """

    records: tuple[FaceRecord, ...]
    matrix: np.ndarray


def exact_block(segments: Sequence[LoadedSegment], tombstones: frozenset[str], dim: int) -> ExactBlock:
    """One ``ExactBlock`` of the live rows of ``segments`` (each loaded with its matrix)."""
    records: list[FaceRecord] = []
    parts: list[np.ndarray] = []
    for segment in segments:
        if segment.matrix is None:
            raise RuntimeError(f"segment {segment.ref.segment_id} has no matrix to search exactly")
        rows = [row for row, record in enumerate(segment.records) if record.face_id not in tombstones]
        records.extend(segment.records[row] for row in rows)
        parts.append(segment.matrix[rows])
    matrix = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
    return ExactBlock(records=tuple(records), matrix=np.ascontiguousarray(matrix, dtype=np.float32))


def search_block(block: ExactBlock, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Up to ``k`` (row, cosine) of the block nearest to the unit ``query``, best first (exact)."""
    k = min(k, len(block.records))
    if k <= 0:
        return []
    count = len(block.records)
    return _exact(block.matrix, np.arange(count), np.zeros(0, np.int64), query, k)


def record_to_json(record: FaceRecord) -> dict:
    box = record.bounding_box
    return {
        "face_id": record.face_id,
        "image_id": record.image_id,
        "external_image_id": record.external_image_id,
        "bounding_box": {"left": box.left, "top": box.top, "width": box.width, "height": box.height},
        "confidence": record.confidence,
        "index_faces_model_version": record.index_faces_model_version,
    }


def record_from_json(item: dict) -> FaceRecord:
    box = item["bounding_box"]
    return FaceRecord(
        face_id=item["face_id"],
        image_id=item["image_id"],
        external_image_id=item["external_image_id"],
        bounding_box=BoundingBox(left=box["left"], top=box["top"], width=box["width"], height=box["height"]),
        confidence=item["confidence"],
        index_faces_model_version=item["index_faces_model_version"],
    )


def build(
    segment_id: str, records: tuple[FaceRecord, ...], vectors: np.ndarray, params: IndexParams, model: str
) -> BuiltSegment:
    """Build the graph of ``vectors`` (rows match ``records``) and serialise both halves."""
    count, dim = vectors.shape
    index = hnswlib.Index(space=params.space, dim=dim)
    index.init_index(
        max_elements=max(count, 1),
        ef_construction=params.ef_construction,
        M=params.m,
        random_seed=HNSW_RANDOM_SEED,
    )
    if count:
        index.add_items(np.ascontiguousarray(vectors, dtype=np.float32), np.arange(count))
    return _serialise(segment_id, records, index, params, model, vectors)


def extend(
    segment_id: str,
    base_records: tuple[FaceRecord, ...],
    base_graph: hnswlib.Index,
    records: tuple[FaceRecord, ...],
    vectors: np.ndarray,
    params: IndexParams,
    model: str,
) -> BuiltSegment:
    """A segment of a base segment's rows followed by ``records``: ``vectors`` inserted into ``base_graph``.

    ``base_graph`` is a private copy of the base's graph loaded with room for the new rows
    (``SegmentMemory.read_graph`` with room); inserting into it indexes each new face once, as a bulk build
    would, instead of rebuilding the base's faces.
    """
    start = len(base_records)
    if vectors.shape[0]:
        base_graph.add_items(
            np.ascontiguousarray(vectors, dtype=np.float32), np.arange(start, start + len(records))
        )
    return _serialise(segment_id, (*base_records, *records), base_graph, params, model, None)


def _serialise(
    segment_id: str,
    records: tuple[FaceRecord, ...],
    index: hnswlib.Index,
    params: IndexParams,
    model: str,
    vectors: np.ndarray | None,
) -> BuiltSegment:
    index.set_ef(params.ef)
    # hnswlib serialises only to a file. A temp file, not a temp folder: removing a folder costs a
    # journal commit on some disks (~3 ms, the bulk of a one-face write there).
    handle, name = tempfile.mkstemp(prefix="facesearch-segment-", suffix=".bin")
    os.close(handle)
    try:
        index.save_index(name)
        bin_body = Path(name).read_bytes()
    finally:
        os.unlink(name)
    json_body = json.dumps(
        {
            "format": SEGMENT_FORMAT_VERSION,
            "segment_id": segment_id,
            "face_model_version": model,
            "dim": index.dim,
            "faces": [record_to_json(record) for record in records],
        },
        separators=(",", ":"),
    ).encode()
    ref = SegmentRef(
        segment_id=segment_id,
        count=len(records),
        bin_sha256=hashlib.sha256(bin_body).hexdigest(),
        json_sha256=hashlib.sha256(json_body).hexdigest(),
        bin_bytes=len(bin_body),
    )
    return BuiltSegment(
        ref=ref, bin_body=bin_body, json_body=json_body, index=index, records=records, vectors=vectors
    )


def parse_records(body: bytes, ref: SegmentRef) -> tuple[FaceRecord, ...]:
    """The face records of a segment's JSON half, checked against its manifest entry."""
    try:
        document = json.loads(body)
        if document["format"] > SEGMENT_FORMAT_VERSION:
            raise CorruptSegmentError(
                f"Segment {ref.segment_id} has format version {document['format']}; this FaceSearch reads "
                f"versions up to {SEGMENT_FORMAT_VERSION}."
            )
        records = tuple(record_from_json(item) for item in document["faces"])
    except (ValueError, KeyError, TypeError) as error:
        raise CorruptSegmentError(
            f"Segment {ref.segment_id} has unreadable face records: {error!r}."
        ) from error
    if len(records) != ref.count:
        raise CorruptSegmentError(
            f"Segment {ref.segment_id} holds {len(records)} face records; its manifest says {ref.count}."
        )
    return records


def load_graph(
    path: Path, ref: SegmentRef, params: IndexParams, *, capacity: int | None = None
) -> hnswlib.Index:
    """Load a segment's graph from a checksum-verified file, with room for ``capacity`` rows if given."""
    index = hnswlib.Index(space=params.space, dim=params.dim)
    try:
        index.load_index(str(path), max_elements=max(ref.count, capacity or 1))
    except (RuntimeError, ValueError) as error:
        raise CorruptSegmentError(f"Segment {ref.segment_id} has an unreadable graph: {error}.") from error
    if index.get_current_count() != ref.count:
        raise CorruptSegmentError(
            f"Segment {ref.segment_id} graph holds {index.get_current_count()} vectors, expected {ref.count}."
        )
    index.set_ef(params.ef)
    return index


def search(
    segment: LoadedSegment, query: np.ndarray, k: int, tombstones: frozenset[str], ef: int
) -> list[tuple[int, float]]:
    """Up to ``k`` (row, cosine) of the segment's rows not in ``tombstones`` nearest to the unit ``query``.

    Takes no store-wide lock: hnswlib's knn_query releases the GIL and is safe to run concurrently
    (hnswlib searches with max(ef, k)). ``ef`` is the graph's search breadth; it only changes when the
    collection's size does, and a query racing that change searches with either value.
    """
    dead = segment.deleted.rows_for(tombstones, segment.row_of, segment.index)
    k = min(k, segment.ref.count - len(dead))
    if k <= 0:
        return []
    if segment.matrix is not None:
        return _exact(segment.matrix, np.arange(segment.ref.count), dead, query, k)
    index = segment.graph()
    if index.ef != ef:
        index.set_ef(ef)
    try:
        labels, distances = index.knn_query(query.reshape(1, -1), k=k)
    except RuntimeError:
        # hnswlib cannot always fill k results when many rows are deleted: answer exactly instead.
        rows = np.setdiff1d(np.arange(segment.ref.count), dead)
        return _exact(segment.vectors(rows.tolist()), rows, np.zeros(0, np.int64), query, k)
    # Clipped: float32 rounding can put a self-match a hair above 1.
    return [
        (int(row), min(1.0, 1.0 - float(distance)))
        for row, distance in zip(labels[0], distances[0], strict=True)
    ]


def _exact(
    vectors: np.ndarray, rows: np.ndarray, dead: np.ndarray, query: np.ndarray, k: int
) -> list[tuple[int, float]]:
    cosines = vectors @ query
    cosines[dead] = -np.inf
    best = np.argpartition(-cosines, k - 1)[:k] if k < len(cosines) else np.arange(len(cosines))
    best = best[np.argsort(-cosines[best], kind="stable")]
    return [(int(rows[i]), min(1.0, float(cosines[i]))) for i in best]
