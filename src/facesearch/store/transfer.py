"""Export and import a collection as versioned JSON Lines, streamed: a million faces in little memory.

Format ``facesearch.collection`` version 1, UTF-8, one JSON object per line::

    {"format": "facesearch.collection", "version": 1, "collection_id": "...", "face_model_version": "...",
     "created_at": "<ISO 8601 UTC>", "index": {"space": "cosine", "dim": 512, "M": 16,
     "ef_construction": 200, "ef": 160}, "engine": "hnsw" | "s3vectors", "faces": <count>,
     "users": <count>}
    {"type": "face", "face_id": "...", "image_id": "...", "external_image_id": "..." | null,
     "bounding_box": {"left": ..., "top": ..., "width": ..., "height": ...}, "confidence": ...,
     "index_faces_model_version": "...", "vector": "<base64 of dim little-endian float32, unit length>"}
    ... one line per live face ...
    {"type": "user", "user_id": "...", "face_ids": ["...", ...]}
    ... one line per user, after every face ...

The header comes first and carries every index parameter, so an import rebuilds the same kind of
collection; a reader refuses versions newer than it knows. ``engine`` says where the export came from;
an import chooses its own (its ``engine`` argument, else the store's choice for the collection id), so
a collection moves between the hnsw and s3vectors engines by export and import. Vectors are exactly
the stored float32 values (an import normalises them again, which may move a value by a float32
rounding step).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from itertools import islice

import numpy as np

from facesearch.domain import CollectionInfo, FaceRecord
from facesearch.errors import InvalidParameterException
from facesearch.store.core import CollectionStore
from facesearch.store.manifest import IndexParams
from facesearch.store.segment import record_from_json, record_to_json

EXPORT_FORMAT = "facesearch.collection"
EXPORT_VERSION = 1
# Faces per add_faces while importing: one segment each; ~20 MB of 512-D vectors in memory at a time.
IMPORT_BATCH_FACES = 10_000
_USER_CHUNK = 100


def export_collection(store: CollectionStore, collection_id: str) -> Iterator[str]:
    """The lines (without newlines) of a collection's export, produced as they are read."""
    view = store.view(collection_id)
    manifest = view.manifest
    index = manifest.index
    yield json.dumps(
        {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "collection_id": manifest.collection_id,
            "face_model_version": manifest.face_model_version,
            "created_at": manifest.created_at.isoformat(),
            "index": {
                "space": index.space,
                "dim": index.dim,
                "M": index.m,
                "ef_construction": index.ef_construction,
                "ef": index.ef,
            },
            "engine": manifest.engine,
            "faces": manifest.face_count,
            "users": len(manifest.users),
        }
    )
    for record, vector in view.export_faces():
        line = {"type": "face", **record_to_json(record)}
        line["vector"] = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
        yield json.dumps(line)
    for user_id, face_ids in sorted(manifest.users.items()):
        yield json.dumps({"type": "user", "user_id": user_id, "face_ids": list(face_ids)})


def import_collection(
    store: CollectionStore,
    lines: Iterable[str],
    *,
    collection_id: str | None = None,
    batch_faces: int = IMPORT_BATCH_FACES,
    engine: str | None = None,
) -> CollectionInfo:
    """Create a collection (the export's id unless ``collection_id``) from export lines, streaming.

    InvalidParameterException for a bad header or line (naming its line number); the collection this
    import created is then deleted again, so a failed import leaves nothing behind. Faces are added in
    segments of ``batch_faces`` (S3 Vectors: PutVectors of 500), then compacted by the size-tier policy
    with no budget (nothing to compact on s3vectors). ``engine``: the new collection's engine.
    """
    numbered = enumerate((line for line in lines if line.strip()), start=1)
    try:
        _, first = next(numbered)
    except StopIteration:
        raise InvalidParameterException("The import is empty: expected a header line.") from None
    header = _header(first)
    index = header["index"]
    params = IndexParams(
        space=index["space"],
        dim=int(index["dim"]),
        m=int(index["M"]),
        ef_construction=int(index["ef_construction"]),
        ef=int(index["ef"]),
    )
    target = collection_id or header["collection_id"]
    model = header["face_model_version"]
    store.create_collection(target, face_model_version=model, dim=params.dim, index=params, engine=engine)
    try:
        users = _import_faces(store, target, numbered, params.dim, batch_faces)
        for user_id, face_ids in users:
            store.create_user(target, user_id)
            for start in range(0, len(face_ids), _USER_CHUNK):
                result = store.associate_faces(target, user_id, face_ids[start : start + _USER_CHUNK])
                if result.unsuccessful:
                    raise InvalidParameterException(
                        f"User {user_id} names faces the import does not hold: "
                        f"{', '.join(item.face_id for item in result.unsuccessful)}."
                    )
        store.compact(target)
        info = store.view(target).info
        if info.face_count != header["faces"] or info.user_count != header["users"]:
            raise InvalidParameterException(
                f"The import holds {info.face_count} faces and {info.user_count} users; its header "
                f"says {header['faces']} and {header['users']}."
            )
        return info
    except BaseException:
        store.delete_collection(target)
        raise


def _header(line: str) -> dict:
    try:
        header = json.loads(line)
        version = header["format"] == EXPORT_FORMAT and header["version"]
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidParameterException("Line 1 is not a facesearch.collection header.") from error
    if not isinstance(version, int) or not 1 <= version <= EXPORT_VERSION:
        raise InvalidParameterException(
            f"Line 1: export format {header.get('format')!r} version {header.get('version')!r}; this "
            f"FaceSearch reads {EXPORT_FORMAT} versions up to {EXPORT_VERSION}."
        )
    missing = {"collection_id", "face_model_version", "index", "faces", "users"} - set(header)
    if missing:
        raise InvalidParameterException(f"Line 1: the header lacks {', '.join(sorted(missing))}.")
    return header


def _import_faces(
    store: CollectionStore, collection_id: str, numbered: Iterator[tuple[int, str]], dim: int, batch: int
) -> list[tuple[str, list[str]]]:
    """Add the face lines in batches; the user lines that follow them, as (user id, face ids)."""
    users: list[tuple[str, list[str]]] = []
    while chunk := list(islice(numbered, batch)):
        records: list[FaceRecord] = []
        vectors = np.zeros((len(chunk), dim), dtype=np.float32)
        for number, line in chunk:
            item = _item(number, line)
            if item.get("type") == "user" and isinstance(item.get("face_ids"), list):
                users.append((str(item["user_id"]), [str(face_id) for face_id in item["face_ids"]]))
            elif item.get("type") == "face" and not users:
                records.append(_face(number, item))
                vectors[len(records) - 1] = _vector(number, item, dim)
            else:
                raise InvalidParameterException(f"Line {number}: expected a face line or, after them, users.")
        store.add_faces(collection_id, records, vectors[: len(records)])
    return users


def _item(number: int, line: str) -> dict:
    try:
        item = json.loads(line)
    except ValueError as error:
        raise InvalidParameterException(f"Line {number} is not JSON.") from error
    if not isinstance(item, dict):
        raise InvalidParameterException(f"Line {number} is not a JSON object.")
    return item


def _face(number: int, item: dict) -> FaceRecord:
    try:
        return record_from_json(item)
    except (KeyError, TypeError) as error:
        raise InvalidParameterException(f"Line {number}: a face line lacks {error}.") from error


def _vector(number: int, item: dict, dim: int) -> np.ndarray:
    try:
        raw = base64.b64decode(item["vector"], validate=True)
    except (KeyError, TypeError, binascii.Error) as error:
        raise InvalidParameterException(f"Line {number}: the vector is not base64.") from error
    if len(raw) != 4 * dim:
        raise InvalidParameterException(
            f"Line {number}: the vector has {len(raw)} bytes, expected {4 * dim}."
        )
    return np.frombuffer(raw, dtype="<f4")
