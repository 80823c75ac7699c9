"""CollectionView: the store's only read API — one manifest read that every read of a request shares."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from facesearch.domain import CollectionInfo, FaceRecord, Page, UserMatch, UserRecord
from facesearch.errors import InvalidParameterException, ResourceNotFoundException
from facesearch.store import segment as seg
from facesearch.store import tokens
from facesearch.store.blobs import BlobStore
from facesearch.store.changes import check_vectors, unique, user_not_found, user_record
from facesearch.store.manifest import Manifest, SegmentRef
from facesearch.store.memory import SegmentMemory

# The least ef a segment's graph is searched with, however small its share of the collection.
MIN_SEGMENT_EF = 32
# Vectors copied out of a graph per call while exporting: bounds the copy, not the segment.
_EXPORT_ROWS = 1024


@dataclass(frozen=True)
class Snapshot:
    """A manifest as one GET returned it, with its ETag; cached per collection while it is current.

    ``memo`` holds what is derived from the manifest and its segments once (the sorted live face ids),
    so warm ListFaces pages do not re-sort the collection; ``exact`` the one ``ExactBlock`` of its small
    segments: a copy of their live vectors (about the faces written since the last maintenance run plus
    FAN_OUT - 1 segments per tier below ``BRUTE_FORCE_MAX_FACES``; ``memory_report().block_bytes``),
    released with the snapshot when the next manifest replaces it.
    """

    etag: str
    manifest: Manifest
    memo: dict[str, list[str]] = field(default_factory=dict, compare=False)
    exact: dict[str, seg.ExactBlock] = field(default_factory=dict, compare=False)


def check_max_results(max_results: int) -> None:
    if max_results < 1:
        raise InvalidParameterException(f"MaxResults must be at least 1, got {max_results}.")


def collection_info(manifest: Manifest) -> CollectionInfo:
    return CollectionInfo(
        collection_id=manifest.collection_id,
        face_model_version=manifest.face_model_version,
        dim=manifest.index.dim,
        face_count=manifest.face_count,
        user_count=len(manifest.users),
        created_at=manifest.created_at,
        tags=dict(manifest.tags),
    )


def face_not_found(collection_id: str, face_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(
        f"The face id: {face_id} does not exist in the collection {collection_id}"
    )


def _with_user(record: FaceRecord, user_of: dict[str, str]) -> FaceRecord:
    owner = user_of.get(record.face_id)
    return record if owner is None else FaceRecord(**{**record.__dict__, "user_id": owner})


@dataclass(frozen=True)
class CollectionView:
    """A collection as one manifest read saw it: a request's reads share it, and so its GET.

    From ``CollectionStore.view``. Every read of the store is a method here, so a request that
    describes, fetches vectors and searches sees one consistent state.

    Semantics the protocol layer maps 1:1:
    - ``list_faces``/``list_users`` are sorted by id; tokens mean "after this id", so pages stay
      stable while other writers add or delete.
    - ``list_faces(user_id=...)`` of an unknown user is an empty page (a filter, not a lookup).
    - Users are CREATED while they have no faces and ACTIVE once they have one.
    - A corrupt segment refuses every read that needs it with ``CorruptSegmentError``.
    """

    blobs: BlobStore
    memory: SegmentMemory
    snapshot: Snapshot

    @property
    def manifest(self) -> Manifest:
        return self.snapshot.manifest

    @property
    def info(self) -> CollectionInfo:
        """Face and user counts, model version, dimension and creation time (UTC); from the manifest alone."""
        return collection_info(self.manifest)

    # ----------------------------------------------------------------------------------------------- faces

    def is_live(self, face_id: str) -> bool:
        """True if ``face_id`` is stored in a segment of this manifest and not tombstoned."""
        return face_id not in self.manifest.tombstones and self._locate(face_id) is not None

    def get_faces(self, face_ids: Sequence[str]) -> dict[str, FaceRecord]:
        """The live faces among ``face_ids`` (unknown or deleted ids are simply absent), with their user."""
        user_of = self.manifest.user_of()
        return {
            face_id: self._record(face_id, user_of) for face_id in unique(face_ids) if self.is_live(face_id)
        }

    def get_vectors(self, face_ids: Sequence[str]) -> np.ndarray:
        """The stored unit vectors of ``face_ids`` in order, shape (len, dim).

        ResourceNotFoundException naming the first face id that is not a live face of the collection.
        """
        manifest = self.manifest
        out = np.zeros((len(face_ids), manifest.index.dim), dtype=np.float32)
        for i, face_id in enumerate(face_ids):
            found = self._locate(face_id) if face_id not in manifest.tombstones else None
            if found is None:
                raise face_not_found(manifest.collection_id, face_id)
            out[i] = self._segment(found[0].ref, graph=True).vectors([found[1]])[0]
        return out

    def list_faces(
        self,
        *,
        max_results: int,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> Page[FaceRecord]:
        """Live faces sorted by face id, optionally only those of ``user_id`` and/or among ``face_ids``.

        Tokens mean "after this FaceId", so pages stay stable while other writers add or delete; both engines
        page the same way and differ only in ``_listable`` and ``_records``.
        """
        check_max_results(max_results)
        manifest = self.manifest
        scope = tokens.scope_of(
            "faces", self.blobs.location, manifest.collection_id, user_id, sorted(face_ids or [])
        )
        candidates = self._listable(user_id, face_ids)
        start = tokens.resume_index(candidates, tokens.decode(next_token, "f", scope)) if next_token else 0
        chosen = candidates[start : start + max_results]
        items = self._records(chosen, manifest.user_of())
        more = start + max_results < len(candidates)
        return Page(
            items=items, next_token=tokens.encode("f", scope, chosen[-1]) if more and chosen else None
        )

    def _listable(self, user_id: str | None, face_ids: Sequence[str] | None) -> list[str]:
        """The sorted live FaceIds ListFaces pages through."""
        manifest = self.manifest
        candidates = self._live_sorted() if user_id is None else sorted(manifest.users.get(user_id, ()))
        if face_ids is not None:
            allowed = set(face_ids)
            candidates = [face_id for face_id in candidates if face_id in allowed]
        if face_ids is not None or user_id is not None:
            candidates = [face_id for face_id in candidates if self.is_live(face_id)]
        return candidates

    def _records(self, chosen: list[str], user_of: dict[str, str]) -> tuple[FaceRecord, ...]:
        return tuple(self._record(face_id, user_of) for face_id in chosen)

    def search(
        self, vector: np.ndarray, *, k: int, min_cosine: float = -1.0, face_model_version: str | None = None
    ) -> list[tuple[FaceRecord, float]]:
        """The ``k`` live faces most similar to ``vector`` with cosine >= ``min_cosine``, best first.

        Pass the ``face_model_version`` that embedded ``vector`` to have a mismatch refused.
        """
        query = self._check_query(vector, k, face_model_version)
        hits = self._search(query, k, min_cosine)
        user_of = self.manifest.user_of()
        return [(_with_user(record, user_of), cosine) for record, cosine in hits]

    def export_faces(self) -> Iterator[tuple[FaceRecord, np.ndarray]]:
        """Every live face (with its user) and its unit vector, segment by segment.

        A segment not already in memory is read for this scan only and not kept, so exporting a large
        collection holds one segment at a time.
        """
        manifest = self.manifest
        user_of = manifest.user_of()
        for ref in manifest.segments:
            loaded = self.memory.load(self.blobs, manifest, ref, graph=True, keep=False)
            rows = [
                row for row, record in enumerate(loaded.records) if record.face_id not in manifest.tombstones
            ]
            for start in range(0, len(rows), _EXPORT_ROWS):
                chunk = rows[start : start + _EXPORT_ROWS]
                for row, vector in zip(chunk, loaded.vectors(chunk), strict=True):
                    yield _with_user(loaded.records[row], user_of), vector

    # ----------------------------------------------------------------------------------------------- users

    def get_user(self, user_id: str) -> UserRecord:
        """One user with its status and face ids; ResourceNotFoundException if there is no such user."""
        if user_id not in self.manifest.users:
            raise user_not_found(self.manifest.collection_id, user_id)
        return user_record(user_id, self.manifest.users[user_id])

    def list_users(self, *, max_results: int, next_token: str | None = None) -> Page[UserRecord]:
        """Users sorted by UserId, ``max_results`` per page."""
        check_max_results(max_results)
        manifest = self.manifest
        scope = tokens.scope_of("users", self.blobs.location, manifest.collection_id)
        ids = sorted(manifest.users)
        start = tokens.resume_index(ids, tokens.decode(next_token, "u", scope)) if next_token else 0
        chosen = ids[start : start + max_results]
        more = start + max_results < len(ids)
        return Page(
            items=tuple(user_record(user_id, manifest.users[user_id]) for user_id in chosen),
            next_token=tokens.encode("u", scope, chosen[-1]) if more and chosen else None,
        )

    def search_users(
        self, vector: np.ndarray, *, k: int, min_cosine: float = -1.0, face_model_version: str | None = None
    ) -> list[UserMatch]:
        """The ``k`` users whose best face is nearest ``vector`` (cosine >= ``min_cosine``), best first."""
        manifest = self.manifest
        query = self._check_query(vector, k, face_model_version)
        user_of = manifest.user_of()
        if not user_of:
            return []
        # Widen the face search until k users are found or every candidate above min_cosine has been seen.
        width = max(4 * k, 64)
        while True:
            hits = self._user_candidates(query, width, min_cosine)
            best: dict[str, tuple[FaceRecord, float]] = {}
            for record, cosine in hits:
                owner = user_of.get(record.face_id)
                if owner is not None and owner not in best:
                    best[owner] = (record, cosine)
            if len(best) >= k or len(hits) < width or width >= self._user_candidate_count(user_of):
                break
            width *= 4
        matches = [
            UserMatch(
                user=user_record(owner, manifest.users[owner]),
                cosine=cosine,
                face=_with_user(record, user_of),
            )
            for owner, (record, cosine) in best.items()
        ]
        return sorted(matches, key=lambda match: -match.cosine)[:k]

    # ---------------------------------------------------------------------------------------------- inside

    def _user_candidates(
        self, query: np.ndarray, k: int, min_cosine: float
    ) -> list[tuple[FaceRecord, float]]:
        """The faces search_users looks at, nearest first: here every live face (engines may narrow it)."""
        return self._search(query, k, min_cosine)

    def _user_candidate_count(self, user_of: dict[str, str]) -> int:
        """How many faces ``_user_candidates`` can return at most: past it, widening finds nothing new."""
        return self.manifest.face_count

    def _segment(self, ref: SegmentRef, *, graph: bool) -> seg.LoadedSegment:
        return self.memory.load(self.blobs, self.manifest, ref, graph=graph)

    def _locate(self, face_id: str) -> tuple[seg.LoadedSegment, int] | None:
        for ref in self.manifest.segments:
            loaded = self._segment(ref, graph=False)
            row = loaded.row_of.get(face_id)
            if row is not None:
                return loaded, row
        return None

    def _record(self, face_id: str, user_of: dict[str, str]) -> FaceRecord:
        found = self._locate(face_id)
        if found is None:
            raise face_not_found(self.manifest.collection_id, face_id)
        loaded, row = found
        return _with_user(loaded.records[row], user_of)

    def _live_sorted(self) -> list[str]:
        if "live_sorted" not in self.snapshot.memo:
            tombstones = self.manifest.tombstones
            ids: list[str] = []
            for ref in self.manifest.segments:
                loaded = self._segment(ref, graph=False)
                ids.extend(face_id for face_id in loaded.row_of if face_id not in tombstones)
            self.snapshot.memo["live_sorted"] = sorted(ids)
        return self.snapshot.memo["live_sorted"]

    def _search(self, query: np.ndarray, k: int, min_cosine: float) -> list[tuple[FaceRecord, float]]:
        manifest = self.manifest
        loaded = [self._segment(ref, graph=True) for ref in manifest.segments]
        block = self.snapshot.exact.get("small")
        if block is None:
            small = [segment for segment in loaded if segment.matrix is not None]
            # Racing first searches may both build it; either copy is the same.
            block = self.snapshot.exact.setdefault(
                "small", seg.exact_block(small, manifest.tombstones, manifest.index.dim)
            )
        hits = [
            (block.records[row], cosine)
            for row, cosine in seg.search_block(block, query, k)
            if cosine >= min_cosine
        ]
        for segment in loaded:
            if segment.matrix is not None:
                continue
            # A segment holding a share p of the faces holds on average a share p of the true top k, and
            # its smaller graph reaches a given recall with a smaller ef. ef * sqrt(p), not ef * p: the
            # maintenance job leaves one graph or two (share 8/9 and 1/9 at most); on that layout at
            # 100 000 faces ef * p lost recall@10 0.009 to the bulk-built graph, ef * sqrt(p) matched it
            # (bench/ingest_recall.py --sizes 90000 10000).
            share = segment.ref.count / manifest.stored_count
            ef = max(MIN_SEGMENT_EF, math.ceil(manifest.index.ef * math.sqrt(share)))
            for row, cosine in seg.search(segment, query, k, manifest.tombstones, min(ef, manifest.index.ef)):
                if cosine >= min_cosine:
                    hits.append((segment.records[row], cosine))
        hits.sort(key=lambda hit: -hit[1])
        return hits[:k]

    def _check_query(self, vector: np.ndarray, k: int, face_model_version: str | None) -> np.ndarray:
        manifest = self.manifest
        if face_model_version is not None and face_model_version != manifest.face_model_version:
            raise InvalidParameterException(
                f"The query was embedded with face model {face_model_version}; the collection "
                f"{manifest.collection_id} uses face model {manifest.face_model_version}."
            )
        query = check_vectors(manifest, vector, expected_rows=None)[0]
        if k < 1:
            raise InvalidParameterException(f"k must be at least 1, got {k}.")
        return query
