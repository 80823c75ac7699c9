"""CollectionStore: the typed API over manifests and segments that every collection operation calls.

Reads GET the manifest conditionally on the cached ETag (one request when nothing changed), fetch only
segments not yet in the disk cache, and keep loaded segments in memory across warm invocations. Writes
upload a new immutable segment (if any), then swap the manifest with a conditional PUT and retry with
backoff on a lost race: no lost update, and a crash at any point leaves the previous manifest in force.
Validation happens before anything is written; wire errors come from ``facesearch.errors``.

Semantics the protocol layer maps 1:1:
- Face ids are supplied by the caller (fresh UUIDs); ``add_faces`` ignores ``FaceRecord.user_id``
  (associations live in the manifest and are changed only through ``associate_faces``).
- ``list_faces``/``list_users``/``list_collections`` are sorted by id; tokens mean "after this id", so
  pages stay stable while other writers add or delete.
- ``list_faces(user_id=...)`` of an unknown user is an empty page (it is a filter, not a lookup).
- Users are CREATED while they have no faces and ACTIVE once they have one (writes are synchronous,
  so CREATING/UPDATING never persist). A user holds at most ``MAX_FACES_PER_USER`` faces.
- A corrupt segment (checksum or decode failure, even after a fresh download) refuses every read of the
  collection with ``CorruptSegmentError`` rather than silently answering with faces missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np

from facesearch.domain import (
    REASON_ASSOCIATED_TO_A_DIFFERENT_USER,
    REASON_ASSOCIATED_TO_AN_EXISTING_USER,
    REASON_FACE_NOT_FOUND,
    REASON_LOW_MATCH_CONFIDENCE,
    USER_STATUS_ACTIVE,
    USER_STATUS_CREATED,
    AssociateResult,
    CollectionInfo,
    DeleteResult,
    DisassociateResult,
    FaceRecord,
    Page,
    UnsuccessfulFace,
    UserMatch,
    UserRecord,
)
from facesearch.errors import (
    ConflictException,
    InvalidParameterException,
    ProvisionedThroughputExceededException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)
from facesearch.lazy import once
from facesearch.settings import DEFAULT_CACHE_MAX_BYTES, get_settings
from facesearch.store import segment as seg
from facesearch.store import tokens
from facesearch.store.blobs import NOT_MODIFIED, BlobStore, open_blob_store
from facesearch.store.cache import DiskCache
from facesearch.store.errors import CorruptSegmentError, PreconditionFailed
from facesearch.store.manifest import IndexParams, Manifest, SegmentRef

R = TypeVar("R")

# Rekognition: "the total number of faces that can be associated with a single UserID is also limited to 100".
MAX_FACES_PER_USER = 100
# HNSW parameters (hnswlib names): M=16 / ef_construction=200 is hnswlib's recommended high-recall setting;
# ef=160 gives recall@10 >= 0.99 on 100k random 512-D unit vectors (bench/store.py), which are harder
# than face embeddings. Every value is recorded in the manifest; these only apply to new collections.
DEFAULT_INDEX = {"space": "cosine", "m": 16, "ef_construction": 200, "ef": 160}
# Compaction bounds: more segments than this, or a segment with this share of tombstones, is merged.
MAX_SEGMENTS = 8
MAX_TOMBSTONE_SHARE = 0.2
# Live faces a write may re-index when it compacts: segment build runs at ~1 200 faces/s at 512-D
# (bench/store.py: 100 000 faces in 76-90 s), so ~8 s, well inside the function's 29 s timeout (API
# Gateway's limit). Bigger merges are left to the scheduled maintenance job (facesearch.maintenance).
INLINE_COMPACTION_MAX_FACES = 10_000
# Orphan segments (from crashed or losing writers, or replaced by compaction) are deleted after this long;
# it must exceed the slowest write (upload -> manifest swap) and the slowest reader's download.
GC_GRACE_SECONDS = 3600.0
# Manifest swap retries: exponential backoff with jitter from 10 ms, capped at 1 s per wait.
MAX_SWAP_ATTEMPTS = 40
_BACKOFF_BASE = 0.01
_BACKOFF_CAP = 1.0
_ROOT = "collections/"


def _manifest_key(collection_id: str) -> str:
    return f"{_ROOT}{collection_id}/manifest.json"


def _segment_key(collection_id: str, segment_id: str, ext: str) -> str:
    return f"{_ROOT}{collection_id}/segments/{segment_id}.{ext}"


def _not_found(collection_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"The collection id: {collection_id} does not exist")


def _user_not_found(collection_id: str, user_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(
        f"The user id: {user_id} does not exist in the collection {collection_id}"
    )


def _check_max_results(max_results: int) -> None:
    if max_results < 1:
        raise InvalidParameterException(f"MaxResults must be at least 1, got {max_results}.")


def _unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


@dataclass
class _Cached:
    etag: str
    manifest: Manifest
    live_sorted: list[str] | None = None


class CollectionStore:
    """Collections of faces (records + unit vectors) with vector search and users, on one blob store."""

    def __init__(self, blobs: BlobStore, cache: DiskCache) -> None:
        self.blobs = blobs
        self.cache = cache
        self._manifests: dict[str, _Cached] = {}
        self._segments: dict[str, seg.LoadedSegment] = {}
        # One lock for the in-memory state: hnswlib's mark_deleted/set_ef must not race a query.
        self._lock = threading.RLock()

    # ----------------------------------------------------------------------------------------- collections

    def create_collection(
        self,
        collection_id: str,
        *,
        face_model_version: str,
        dim: int,
        index: IndexParams | None = None,
        tags: dict[str, str] | None = None,
    ) -> CollectionInfo:
        """Create an empty collection pinned to ``face_model_version`` and vectors of ``dim``, with ``tags``.

        ResourceAlreadyExistsException if it exists (decided by the put-if-absent of its manifest).
        """
        if dim < 1:
            raise InvalidParameterException(f"Vector dimension must be positive, got {dim}.")
        params = index or IndexParams(dim=dim, **DEFAULT_INDEX)
        if params.dim != dim:
            raise InvalidParameterException(f"Index dimension {params.dim} does not match dim {dim}.")
        now = datetime.now(UTC)
        manifest = Manifest(
            collection_id=collection_id,
            face_model_version=face_model_version,
            # Rekognition reports CreationTimestamp to the millisecond.
            created_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
            index=params,
            tags=dict(tags or {}),
        )
        try:
            etag = self.blobs.put_if_absent(_manifest_key(collection_id), manifest.to_json())
        except PreconditionFailed as error:
            raise ResourceAlreadyExistsException(
                f"The collection id: {collection_id} already exists"
            ) from error
        with self._lock:
            self._manifests[collection_id] = _Cached(etag, manifest)
        return self._info(manifest)

    def delete_collection(self, collection_id: str) -> None:
        """Delete the manifest (the collection is gone from then on), then every object under it."""
        self._read(collection_id)
        self.blobs.delete(_manifest_key(collection_id))
        with self._lock:
            self._manifests.pop(collection_id, None)
            self._forget_unreferenced()
        for info in self.blobs.list(f"{_ROOT}{collection_id}/"):
            self.blobs.delete(info.key)

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        """Face and user counts, model version, dimension and creation time (UTC) of a collection."""
        return self._info(self._read(collection_id).manifest)

    def view(self, collection_id: str) -> CollectionView:
        """One read of the collection (one conditional GET) that several reads of a request can share."""
        return CollectionView(self, self._read(collection_id).manifest)

    def list_collections(self, *, max_results: int, next_token: str | None = None) -> Page[CollectionInfo]:
        """Collections sorted by id, ``max_results`` per page."""
        _check_max_results(max_results)
        scope = tokens.scope_of("collections", self.blobs.location)
        ids = sorted(prefix[len(_ROOT) : -1] for prefix in self.blobs.list_prefixes(_ROOT))
        start = tokens.resume_index(ids, tokens.decode(next_token, "c", scope)) if next_token else 0
        items: list[CollectionInfo] = []
        position = start
        while position < len(ids) and len(items) < max_results:
            # A missing manifest: a deleted collection's leftover objects, or one deleted while listing.
            with contextlib.suppress(ResourceNotFoundException):
                items.append(self._info(self._read(ids[position]).manifest))
            position += 1
        more = any(self._exists(collection_id) for collection_id in ids[position:])
        token = tokens.encode("c", scope, items[-1].collection_id) if more and items else None
        return Page(items=tuple(items), next_token=token)

    # ----------------------------------------------------------------------------------------------- faces

    def add_faces(self, collection_id: str, records: Sequence[FaceRecord], vectors: np.ndarray) -> None:
        """Add faces (``vectors[i]`` belongs to ``records[i]``) as one new segment.

        InvalidParameterException if the vectors have another dimension, the records another
        IndexFacesModelVersion than the collection, a vector is zero or not finite, or ids repeat.
        """
        manifest = self._read(collection_id).manifest
        records = tuple(records)
        vectors = self._check_vectors(manifest, vectors, expected_rows=len(records))
        for record in records:
            if record.index_faces_model_version != manifest.face_model_version:
                raise InvalidParameterException(
                    f"Face model version {record.index_faces_model_version} does not match the collection "
                    f"{collection_id}'s face model version {manifest.face_model_version}."
                )
        if len({record.face_id for record in records}) != len(records):
            raise InvalidParameterException("Face ids must be unique.")
        if not records:
            return
        built = self._upload_segment(collection_id, manifest, records, vectors)

        def change(current: Manifest) -> tuple[Manifest, None]:
            if current.index != manifest.index or current.face_model_version != manifest.face_model_version:
                raise InvalidParameterException(
                    f"The collection {collection_id} was re-created with another face model while indexing."
                )
            return current.evolve(segments=(*current.segments, built.ref)), None

        self._mutate(collection_id, change)
        self._remember(built)
        self.maybe_compact(collection_id)

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> DeleteResult:
        """Tombstone faces. Unknown -> FACE_NOT_FOUND; faces of a user -> ASSOCIATED_TO_AN_EXISTING_USER."""
        wanted = _unique(face_ids)

        def change(current: Manifest) -> tuple[Manifest | None, DeleteResult]:
            user_of = current.user_of()
            deleted, unsuccessful = [], []
            for face_id in wanted:
                if not self._is_live(current, face_id):
                    unsuccessful.append(UnsuccessfulFace(face_id, None, (REASON_FACE_NOT_FOUND,)))
                elif face_id in user_of:
                    unsuccessful.append(
                        UnsuccessfulFace(face_id, user_of[face_id], (REASON_ASSOCIATED_TO_AN_EXISTING_USER,))
                    )
                else:
                    deleted.append(face_id)
            result = DeleteResult(deleted=tuple(deleted), unsuccessful=tuple(unsuccessful))
            if not deleted:
                return None, result
            return current.evolve(tombstones=current.tombstones | frozenset(deleted)), result

        result = self._mutate(collection_id, change)
        if result.deleted:
            self.maybe_compact(collection_id)
        return result

    def list_faces(
        self,
        collection_id: str,
        *,
        max_results: int,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> Page[FaceRecord]:
        """Live faces sorted by face id, optionally only those of ``user_id`` and/or among ``face_ids``."""
        _check_max_results(max_results)
        cached = self._read(collection_id)
        manifest = cached.manifest
        scope = tokens.scope_of("faces", self.blobs.location, collection_id, user_id, sorted(face_ids or []))
        with self._lock:
            if user_id is not None:
                candidates = sorted(manifest.users.get(user_id, ()))
            else:
                candidates = self._live_sorted(cached)
            if face_ids is not None:
                allowed = set(face_ids)
                candidates = [face_id for face_id in candidates if face_id in allowed]
            if face_ids is not None or user_id is not None:
                candidates = [face_id for face_id in candidates if self._is_live(manifest, face_id)]
            start = (
                tokens.resume_index(candidates, tokens.decode(next_token, "f", scope)) if next_token else 0
            )
            chosen = candidates[start : start + max_results]
            user_of = manifest.user_of()
            items = tuple(self._record(manifest, face_id, user_of) for face_id in chosen)
        more = start + max_results < len(candidates)
        return Page(
            items=items, next_token=tokens.encode("f", scope, chosen[-1]) if more and chosen else None
        )

    def get_faces(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, FaceRecord]:
        """The live faces among ``face_ids`` (unknown or deleted ids are simply absent), with their user."""
        return self._get_faces_in(self._read(collection_id).manifest, face_ids)

    def _get_faces_in(self, manifest: Manifest, face_ids: Sequence[str]) -> dict[str, FaceRecord]:
        with self._lock:
            user_of = manifest.user_of()
            return {
                face_id: self._record(manifest, face_id, user_of)
                for face_id in _unique(face_ids)
                if self._is_live(manifest, face_id)
            }

    def get_vectors(self, collection_id: str, face_ids: Sequence[str]) -> np.ndarray:
        """The stored unit vectors of ``face_ids`` in order, shape (len, dim).

        ResourceNotFoundException naming the first face id that is not a live face of the collection.
        """
        manifest = self._read(collection_id).manifest
        with self._lock:
            return self._vectors(manifest, list(face_ids))

    def search(
        self,
        collection_id: str,
        vector: np.ndarray,
        *,
        k: int,
        min_cosine: float = -1.0,
        face_model_version: str | None = None,
    ) -> list[tuple[FaceRecord, float]]:
        """The ``k`` live faces most similar to ``vector`` with cosine >= ``min_cosine``, best first.

        Pass the ``face_model_version`` that embedded ``vector`` to have a mismatch refused.
        """
        return self._search_in(
            self._read(collection_id).manifest,
            vector,
            k=k,
            min_cosine=min_cosine,
            face_model_version=face_model_version,
        )

    def _search_in(
        self,
        manifest: Manifest,
        vector: np.ndarray,
        *,
        k: int,
        min_cosine: float,
        face_model_version: str | None,
    ) -> list[tuple[FaceRecord, float]]:
        query = self._check_query(manifest, vector, face_model_version)
        if k < 1:
            raise InvalidParameterException(f"k must be at least 1, got {k}.")
        with self._lock:
            hits = self._search(manifest, query, k, min_cosine)
            user_of = manifest.user_of()
            return [(self._with_user(record, user_of), cosine) for record, cosine in hits]

    def set_tags(self, collection_id: str, tags: dict[str, str], *, max_tags: int) -> None:
        """Add or overwrite ``tags``; ServiceQuotaExceededException beyond ``max_tags`` in all.

        The count is checked on the manifest the swap replaces, so concurrent taggers cannot exceed it.
        """

        def change(current: Manifest) -> tuple[Manifest | None, None]:
            merged = {**current.tags, **tags}
            if len(merged) > max_tags:
                raise ServiceQuotaExceededException(
                    f"The collection {collection_id} would have {len(merged)} tags; the limit is {max_tags}."
                )
            return (current.evolve(tags=merged) if merged != current.tags else None), None

        self._mutate(collection_id, change)

    def remove_tags(self, collection_id: str, keys: Sequence[str]) -> None:
        """Remove the tags with these keys; keys the collection does not have are ignored."""

        removed = set(keys)

        def change(current: Manifest) -> tuple[Manifest | None, None]:
            kept = {key: value for key, value in current.tags.items() if key not in removed}
            return (current.evolve(tags=kept) if kept != current.tags else None), None

        self._mutate(collection_id, change)

    # ----------------------------------------------------------------------------------------------- users

    def create_user(self, collection_id: str, user_id: str) -> None:
        """Create a user with no faces (status CREATED). ConflictException if the UserId exists."""

        def change(current: Manifest) -> tuple[Manifest, None]:
            if user_id in current.users:
                raise ConflictException(
                    f"The user id: {user_id} already exists in the collection {collection_id}"
                )
            return current.evolve(users={**current.users, user_id: ()}), None

        self._mutate(collection_id, change)

    def delete_user(self, collection_id: str, user_id: str) -> None:
        """Delete a user; its faces stay in the collection, disassociated."""

        def change(current: Manifest) -> tuple[Manifest, None]:
            if user_id not in current.users:
                raise _user_not_found(collection_id, user_id)
            users = dict(current.users)
            del users[user_id]
            return current.evolve(users=users), None

        self._mutate(collection_id, change)

    def get_user(self, collection_id: str, user_id: str) -> UserRecord:
        """One user with its status and face ids; ResourceNotFoundException if there is no such user."""
        return self._get_user_in(self._read(collection_id).manifest, user_id)

    @staticmethod
    def _get_user_in(manifest: Manifest, user_id: str) -> UserRecord:
        if user_id not in manifest.users:
            raise _user_not_found(manifest.collection_id, user_id)
        return _user_record(user_id, manifest.users[user_id])

    def list_users(
        self, collection_id: str, *, max_results: int, next_token: str | None = None
    ) -> Page[UserRecord]:
        """Users sorted by UserId, ``max_results`` per page."""
        _check_max_results(max_results)
        manifest = self._read(collection_id).manifest
        scope = tokens.scope_of("users", self.blobs.location, collection_id)
        ids = sorted(manifest.users)
        start = tokens.resume_index(ids, tokens.decode(next_token, "u", scope)) if next_token else 0
        chosen = ids[start : start + max_results]
        more = start + max_results < len(ids)
        return Page(
            items=tuple(_user_record(user_id, manifest.users[user_id]) for user_id in chosen),
            next_token=tokens.encode("u", scope, chosen[-1]) if more and chosen else None,
        )

    def associate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, min_cosine: float | None = None
    ) -> AssociateResult:
        """Associate faces with a user, as AssociateFaces does.

        Faces already with this user are ignored (not reported). Unknown faces -> FACE_NOT_FOUND; faces of
        another user -> ASSOCIATED_TO_A_DIFFERENT_USER (``user_id`` = that user); when the user already has
        faces and ``min_cosine`` is given, a face whose best cosine to them is lower -> LOW_MATCH_CONFIDENCE.
        ServiceQuotaExceededException (and no change) if the user would exceed MAX_FACES_PER_USER faces.
        """
        wanted = _unique(face_ids)

        def change(current: Manifest) -> tuple[Manifest | None, AssociateResult]:
            if user_id not in current.users:
                raise _user_not_found(collection_id, user_id)
            existing = list(current.users[user_id])
            user_of = current.user_of()
            accepted, unsuccessful = [], []
            for face_id in wanted:
                owner = user_of.get(face_id)
                if not self._is_live(current, face_id):
                    unsuccessful.append(UnsuccessfulFace(face_id, user_id, (REASON_FACE_NOT_FOUND,)))
                elif owner == user_id:
                    continue
                elif owner is not None:
                    unsuccessful.append(
                        UnsuccessfulFace(face_id, owner, (REASON_ASSOCIATED_TO_A_DIFFERENT_USER,))
                    )
                else:
                    accepted.append(face_id)
            if min_cosine is not None and existing and accepted:
                with self._lock:
                    theirs = self._vectors(current, existing)
                    mine = self._vectors(current, accepted)
                best = (mine @ theirs.T).max(axis=1)
                low = {
                    face_id: float(cos)
                    for face_id, cos in zip(accepted, best, strict=True)
                    if cos < min_cosine
                }
                unsuccessful += [
                    UnsuccessfulFace(face_id, user_id, (REASON_LOW_MATCH_CONFIDENCE,), cosine)
                    for face_id, cosine in low.items()
                ]
                accepted = [face_id for face_id in accepted if face_id not in low]
            if len(existing) + len(accepted) > MAX_FACES_PER_USER:
                raise ServiceQuotaExceededException(
                    f"The user id: {user_id} has {len(existing)} faces; associating {len(accepted)} more "
                    f"would exceed the limit of {MAX_FACES_PER_USER} faces per user."
                )
            faces = tuple(sorted({*existing, *accepted}))
            result = AssociateResult(
                associated=tuple(accepted), unsuccessful=tuple(unsuccessful), user_status=_status(faces)
            )
            if not accepted:
                return None, result
            return current.evolve(users={**current.users, user_id: faces}), result

        return self._mutate(collection_id, change)

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> DisassociateResult:
        """Remove faces from a user, as DisassociateFaces does.

        Faces not associated with anyone are ignored; unknown faces -> FACE_NOT_FOUND; faces of another
        user -> ASSOCIATED_TO_A_DIFFERENT_USER (``user_id`` = that user).
        """
        wanted = _unique(face_ids)

        def change(current: Manifest) -> tuple[Manifest | None, DisassociateResult]:
            if user_id not in current.users:
                raise _user_not_found(collection_id, user_id)
            user_of = current.user_of()
            removed, unsuccessful = [], []
            for face_id in wanted:
                owner = user_of.get(face_id)
                if not self._is_live(current, face_id):
                    unsuccessful.append(UnsuccessfulFace(face_id, user_id, (REASON_FACE_NOT_FOUND,)))
                elif owner == user_id:
                    removed.append(face_id)
                elif owner is not None:
                    unsuccessful.append(
                        UnsuccessfulFace(face_id, owner, (REASON_ASSOCIATED_TO_A_DIFFERENT_USER,))
                    )
            gone = set(removed)
            faces = tuple(face_id for face_id in current.users[user_id] if face_id not in gone)
            result = DisassociateResult(
                disassociated=tuple(removed), unsuccessful=tuple(unsuccessful), user_status=_status(faces)
            )
            if not removed:
                return None, result
            return current.evolve(users={**current.users, user_id: faces}), result

        return self._mutate(collection_id, change)

    def search_users(
        self,
        collection_id: str,
        vector: np.ndarray,
        *,
        k: int,
        min_cosine: float = -1.0,
        face_model_version: str | None = None,
    ) -> list[UserMatch]:
        """The ``k`` users whose best face is nearest ``vector`` (cosine >= ``min_cosine``), best first."""
        return self._search_users_in(
            self._read(collection_id).manifest,
            vector,
            k=k,
            min_cosine=min_cosine,
            face_model_version=face_model_version,
        )

    def _search_users_in(
        self,
        manifest: Manifest,
        vector: np.ndarray,
        *,
        k: int,
        min_cosine: float,
        face_model_version: str | None,
    ) -> list[UserMatch]:
        query = self._check_query(manifest, vector, face_model_version)
        if k < 1:
            raise InvalidParameterException(f"k must be at least 1, got {k}.")
        user_of = manifest.user_of()
        if not user_of:
            return []
        best: dict[str, tuple[FaceRecord, float]] = {}
        # Widen the face search until k users are found or every face above min_cosine has been seen.
        width = max(4 * k, 64)
        with self._lock:
            while True:
                hits = self._search(manifest, query, width, min_cosine)
                best = {}
                for record, cosine in hits:
                    owner = user_of.get(record.face_id)
                    if owner is not None and owner not in best:
                        best[owner] = (record, cosine)
                if len(best) >= k or len(hits) < width or width >= manifest.face_count:
                    break
                width *= 4
        matches = [
            UserMatch(
                user=_user_record(owner, manifest.users[owner]),
                cosine=cosine,
                face=self._with_user(record, user_of),
            )
            for owner, (record, cosine) in best.items()
        ]
        return sorted(matches, key=lambda match: -match.cosine)[:k]

    # ------------------------------------------------------------------------------ maintenance (scheduled)

    def maybe_compact(self, collection_id: str) -> bool:
        """A write's compaction: only a merge within INLINE_COMPACTION_MAX_FACES; True if it swapped.

        A due merge bigger than that is left for the scheduled job (``compact`` without a budget), so a
        write never outlives the function's timeout after committing its own change.
        """
        return self.compact(collection_id, budget=INLINE_COMPACTION_MAX_FACES)

    def compact(self, collection_id: str, *, force: bool = False, budget: int | None = None) -> bool:
        """Merge segments into one new HNSW segment without their tombstoned faces.

        With ``force`` every segment is merged; otherwise only the group the bounds select. A ``budget``
        caps the live faces re-indexed: the smallest of the group that fit are merged (nothing if fewer
        than two fit, unless that one is tombstone-heavy). Safe against concurrent writers: the swap
        applies only if the merged segments are all still in the manifest (tombstones added meanwhile
        stay, and still apply to the merged faces). True if it swapped.
        """
        manifest = self._read(collection_id).manifest
        group = self._compaction_group(manifest, force=force, budget=budget)
        if not group:
            return False
        group_ids = {ref.segment_id for ref in group}
        records: list[FaceRecord] = []
        vectors: list[np.ndarray] = []
        dead: set[str] = set()
        with self._lock:
            for ref in group:
                loaded = self._load(collection_id, manifest, ref, graph=True)
                rows = [
                    row
                    for row, record in enumerate(loaded.records)
                    if record.face_id not in manifest.tombstones
                ]
                dead.update(
                    record.face_id for record in loaded.records if record.face_id in manifest.tombstones
                )
                records.extend(loaded.records[row] for row in rows)
                if rows:
                    vectors.append(
                        np.asarray(loaded.index.get_items(rows, return_type="numpy"), dtype=np.float32)
                    )
        merged = np.concatenate(vectors) if vectors else np.zeros((0, manifest.index.dim), np.float32)
        built = self._upload_segment(collection_id, manifest, tuple(records), merged) if records else None

        def change(current: Manifest) -> tuple[Manifest | None, bool]:
            if not group_ids <= {ref.segment_id for ref in current.segments}:
                return None, False
            kept = tuple(ref for ref in current.segments if ref.segment_id not in group_ids)
            new_segments = (*kept, built.ref) if built else kept
            return current.evolve(segments=new_segments, tombstones=current.tombstones - dead), True

        swapped = self._mutate(collection_id, change)
        if swapped and built:
            self._remember(built)
        if swapped:
            self.collect_garbage(collection_id)
        if not swapped and built:
            # Never referenced by any manifest, so nobody can be reading it.
            for ext in ("bin", "json"):
                self.blobs.delete(_segment_key(collection_id, built.ref.segment_id, ext))
        return swapped

    def _compaction_group(
        self, manifest: Manifest, *, force: bool, budget: int | None = None
    ) -> list[SegmentRef]:
        """Segments to merge: all (``force``), else the smallest beyond MAX_SEGMENTS and tombstone-heavy ones.

        Merging only the small segments (size-tiered, as in an LSM tree) and the segments whose own
        tombstone share crossed the bound keeps a write's compaction cost near what changed. With a
        ``budget``, only the smallest selected segments whose live faces fit in it are kept.
        """
        segments = list(manifest.segments)
        dead: dict[str, int] = {}
        if manifest.tombstones:
            with self._lock:
                for ref in segments:
                    rows = self._load(manifest.collection_id, manifest, ref, graph=False).row_of
                    dead[ref.segment_id] = sum(1 for face_id in manifest.tombstones if face_id in rows)
        heavy = {
            ref.segment_id
            for ref in segments
            if dead.get(ref.segment_id, 0) > MAX_TOMBSTONE_SHARE * ref.count
        }
        if force:
            group = segments if len(segments) > 1 or manifest.tombstones else []
        else:
            chosen: dict[str, SegmentRef] = {}
            if len(segments) > MAX_SEGMENTS:
                merged = len(segments) - MAX_SEGMENTS // 2 + 1
                smallest = sorted(segments, key=lambda ref: ref.count)[:merged]
                chosen.update((ref.segment_id, ref) for ref in smallest)
            chosen.update((ref.segment_id, ref) for ref in segments if ref.segment_id in heavy)
            group = list(chosen.values())
        if budget is None:
            return group

        def live(ref: SegmentRef) -> int:
            return ref.count - dead.get(ref.segment_id, 0)

        fitting: list[SegmentRef] = []
        for ref in sorted(group, key=live):
            if sum(map(live, fitting)) + live(ref) > budget:
                break
            fitting.append(ref)
        if len(fitting) >= 2 or (fitting and fitting[0].segment_id in heavy):
            return fitting
        return []

    def collect_garbage(self, collection_id: str, *, grace_seconds: float = GC_GRACE_SECONDS) -> list[str]:
        """Delete segment objects no manifest references that are older than ``grace_seconds``; their keys."""
        manifest = self._read(collection_id).manifest
        referenced = {
            _segment_key(collection_id, ref.segment_id, ext)
            for ref in manifest.segments
            for ext in ("bin", "json")
        }
        now = time.time()
        collected = []
        for info in self.blobs.list(f"{_ROOT}{collection_id}/segments/"):
            if info.key not in referenced and now - info.last_modified >= grace_seconds:
                self.blobs.delete(info.key)
                collected.append(info.key)
        return collected

    # ---------------------------------------------------------------------------------------------- inside

    def _exists(self, collection_id: str) -> bool:
        try:
            self._read(collection_id)
        except ResourceNotFoundException:
            return False
        return True

    def _read(self, collection_id: str) -> _Cached:
        """The current manifest: one GET, conditional on the cached ETag."""
        with self._lock:
            cached = self._manifests.get(collection_id)
        key = _manifest_key(collection_id)
        got = self.blobs.get(key, if_none_match=cached.etag if cached else None)
        if got is NOT_MODIFIED:
            return cached
        with self._lock:
            if got is None:
                self._manifests.pop(collection_id, None)
                self._forget_unreferenced()
                raise _not_found(collection_id)
            fresh = _Cached(got.etag, Manifest.from_json(got.body, f"of collection {collection_id}"))
            self._manifests[collection_id] = fresh
            self._forget_unreferenced()
            return fresh

    def _forget_unreferenced(self) -> None:
        referenced = {ref.segment_id for c in self._manifests.values() for ref in c.manifest.segments}
        for segment_id in [s for s in self._segments if s not in referenced]:
            del self._segments[segment_id]

    def _mutate(self, collection_id: str, change: Callable[[Manifest], tuple[Manifest | None, R]]) -> R:
        """Apply ``change`` to the current manifest and swap it in by conditional PUT, retrying lost races.

        ``change`` validates against the manifest it is given (raising wire errors before anything is
        written) and returns (new manifest or None for "nothing to write", result).
        """
        key = _manifest_key(collection_id)
        for attempt in range(MAX_SWAP_ATTEMPTS):
            cached = self._read(collection_id)
            new, result = change(cached.manifest)
            if new is None:
                return result
            try:
                etag = self.blobs.put_if_match(key, new.to_json(), cached.etag)
            except PreconditionFailed:
                time.sleep(min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.5))
                continue
            with self._lock:
                self._manifests[collection_id] = _Cached(etag, new)
            return result
        raise ProvisionedThroughputExceededException(
            f"Too many concurrent writes to collection {collection_id}; retry the request."
        )

    def _upload_segment(
        self, collection_id: str, manifest: Manifest, records: tuple[FaceRecord, ...], vectors: np.ndarray
    ) -> seg.BuiltSegment:
        segment_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex}"
        built = seg.build(segment_id, records, vectors, manifest.index, manifest.face_model_version)
        # JSON first: a .bin with no .json is recognisably incomplete; both are orphans until the swap.
        self.blobs.put_if_absent(_segment_key(collection_id, segment_id, "json"), built.json_body)
        self.blobs.put_if_absent(_segment_key(collection_id, segment_id, "bin"), built.bin_body)
        for ext, body in (("json", built.json_body), ("bin", built.bin_body)):
            self.cache.store(_cache_name(self.blobs, collection_id, segment_id, ext), body)
        return built

    def _remember(self, built: seg.BuiltSegment) -> None:
        """Keep a segment this process built and swapped in loaded, so the next read downloads nothing."""
        with self._lock:
            self._segments[built.ref.segment_id] = seg.LoadedSegment(
                ref=built.ref,
                records=built.records,
                row_of={record.face_id: row for row, record in enumerate(built.records)},
                index=built.index,
            )

    def _load(
        self, collection_id: str, manifest: Manifest, ref: SegmentRef, *, graph: bool
    ) -> seg.LoadedSegment:
        """A segment in memory (records; the graph if ``graph``), with the manifest's tombstones marked."""
        loaded = self._segments.get(ref.segment_id)
        if loaded is None:
            records = seg.parse_records(self._fetch(collection_id, ref, "json").read_bytes(), ref)
            loaded = seg.LoadedSegment(
                ref=ref, records=records, row_of={record.face_id: row for row, record in enumerate(records)}
            )
            self._segments[ref.segment_id] = loaded
        if graph and loaded.index is None:
            loaded.index = seg.load_graph(self._fetch(collection_id, ref, "bin"), ref, manifest.index)
        if loaded.index is not None and loaded.marked_for is not manifest.tombstones:
            loaded.marked_for = manifest.tombstones
            for face_id in manifest.tombstones:
                row = loaded.row_of.get(face_id)
                if row is not None and row not in loaded.marked:
                    loaded.index.mark_deleted(row)
                    loaded.marked.add(row)
        return loaded

    def _fetch(self, collection_id: str, ref: SegmentRef, ext: str) -> Path:
        sha = ref.bin_sha256 if ext == "bin" else ref.json_sha256
        name = _cache_name(self.blobs, collection_id, ref.segment_id, ext)
        path = self.cache.path(name)
        if path.exists() and ext == "json" and hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            self.cache.discard(name)  # damaged on local disk: fetch it again
        try:
            return self.cache.fetch(self.blobs, _segment_key(collection_id, ref.segment_id, ext), name, sha)
        except CorruptSegmentError as error:
            raise CorruptSegmentError(
                f"Collection {collection_id} cannot be read: {error.message}"
            ) from error

    def _is_live(self, manifest: Manifest, face_id: str) -> bool:
        return face_id not in manifest.tombstones and self._locate(manifest, face_id) is not None

    def _locate(self, manifest: Manifest, face_id: str) -> tuple[seg.LoadedSegment, int] | None:
        with self._lock:
            for ref in manifest.segments:
                loaded = self._load(manifest.collection_id, manifest, ref, graph=False)
                row = loaded.row_of.get(face_id)
                if row is not None:
                    return loaded, row
        return None

    def _record(self, manifest: Manifest, face_id: str, user_of: dict[str, str]) -> FaceRecord:
        loaded, row = self._locate(manifest, face_id)
        return self._with_user(loaded.records[row], user_of)

    @staticmethod
    def _with_user(record: FaceRecord, user_of: dict[str, str]) -> FaceRecord:
        owner = user_of.get(record.face_id)
        return record if owner is None else FaceRecord(**{**record.__dict__, "user_id": owner})

    def _live_sorted(self, cached: _Cached) -> list[str]:
        if cached.live_sorted is None:
            manifest = cached.manifest
            ids = []
            for ref in manifest.segments:
                loaded = self._load(manifest.collection_id, manifest, ref, graph=False)
                ids.extend(face_id for face_id in loaded.row_of if face_id not in manifest.tombstones)
            cached.live_sorted = sorted(ids)
        return cached.live_sorted

    def _vectors(self, manifest: Manifest, face_ids: list[str]) -> np.ndarray:
        out = np.zeros((len(face_ids), manifest.index.dim), dtype=np.float32)
        for i, face_id in enumerate(face_ids):
            found = self._locate(manifest, face_id) if face_id not in manifest.tombstones else None
            if found is None:
                raise ResourceNotFoundException(
                    f"The face id: {face_id} does not exist in the collection {manifest.collection_id}"
                )
            loaded = self._load(manifest.collection_id, manifest, found[0].ref, graph=True)
            out[i] = np.asarray(loaded.index.get_items([found[1]], return_type="numpy"))[0]
        return out

    def _search(
        self, manifest: Manifest, query: np.ndarray, k: int, min_cosine: float
    ) -> list[tuple[FaceRecord, float]]:
        hits: list[tuple[FaceRecord, float]] = []
        for ref in manifest.segments:
            loaded = self._load(manifest.collection_id, manifest, ref, graph=True)
            for row, cosine in seg.search(loaded, query, k, manifest.index.ef):
                if cosine >= min_cosine:
                    hits.append((loaded.records[row], cosine))
        hits.sort(key=lambda hit: -hit[1])
        return hits[:k]

    @classmethod
    def _check_query(
        cls, manifest: Manifest, vector: np.ndarray, face_model_version: str | None
    ) -> np.ndarray:
        if face_model_version is not None and face_model_version != manifest.face_model_version:
            raise InvalidParameterException(
                f"The query was embedded with face model {face_model_version}; the collection "
                f"{manifest.collection_id} uses face model {manifest.face_model_version}."
            )
        return cls._check_vectors(manifest, vector, expected_rows=None)[0]

    @staticmethod
    def _check_vectors(manifest: Manifest, vectors: np.ndarray, expected_rows: int | None) -> np.ndarray:
        """Rows as float32 unit vectors; InvalidParameterException for a bad shape, zero or non-finite."""
        array = np.asarray(vectors, dtype=np.float32)
        if expected_rows is None and array.ndim == 1:
            array = array.reshape(1, -1)
        dim = manifest.index.dim
        if array.ndim != 2 or array.shape[1] != dim:
            raise InvalidParameterException(
                f"Vectors of shape {tuple(np.shape(vectors))} do not match the collection "
                f"{manifest.collection_id}'s dimension {dim} (face model {manifest.face_model_version})."
            )
        if expected_rows is not None and array.shape[0] != expected_rows:
            raise InvalidParameterException(f"Got {array.shape[0]} vectors for {expected_rows} face records.")
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        if not np.all(np.isfinite(array)) or np.any(norms == 0):
            raise InvalidParameterException("Vectors must be finite and non-zero.")
        return array / norms

    @staticmethod
    def _info(manifest: Manifest) -> CollectionInfo:
        return CollectionInfo(
            collection_id=manifest.collection_id,
            face_model_version=manifest.face_model_version,
            dim=manifest.index.dim,
            face_count=manifest.face_count,
            user_count=len(manifest.users),
            created_at=manifest.created_at,
            tags=dict(manifest.tags),
        )


@dataclass(frozen=True)
class CollectionView:
    """A collection as one manifest read saw it: the reads of one request share it, and so its GET.

    From ``CollectionStore.view``. Its methods are the store's read methods on that manifest, so
    a request that describes, fetches vectors and searches sees one consistent state.
    """

    store: CollectionStore
    manifest: Manifest

    @property
    def info(self) -> CollectionInfo:
        return self.store._info(self.manifest)

    def get_faces(self, face_ids: Sequence[str]) -> dict[str, FaceRecord]:
        return self.store._get_faces_in(self.manifest, face_ids)

    def get_vectors(self, face_ids: Sequence[str]) -> np.ndarray:
        with self.store._lock:
            return self.store._vectors(self.manifest, list(face_ids))

    def get_user(self, user_id: str) -> UserRecord:
        return self.store._get_user_in(self.manifest, user_id)

    def search(
        self, vector: np.ndarray, *, k: int, min_cosine: float = -1.0, face_model_version: str | None = None
    ) -> list[tuple[FaceRecord, float]]:
        return self.store._search_in(
            self.manifest, vector, k=k, min_cosine=min_cosine, face_model_version=face_model_version
        )

    def search_users(
        self, vector: np.ndarray, *, k: int, min_cosine: float = -1.0, face_model_version: str | None = None
    ) -> list[UserMatch]:
        return self.store._search_users_in(
            self.manifest, vector, k=k, min_cosine=min_cosine, face_model_version=face_model_version
        )


def _status(face_ids: tuple[str, ...]) -> str:
    return USER_STATUS_ACTIVE if face_ids else USER_STATUS_CREATED


def _user_record(user_id: str, face_ids: tuple[str, ...]) -> UserRecord:
    return UserRecord(user_id=user_id, user_status=_status(face_ids), face_ids=tuple(sorted(face_ids)))


def _cache_name(blobs: BlobStore, collection_id: str, segment_id: str, ext: str) -> str:
    # Segment ids are unique per store; the location hash keeps two stores sharing one cache folder apart.
    where = hashlib.sha256(f"{blobs.location}\x00{collection_id}".encode()).hexdigest()[:16]
    return f"{where}-{segment_id}.{ext}"


def open_store(
    location: str,
    cache_dir: Path | None = None,
    *,
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
    s3_client=None,
) -> CollectionStore:
    """A new, uncached store on ``location`` (``s3://bucket/prefix`` or a folder), for tests and benchmarks.

    ``cache_dir`` defaults to the settings' cache folder; segments are cached there under names that
    include a hash of the location, so stores never mix their files.
    """
    blobs = open_blob_store(location, s3_client=s3_client)
    return CollectionStore(blobs, DiskCache(cache_dir or get_settings().cache_dir, cache_max_bytes))


@once
def get_store() -> CollectionStore:
    """The container's store, from ``get_settings().store`` and its cache settings; created once."""
    settings = get_settings()
    return open_store(settings.store, settings.cache_dir, cache_max_bytes=settings.cache_max_bytes)
