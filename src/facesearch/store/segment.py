"""Immutable segments: an hnswlib graph (``.bin``) plus the face records of its rows (``.json``).

Row ``i`` of the graph has label ``i`` and belongs to ``faces[i]`` of the JSON. Vectors are stored
L2-normalised (cosine space), so ``get_items`` returns them as searched. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
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


@dataclass(frozen=True)
class BuiltSegment:
    """A freshly built segment: its manifest entry and the two objects to upload."""

    ref: SegmentRef
    bin_body: bytes
    json_body: bytes
    index: hnswlib.Index
    records: tuple[FaceRecord, ...]


@dataclass
class LoadedSegment:
    """A segment in memory: records always, the graph once a search or vector read needs it.

    ``marked`` holds the rows already ``mark_deleted`` in the graph (tombstones only ever grow for a
    segment, since face ids are never reused).
    """

    ref: SegmentRef
    records: tuple[FaceRecord, ...]
    row_of: dict[str, int]
    index: hnswlib.Index | None = None
    marked: set[int] = field(default_factory=set)
    # The tombstone set last applied (by identity): skips re-scanning it while the manifest is unchanged.
    marked_for: frozenset[str] | None = None


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
    index.set_ef(params.ef)
    with tempfile.TemporaryDirectory(prefix="facesearch-segment-") as folder:
        path = Path(folder) / "graph.bin"
        index.save_index(str(path))
        bin_body = path.read_bytes()
    json_body = json.dumps(
        {
            "format": SEGMENT_FORMAT_VERSION,
            "segment_id": segment_id,
            "face_model_version": model,
            "dim": dim,
            "faces": [record_to_json(record) for record in records],
        },
        separators=(",", ":"),
    ).encode()
    ref = SegmentRef(
        segment_id=segment_id,
        count=count,
        bin_sha256=hashlib.sha256(bin_body).hexdigest(),
        json_sha256=hashlib.sha256(json_body).hexdigest(),
        bin_bytes=len(bin_body),
    )
    return BuiltSegment(ref=ref, bin_body=bin_body, json_body=json_body, index=index, records=records)


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


def load_graph(path: Path, ref: SegmentRef, params: IndexParams) -> hnswlib.Index:
    """Load a segment's graph from a checksum-verified file."""
    index = hnswlib.Index(space=params.space, dim=params.dim)
    try:
        index.load_index(str(path), max_elements=max(ref.count, 1))
    except (RuntimeError, ValueError) as error:
        raise CorruptSegmentError(f"Segment {ref.segment_id} has an unreadable graph: {error}.") from error
    if index.get_current_count() != ref.count:
        raise CorruptSegmentError(
            f"Segment {ref.segment_id} graph holds {index.get_current_count()} vectors, expected {ref.count}."
        )
    index.set_ef(params.ef)
    return index


def search(segment: LoadedSegment, query: np.ndarray, k: int, ef: int) -> list[tuple[int, float]]:
    """Up to ``k`` (row, cosine) of the segment's live rows nearest to the unit vector ``query``."""
    index = segment.index
    live = segment.ref.count - len(segment.marked)
    k = min(k, live)
    if k <= 0:
        return []
    index.set_ef(max(ef, k))
    try:
        labels, distances = index.knn_query(query.reshape(1, -1), k=k)
    except RuntimeError:
        # hnswlib cannot always fill k results when many rows are deleted: answer exactly instead.
        return _brute_force(segment, query, k)
    # Clipped: float32 rounding can put a self-match a hair above 1.
    return [
        (int(row), min(1.0, 1.0 - float(distance)))
        for row, distance in zip(labels[0], distances[0], strict=True)
    ]


def _brute_force(segment: LoadedSegment, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    rows = np.array([row for row in range(segment.ref.count) if row not in segment.marked], dtype=np.int64)
    vectors = np.asarray(segment.index.get_items(rows, return_type="numpy"), dtype=np.float32)
    cosines = vectors @ query
    best = np.argsort(-cosines)[:k]
    return [(int(rows[i]), min(1.0, float(cosines[i]))) for i in best]
