"""Reads of the s3vectors engine: the face records held as vector metadata, and S3VectorsView.

See ``store.s3vectors`` for the layout of the metadata and how searches wider than one QueryVectors
answer are split by ``shard``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from facesearch.domain import BoundingBox, FaceRecord
from facesearch.errors import InternalServerError, ResourceNotFoundException
from facesearch.store import changes
from facesearch.store.vectorindex import QUERY_TOP_K_MAX, IndexGone, Neighbour, VectorIndexes
from facesearch.store.view import CollectionView, face_not_found


class HasVectors(Protocol):
    """Anything that carries the deployment's vector indexes (the store, or one of its views)."""

    @property
    def vectors(self) -> VectorIndexes | None: ...


# 128 shards: for the widest search (4096 faces) a shard holds ~32 of them on average, far under the
# 100 one QueryVectors returns, so splitting down to one shard is never needed in practice.
SHARDS = 128
# Parallel QueryVectors of one split search (each ~100 ms warm on the service).
QUERY_THREADS = 8
NON_FILTERABLE = ("image_id", "external_image_id", "bounding_box", "confidence", "model_version")
_HAS_USER = {"user_id": {"$exists": True}}


def cosine_of(hit: Neighbour) -> float:
    """S3 Vectors' cosine distance is 1 - cosine; float32 rounding can step just outside [-1, 1]."""
    return min(1.0, max(-1.0, 1.0 - hit.distance))


def shard_of(face_id: str) -> int:
    return int.from_bytes(hashlib.sha256(face_id.encode()).digest()[:4], "big") % SHARDS


def metadata_of(record: FaceRecord, user_id: str | None = None) -> dict:
    box = record.bounding_box
    meta = {
        "shard": shard_of(record.face_id),
        "image_id": record.image_id,
        "bounding_box": json.dumps([box.left, box.top, box.width, box.height]),
        "confidence": record.confidence,
        "model_version": record.index_faces_model_version,
    }
    if record.external_image_id is not None:
        meta["external_image_id"] = record.external_image_id
    if user_id is not None:
        meta["user_id"] = user_id
    return meta


def record_of(face_id: str, meta: dict, user_of: dict[str, str]) -> FaceRecord:
    left, top, width, height = json.loads(meta["bounding_box"])
    return FaceRecord(
        face_id=face_id,
        image_id=meta["image_id"],
        external_image_id=meta.get("external_image_id"),
        bounding_box=BoundingBox(left, top, width, height),
        confidence=float(meta["confidence"]),
        index_faces_model_version=meta["model_version"],
        user_id=user_of.get(face_id),
    )


def indexes(store: HasVectors) -> VectorIndexes:
    if store.vectors is None:
        raise InternalServerError(
            "The s3vectors engine needs a vector bucket (FACESEARCH_VECTOR_BUCKET) and an S3 store."
        )
    return store.vectors


def gone(collection_id: str) -> ResourceNotFoundException:
    return changes.not_found(collection_id)


@dataclass(frozen=True)
class S3VectorsView(CollectionView):
    """A CollectionView whose faces are in the collection's S3 Vectors index (one request's reads)."""

    vectors: VectorIndexes | None = None
    # Vectors this view fetched (key -> metadata, None if absent): one GetVectors per 100 ids per request.
    fetched: dict[str, dict | None] = field(default_factory=dict, compare=False)

    @property
    def index(self) -> str:
        return self.manifest.vector_index or ""

    def prefetch(self, face_ids: Sequence[str]) -> None:
        wanted = [face_id for face_id in changes.unique(face_ids) if face_id not in self.fetched]
        if not wanted:
            return
        try:
            found = indexes(self).get(self.index, wanted)
        except IndexGone as error:
            raise gone(self.manifest.collection_id) from error
        for face_id in wanted:
            self.fetched[face_id] = found[face_id].metadata if face_id in found else None

    def is_live(self, face_id: str) -> bool:
        if face_id in self.manifest.tombstones:
            return False
        self.prefetch([face_id])
        return self.fetched[face_id] is not None

    def get_faces(self, face_ids: Sequence[str]) -> dict[str, FaceRecord]:
        self.prefetch(face_ids)
        user_of = self.manifest.user_of()
        return {
            face_id: record_of(face_id, self.fetched[face_id] or {}, user_of)
            for face_id in changes.unique(face_ids)
            if self.is_live(face_id)
        }

    def get_vectors(self, face_ids: Sequence[str]) -> np.ndarray:
        manifest = self.manifest
        try:
            found = indexes(self).get(self.index, list(changes.unique(face_ids)), data=True)
        except IndexGone as error:
            raise gone(manifest.collection_id) from error
        out = np.zeros((len(face_ids), manifest.index.dim), dtype=np.float32)
        for i, face_id in enumerate(face_ids):
            stored = found.get(face_id)
            if stored is None or stored.data is None or face_id in manifest.tombstones:
                raise face_not_found(manifest.collection_id, face_id)
            out[i] = stored.data
        return out

    def _listable(self, user_id: str | None, face_ids: Sequence[str] | None) -> list[str]:
        """As CollectionView's (sorted by FaceId, same tokens); every key of the index via ListVectors."""
        manifest = self.manifest
        if user_id is None and face_ids is None:
            try:
                keys = indexes(self).keys(self.index)
            except IndexGone as error:
                raise gone(manifest.collection_id) from error
            return sorted(key for key in keys if key not in manifest.tombstones)
        candidates = (
            sorted(manifest.users.get(user_id, ())) if user_id is not None else sorted(set(face_ids or ()))
        )
        if face_ids is not None:
            allowed = set(face_ids)
            candidates = [face_id for face_id in candidates if face_id in allowed]
        self.prefetch(candidates)
        return [face_id for face_id in candidates if self.is_live(face_id)]

    def _records(self, chosen: list[str], user_of: dict[str, str]) -> tuple[FaceRecord, ...]:
        self.prefetch(chosen)
        return tuple(
            record_of(face_id, meta, user_of)
            for face_id in chosen
            if (meta := self.fetched.get(face_id)) is not None
        )

    def export_faces(self) -> Iterator[tuple[FaceRecord, np.ndarray]]:
        """Every live face (with its user) and its vector, a ListVectors page (<= 1000) at a time."""
        manifest = self.manifest
        user_of = manifest.user_of()
        try:
            for stored in indexes(self).scan(self.index, data=True, metadata=True):
                if stored.key not in manifest.tombstones and stored.data is not None:
                    yield record_of(stored.key, stored.metadata, user_of), stored.data
        except IndexGone as error:
            raise gone(manifest.collection_id) from error

    def search(
        self, vector: np.ndarray, *, k: int, min_cosine: float = -1.0, face_model_version: str | None = None
    ) -> list[tuple[FaceRecord, float]]:
        query = self._check_query(vector, k, face_model_version)
        user_of = self.manifest.user_of()
        return [
            (record_of(hit.key, hit.metadata, user_of), cosine_of(hit))
            for hit in self.nearest(query, k, min_cosine)
        ]

    def _user_candidates(
        self, query: np.ndarray, k: int, min_cosine: float
    ) -> list[tuple[FaceRecord, float]]:
        """Only faces whose ``user_id`` hint is set (a metadata filter), so users are found in one query."""
        user_of = self.manifest.user_of()
        return [
            (record_of(hit.key, hit.metadata, user_of), cosine_of(hit))
            for hit in self.nearest(query, k, min_cosine, only_users=True)
        ]

    def _user_candidate_count(self, user_of: dict[str, str]) -> int:
        return len(user_of)

    def nearest(
        self, query: np.ndarray, k: int, min_cosine: float, *, only_users: bool = False
    ) -> list[Neighbour]:
        """The ``k`` nearest live faces with cosine >= ``min_cosine``, nearest first (split past topK)."""
        tombstones = self.manifest.tombstones
        base = _HAS_USER if only_users else None
        want = k + len(tombstones)
        try:
            found = self._query(query, min(want, QUERY_TOP_K_MAX), base)
            if (
                len(found) == QUERY_TOP_K_MAX
                and want > QUERY_TOP_K_MAX
                and 1.0 - found[-1].distance >= min_cosine
            ):
                found = self._split(query, want, min_cosine, base)
        except IndexGone as error:
            raise gone(self.manifest.collection_id) from error
        live = [hit for hit in found if hit.key not in tombstones and 1.0 - hit.distance >= min_cosine]
        return live[:k]

    # ---------------------------------------------------------------------------------------------- inside

    def _query(self, query: np.ndarray, top_k: int, filter: dict | None) -> list[Neighbour]:
        return indexes(self).query(self.index, query, top_k, filter)

    def _split(self, query: np.ndarray, want: int, min_cosine: float, base: dict | None) -> list[Neighbour]:
        ranges = 1
        while ranges < SHARDS and ranges * QUERY_TOP_K_MAX < 2 * want:
            ranges *= 2
        step = SHARDS // ranges
        pending = [(lo, lo + step) for lo in range(0, SHARDS, step)]
        found: dict[str, Neighbour] = {}
        with ThreadPoolExecutor(QUERY_THREADS) as pool:
            while pending:
                answers = list(
                    pool.map(lambda span: self._query(query, QUERY_TOP_K_MAX, _within(base, span)), pending)
                )
                again = []
                for (lo, hi), hits in zip(pending, answers, strict=True):
                    found.update((hit.key, hit) for hit in hits)
                    # A full answer may hide more of this range above the threshold: halve it and ask again.
                    if len(hits) == QUERY_TOP_K_MAX and hi - lo > 1 and 1.0 - hits[-1].distance >= min_cosine:
                        middle = (lo + hi) // 2
                        again += [(lo, middle), (middle, hi)]
                pending = again
        return sorted(found.values(), key=lambda hit: hit.distance)[:want]


def _within(base: dict | None, span: tuple[int, int]) -> dict:
    shard = {"shard": {"$gte": span[0], "$lt": span[1]}}
    return shard if base is None else {"$and": [base, shard]}


# ------------------------------------------------------------------------------------------------- writes
