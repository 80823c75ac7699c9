"""Export and import of one collection as a stream of JSON Lines, from and into either engine.

Format ``facesearch-collection`` version 1, one JSON object per line (UTF-8):

1. header: ``{"format": "facesearch-collection", "version": 1, "collection_id", "face_model_version",
   "dim", "engine", "created_at", "faces", "users"}`` (``faces``/``users``: the collection's counts
   when the export began; the footer counts what the file holds);
2. one line per live face: ``{"face": {"face_id", "image_id", "external_image_id", "bounding_box":
   {"left", "top", "width", "height"}, "confidence", "index_faces_model_version", "vector"}}`` with
   ``vector`` the base64 of ``dim`` little-endian float32 (the stored unit vector);
3. one line per user: ``{"user": {"user_id", "face_ids": [...]}}``;
4. footer: ``{"end": {"faces": n, "users": u}}`` (a file without it was cut short).

Streaming both ways: export reads one hnsw segment's records at a time and its vectors straight from
the cached segment file (memory-mapped, never the graph), or S3 Vectors a ListVectors page at a time;
import checks the whole file first (a bad file changes nothing), then adds faces in batches. An export
is a consistent snapshot of an hnsw collection (its segments are immutable); export an s3vectors
collection while nobody writes to it.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from facesearch.domain import FaceRecord
from facesearch.errors import InvalidParameterException
from facesearch.store import keys, s3vectors
from facesearch.store import segment as seg
from facesearch.store.manifest import ENGINE_S3VECTORS, Manifest, SegmentRef
from facesearch.store.vectorindex import IndexGone

if TYPE_CHECKING:
    from facesearch.store.core import CollectionStore

FORMAT = "facesearch-collection"
VERSION = 1
# Faces per add_faces during import: one hnsw segment (or 20 PutVectors) each, ~20 MB of vectors at 512-D.
IMPORT_BATCH = 10_000
# hnswlib's saveIndex header: offsetLevel0, max_elements, cur_element_count, size_data_per_element,
# label_offset, offsetData (size_t each), maxlevel (int), enterpoint_node (uint32), maxM, maxM0, M
# (size_t), mult (double), ef_construction (size_t); level-0 element data follows.
_HNSW_HEADER = struct.Struct("<6Q i I 3Q d Q")


@dataclass(frozen=True)
class Header:
    collection_id: str
    face_model_version: str
    dim: int
    engine: str
    faces: int
    users: int


def _line(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def _face_line(record: FaceRecord, vector: np.ndarray) -> bytes:
    item = seg.record_to_json(record)
    item["vector"] = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return _line({"face": item})


# ------------------------------------------------------------------------------------------------ export


def export_collection(store: CollectionStore, collection_id: str, out: IO[bytes]) -> Header:
    """Write the collection to ``out`` (format above); what was written, as its header says."""
    manifest = store.view(collection_id).manifest
    users = {user_id: face_ids for user_id, face_ids in sorted(manifest.users.items())}
    header = Header(
        collection_id=collection_id,
        face_model_version=manifest.face_model_version,
        dim=manifest.index.dim,
        engine=manifest.engine,
        faces=manifest.face_count,
        users=len(users),
    )
    out.write(
        _line(
            {
                "format": FORMAT,
                "version": VERSION,
                **header.__dict__,
                "created_at": manifest.created_at.isoformat(),
            }
        )
    )
    written = 0
    faces = (
        _s3vectors_faces(store, manifest)
        if manifest.engine == ENGINE_S3VECTORS
        else _hnsw_faces(store, manifest)
    )
    for record, vector in faces:
        out.write(_face_line(record, vector))
        written += 1
    for user_id, face_ids in users.items():
        out.write(_line({"user": {"user_id": user_id, "face_ids": list(face_ids)}}))
    out.write(_line({"end": {"faces": written, "users": len(users)}}))
    return replace(header, faces=written)


def _hnsw_faces(store: CollectionStore, manifest: Manifest) -> Iterator[tuple[FaceRecord, np.ndarray]]:
    for ref in manifest.segments:
        records = seg.parse_records(_segment_file(store, manifest, ref, "json").read_bytes(), ref)
        vectors = SegmentVectors(_segment_file(store, manifest, ref, "bin"), manifest.index.dim)
        for row, record in enumerate(records):
            if record.face_id not in manifest.tombstones:
                yield record, vectors[row]
        del vectors


def _s3vectors_faces(store: CollectionStore, manifest: Manifest) -> Iterator[tuple[FaceRecord, np.ndarray]]:
    try:
        for stored in s3vectors.indexes(store).scan(manifest.vector_index or "", data=True, metadata=True):
            if stored.key not in manifest.tombstones and stored.data is not None:
                yield s3vectors.record_of(stored.key, stored.metadata, {}), stored.data
    except IndexGone as error:
        raise s3vectors.gone(manifest.collection_id) from error


def _segment_file(store: CollectionStore, manifest: Manifest, ref: SegmentRef, ext: str) -> Path:
    sha = ref.bin_sha256 if ext == "bin" else ref.json_sha256
    name = keys.cache_name(store.blobs.location, manifest.collection_id, ref.segment_id, ext)
    return store.cache.fetch(
        store.blobs, keys.segment_key(manifest.collection_id, ref.segment_id, ext), name, sha
    )


class SegmentVectors:
    """The vectors of an hnswlib index file by label (row), memory-mapped: the graph is never loaded.

    hnswlib's multi-threaded build stores elements in the order its threads inserted them, so the file's
    labels map each row to its element.
    """

    def __init__(self, path: Path, dim: int) -> None:
        with path.open("rb") as handle:
            fields = _HNSW_HEADER.unpack(handle.read(_HNSW_HEADER.size))
        count, per_element, label_offset, data_offset = fields[2], fields[3], fields[4], fields[5]
        self.count = count
        if count == 0:
            self._data = np.zeros((0, dim), dtype=np.float32)
            self._element = np.zeros(0, dtype=np.int64)
            return
        raw = np.memmap(path, dtype=np.uint8, mode="r", offset=_HNSW_HEADER.size, shape=(count, per_element))
        labels = raw[:, label_offset : label_offset + 8].copy().view("<u8").ravel()
        if not np.array_equal(np.sort(labels), np.arange(count, dtype=np.uint64)):
            raise InvalidParameterException(
                f"Segment file {path.name} does not label its rows 0..{count - 1}."
            )
        self._element = np.empty(count, dtype=np.int64)
        self._element[labels.astype(np.int64)] = np.arange(count)
        self._data = raw[:, data_offset : data_offset + 4 * dim].view("<f4")

    def __getitem__(self, row: int) -> np.ndarray:
        return np.array(self._data[self._element[row]])


# ------------------------------------------------------------------------------------------------ import


def read_header(stream: IO[bytes]) -> Header:
    try:
        document = json.loads(stream.readline())
        if document.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        if not isinstance(document.get("version"), int) or document["version"] > VERSION:
            raise ValueError(
                f"format version {document.get('version')!r}; this FaceSearch reads up to {VERSION}"
            )
        return Header(
            collection_id=str(document["collection_id"]),
            face_model_version=str(document["face_model_version"]),
            dim=int(document["dim"]),
            engine=str(document["engine"]),
            faces=int(document["faces"]),
            users=int(document["users"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidParameterException(f"The export file has no readable header: {error}.") from error


@dataclass(frozen=True)
class _User:
    user_id: str
    face_ids: list[str]


def _items(stream: IO[bytes], header: Header) -> Iterator[tuple[FaceRecord, np.ndarray] | _User]:
    """Faces (record, vector) and users of the file, each checked, then the footer's counts."""
    faces = users = 0
    for number, line in enumerate(stream, start=2):
        try:
            document = json.loads(line)
            if "face" in document:
                item = document["face"]
                vector = np.frombuffer(base64.b64decode(item["vector"], validate=True), dtype="<f4")
                if vector.shape != (header.dim,):
                    raise ValueError(f"a vector of {vector.size} values, not {header.dim}")
                faces += 1
                yield seg.record_from_json(item), vector
            elif "user" in document:
                users += 1
                user = document["user"]
                yield _User(str(user["user_id"]), [str(face_id) for face_id in user["face_ids"]])
            elif "end" in document:
                if document["end"] != {"faces": faces, "users": users}:
                    raise ValueError(
                        f"the footer {document['end']} does not match {faces} faces, {users} users"
                    )
                return
            else:
                raise ValueError("an unknown line")
        except (ValueError, KeyError, TypeError) as error:
            raise InvalidParameterException(
                f"The export file is invalid at line {number}: {error}."
            ) from error
    raise InvalidParameterException("The export file ends without its footer line: it was cut short.")


def import_collection(
    store: CollectionStore,
    collection_id: str,
    open_stream,
    *,
    engine: str | None = None,
    batch: int = IMPORT_BATCH,
) -> Header:
    """Create ``collection_id`` (engine: ``engine`` or the store's choice) from an export file.

    ``open_stream()`` opens the file anew (it is read twice: a full check, then the import), so a bad
    file changes nothing. ResourceAlreadyExistsException if the collection exists.
    """
    with open_stream() as stream:
        header = read_header(stream)
        for _ in _items(stream, header):
            pass
    store.create_collection(
        collection_id, face_model_version=header.face_model_version, dim=header.dim, engine=engine
    )
    records: list[FaceRecord] = []
    vectors: list[np.ndarray] = []

    def flush() -> None:
        if records:
            store.add_faces(collection_id, records, np.stack(vectors))
            records.clear()
            vectors.clear()

    with open_stream() as stream:
        read_header(stream)
        for item in _items(stream, header):
            if isinstance(item, _User):
                flush()
                store.create_user(collection_id, item.user_id)
                if item.face_ids:
                    store.associate_faces(collection_id, item.user_id, item.face_ids)
                continue
            records.append(item[0])
            vectors.append(item[1])
            if len(records) >= batch:
                flush()
        flush()
    return header
