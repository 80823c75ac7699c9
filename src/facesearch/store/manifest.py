"""The collection manifest: the one mutable JSON object; it names segments, tombstones and users."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property

from facesearch.store.errors import ManifestFormatError

# Bump when the manifest's meaning changes; a reader refuses manifests newer than it understands.
# Version 2 added the engine; hnsw manifests are still written as version 1, so older readers keep
# reading them and refuse (cleanly) only the s3vectors collections they could not answer.
FORMAT_VERSION = 2
_HNSW_FORMAT_VERSION = 1
# Engines (DESIGN: one per collection, chosen at creation): segments in the function, or S3 Vectors.
ENGINE_HNSW = "hnsw"
ENGINE_S3VECTORS = "s3vectors"
ENGINES = (ENGINE_HNSW, ENGINE_S3VECTORS)


@dataclass(frozen=True)
class IndexParams:
    """Every parameter the segments' hnswlib graphs are built and searched with."""

    space: str
    dim: int
    m: int
    ef_construction: int
    ef: int


@dataclass(frozen=True)
class SegmentRef:
    """One immutable segment: its id, face count and the sha256 of its two objects."""

    segment_id: str
    count: int
    bin_sha256: str
    json_sha256: str
    bin_bytes: int


@dataclass(frozen=True)
class Manifest:
    """A collection's state; replaced whole (never edited in place) and swapped by conditional PUT.

    ``tombstones`` are deleted face ids still present in some segment; ``users`` maps UserId -> its
    associated face ids (sorted). ``tags`` are the collection's resource tags (key -> value); manifests
    written before tags existed read as having none. ``serial`` grows by one with every swap.

    ``engine`` holds the vectors: ``hnsw`` in ``segments``; ``s3vectors`` in the S3 Vectors index
    ``vector_index``, which holds ``vector_count`` faces counted by a swap (tombstones there are deleted
    faces whose vectors may still be in the index until the delete finishes).
    """

    collection_id: str
    face_model_version: str
    created_at: datetime
    index: IndexParams
    segments: tuple[SegmentRef, ...] = ()
    tombstones: frozenset[str] = frozenset()
    users: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    serial: int = 0
    engine: str = ENGINE_HNSW
    vector_index: str | None = None
    vector_count: int = 0

    @property
    def stored_count(self) -> int:
        return sum(segment.count for segment in self.segments) + self.vector_count

    @property
    def face_count(self) -> int:
        return self.stored_count - len(self.tombstones)

    def user_of(self) -> dict[str, str]:
        """face id -> the user it is associated with (computed once per manifest: searches ask every time)."""
        return self._user_of

    @cached_property
    def _user_of(self) -> dict[str, str]:
        return {face_id: user_id for user_id, face_ids in self.users.items() for face_id in face_ids}

    def evolve(self, **changes) -> Manifest:
        """A copy with ``changes`` applied and the serial bumped."""
        return replace(self, serial=self.serial + 1, **changes)

    def to_json(self) -> bytes:
        document: dict = {
            "format": _HNSW_FORMAT_VERSION if self.engine == ENGINE_HNSW else FORMAT_VERSION,
            "collection_id": self.collection_id,
            "face_model_version": self.face_model_version,
            "created_at": self.created_at.isoformat(),
            "index": {
                "space": self.index.space,
                "dim": self.index.dim,
                "M": self.index.m,
                "ef_construction": self.index.ef_construction,
                "ef": self.index.ef,
            },
            "segments": [
                {
                    "id": s.segment_id,
                    "count": s.count,
                    "bin_sha256": s.bin_sha256,
                    "json_sha256": s.json_sha256,
                    "bin_bytes": s.bin_bytes,
                }
                for s in self.segments
            ],
            "tombstones": sorted(self.tombstones),
            "users": {user_id: list(face_ids) for user_id, face_ids in sorted(self.users.items())},
            "tags": dict(sorted(self.tags.items())),
            "serial": self.serial,
        }
        if self.engine != ENGINE_HNSW:
            document["engine"] = {
                "name": self.engine,
                "vector_index": self.vector_index,
                "vector_count": self.vector_count,
            }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, body: bytes, where: str) -> Manifest:
        try:
            document = json.loads(body)
            version = document["format"]
        except (ValueError, KeyError, TypeError) as error:
            raise ManifestFormatError(
                f"The manifest {where} is not a readable collection manifest."
            ) from error
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ManifestFormatError(
                f"The manifest {where} has format version {version!r}; this FaceSearch reads versions up to "
                f"{FORMAT_VERSION}. Upgrade FaceSearch to read this collection."
            )
        try:
            index = document["index"]
            engine = document.get("engine") or {"name": ENGINE_HNSW}
            if engine["name"] not in ENGINES:
                raise ValueError(f"unknown engine {engine['name']!r}")
            created_at = datetime.fromisoformat(document["created_at"])
            return cls(
                collection_id=document["collection_id"],
                face_model_version=document["face_model_version"],
                created_at=created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC),
                index=IndexParams(
                    space=index["space"],
                    dim=int(index["dim"]),
                    m=int(index["M"]),
                    ef_construction=int(index["ef_construction"]),
                    ef=int(index["ef"]),
                ),
                segments=tuple(
                    SegmentRef(
                        segment_id=s["id"],
                        count=int(s["count"]),
                        bin_sha256=s["bin_sha256"],
                        json_sha256=s["json_sha256"],
                        bin_bytes=int(s["bin_bytes"]),
                    )
                    for s in document["segments"]
                ),
                tombstones=frozenset(document["tombstones"]),
                users={user_id: tuple(face_ids) for user_id, face_ids in document["users"].items()},
                tags={str(key): str(value) for key, value in document.get("tags", {}).items()},
                serial=int(document["serial"]),
                engine=engine["name"],
                vector_index=engine.get("vector_index"),
                vector_count=int(engine.get("vector_count", 0)),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ManifestFormatError(f"The manifest {where} is malformed: {error!r}.") from error
