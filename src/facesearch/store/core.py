"""CollectionStore: the manifest cache, conditional reads, manifest swaps and the write operations.

Reads GET the manifest conditionally on the cached ETag (one request when nothing changed) and return a
``CollectionView`` (every read is a method of the view). Writes upload a new immutable segment (if any),
then swap the manifest with a conditional PUT and retry with backoff on a lost race: no lost update, and
a crash at any point leaves the previous manifest in force. Each write is a pure change of
``facesearch.store.changes``, validated before anything is written; wire errors come from
``facesearch.errors``. Face ids are supplied by the caller (fresh UUIDs); ``add_faces`` ignores
``FaceRecord.user_id`` (associations are changed only through ``associate_faces``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import numpy as np

from facesearch.domain import (
    AssociateResult,
    CollectionInfo,
    DeleteResult,
    DisassociateResult,
    FaceRecord,
    Page,
)
from facesearch.errors import (
    InternalServerError,
    InvalidParameterException,
    ProvisionedThroughputExceededException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from facesearch.settings import DEFAULT_ENGINE
from facesearch.store import changes, compaction, keys, s3vectors, tokens
from facesearch.store import segment as seg
from facesearch.store.blobs import Blob, BlobStore
from facesearch.store.cache import DiskCache
from facesearch.store.errors import PreconditionFailed
from facesearch.store.manifest import (
    ENGINE_S3VECTORS,
    ENGINES,
    IndexParams,
    Manifest,
    SegmentRef,
)
from facesearch.store.memory import SegmentMemory
from facesearch.store.s3vectors_view import S3VectorsView
from facesearch.store.vectorindex import VectorIndexes
from facesearch.store.view import CollectionView, Snapshot, check_max_results, collection_info

R = TypeVar("R")

# HNSW parameters (hnswlib names): M=16 / ef_construction=200 is hnswlib's recommended high-recall setting;
# ef=160 gives recall@10 >= 0.99 on 100k random 512-D unit vectors (bench/store.py), which are harder
# than face embeddings. Every value is recorded in the manifest; these only apply to new collections.
DEFAULT_INDEX: dict[str, Any] = {"space": "cosine", "m": 16, "ef_construction": 200, "ef": 160}
# Manifests cached in memory (least recently read dropped first; its segments are released with it): a
# warm container serves a few collections, and each cached manifest keeps its segments loaded.
MAX_CACHED_MANIFESTS = 32
# Manifest swap retries: exponential backoff with jitter from 10 ms, capped at 1 s per wait.
MAX_SWAP_ATTEMPTS = 40
_BACKOFF_BASE = 0.01
_BACKOFF_CAP = 1.0


@dataclass(frozen=True)
class MemoryReport:
    """What a store holds in memory: cached manifests (by CollectionId), loaded segments (by id), and the
    small segments' vectors copied into the cached manifests' exact blocks (``block_bytes``)."""

    cached_collections: tuple[str, ...]
    referenced_segments: frozenset[str]
    loaded_segments: frozenset[str]
    loaded_bytes: int
    block_bytes: int = 0


class CollectionStore:
    """Collections of faces (records + unit vectors) with vector search and users, on one blob store."""

    def __init__(
        self,
        blobs: BlobStore,
        cache: DiskCache,
        *,
        vectors: VectorIndexes | None = None,
        engine: str = DEFAULT_ENGINE,
        engine_overrides: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.blobs = blobs
        self.cache = cache
        # The s3vectors engine's vector bucket (None: only hnsw collections can be created or read).
        self.vectors = vectors
        self.engine = engine
        self.engine_overrides = tuple(engine_overrides)
        self.memory = SegmentMemory(cache)
        self._manifests: OrderedDict[str, Snapshot] = OrderedDict()
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------------- collections

    def engine_for(self, collection_id: str) -> str:
        """The engine a new collection gets: the first matching override, else the store's default."""
        for pattern, engine in self.engine_overrides:
            if fnmatch.fnmatchcase(collection_id, pattern):
                return engine
        return self.engine

    def create_collection(
        self,
        collection_id: str,
        *,
        face_model_version: str,
        dim: int,
        index: IndexParams | None = None,
        tags: dict[str, str] | None = None,
        engine: str | None = None,
    ) -> CollectionInfo:
        """Create an empty collection pinned to ``face_model_version`` and vectors of ``dim``, with ``tags``.

        ``engine`` (default: ``engine_for(collection_id)``) is recorded in the manifest for good.
        ResourceAlreadyExistsException if it exists (decided by the put-if-absent of its manifest).
        """
        engine = engine or self.engine_for(collection_id)
        if engine not in ENGINES:
            raise InternalServerError(f"Unknown engine {engine!r}; engines: {', '.join(ENGINES)}.")
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
        if engine == ENGINE_S3VECTORS:
            manifest = s3vectors.with_engine(manifest, engine, s3vectors.new_index(self, dim))
        try:
            etag = self.blobs.put_if_absent(keys.manifest_key(collection_id), manifest.to_json())
        except PreconditionFailed as error:
            s3vectors.drop_index(self, manifest)
            raise ResourceAlreadyExistsException(
                f"The collection id: {collection_id} already exists"
            ) from error
        self._install(collection_id, Snapshot(etag, manifest))
        return collection_info(manifest)

    def delete_collection(self, collection_id: str) -> None:
        """Delete the manifest (the collection is gone from then on), then every object under its prefix."""
        manifest = self.view(collection_id).manifest
        self.blobs.delete(keys.manifest_key(collection_id))
        self._install(collection_id, None)
        if manifest.engine == ENGINE_S3VECTORS:
            s3vectors.drop_index(self, manifest)
        for info in self.blobs.list(keys.collection_prefix(collection_id)):
            self.blobs.delete(info.key)

    def view(self, collection_id: str) -> CollectionView:
        """The collection as one conditional GET of its manifest sees it; every read is a method of it.

        ResourceNotFoundException if there is no such collection.
        """
        with self._lock:
            cached = self._manifests.get(collection_id)
            if cached is not None:
                self._manifests.move_to_end(collection_id)
        got = self.blobs.get(keys.manifest_key(collection_id), if_none_match=cached.etag if cached else None)
        if got is None:
            self._install(collection_id, None)
            raise changes.not_found(collection_id)
        if not isinstance(got, Blob):
            # NOT_MODIFIED answers only a GET made with the cached snapshot's ETag.
            return self._view_of(cast(Snapshot, cached))
        fresh = Snapshot(got.etag, Manifest.from_json(got.body, f"of collection {collection_id}"))
        self._install(collection_id, fresh)
        return self._view_of(fresh)

    def list_collections(self, *, max_results: int, next_token: str | None = None) -> Page[CollectionInfo]:
        """Collections sorted by id, ``max_results`` per page."""
        check_max_results(max_results)
        scope = tokens.scope_of("collections", self.blobs.location)
        ids = sorted(keys.collection_id_of(prefix) for prefix in self.blobs.list_prefixes(keys.ROOT))
        start = tokens.resume_index(ids, tokens.decode(next_token, "c", scope)) if next_token else 0
        items: list[CollectionInfo] = []
        position = start
        while position < len(ids) and len(items) < max_results:
            # A missing manifest: a deleted collection's leftover objects, or one deleted while listing.
            with contextlib.suppress(ResourceNotFoundException):
                items.append(self.view(ids[position]).info)
            position += 1
        more = any(self._exists(collection_id) for collection_id in ids[position:])
        token = tokens.encode("c", scope, items[-1].collection_id) if more and items else None
        return Page(items=tuple(items), next_token=token)

    # ---------------------------------------------------------------------------------------------- writes

    def add_faces(self, collection_id: str, records: Sequence[FaceRecord], vectors: np.ndarray) -> None:
        """Add faces (``vectors[i]`` belongs to ``records[i]``) as one new segment.

        InvalidParameterException if the vectors have another dimension, the records another
        IndexFacesModelVersion than the collection, a vector is zero or not finite, or ids repeat.
        """
        manifest = self.view(collection_id).manifest
        records = tuple(records)
        unit = changes.check_faces(manifest, records, vectors)
        if not records:
            return
        if manifest.engine == ENGINE_S3VECTORS:
            s3vectors.add_faces(self, manifest, records, unit)
            return
        built = seg.build(keys.new_segment_id(), records, unit, manifest.index, manifest.face_model_version)
        self.upload_segment(collection_id, built)
        self.mutate(collection_id, lambda current: changes.add_segment(current.manifest, manifest, built.ref))
        self.memory.remember(built)
        self.maybe_compact(collection_id)

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> DeleteResult:
        """Tombstone faces. Unknown -> FACE_NOT_FOUND; faces of a user -> ASSOCIATED_TO_AN_EXISTING_USER."""
        if self._engine(collection_id) == ENGINE_S3VECTORS:
            return s3vectors.delete_faces(self, collection_id, face_ids)
        result = self.mutate(
            collection_id, lambda current: changes.delete_faces(current.manifest, face_ids, current.is_live)
        )
        if result.deleted:
            self.maybe_compact(collection_id)
        return result

    def set_tags(self, collection_id: str, tags: dict[str, str], *, max_tags: int) -> None:
        """Add or overwrite ``tags`` (see ``changes.set_tags``): checked on the manifest the swap replaces."""
        self.mutate(collection_id, lambda current: changes.set_tags(current.manifest, tags, max_tags))

    def remove_tags(self, collection_id: str, tag_keys: Sequence[str]) -> None:
        """Remove the tags with these keys; keys the collection does not have are ignored."""
        self.mutate(collection_id, lambda current: changes.remove_tags(current.manifest, tag_keys))

    def create_user(self, collection_id: str, user_id: str) -> None:
        """Create a user with no faces (status CREATED). ConflictException if the UserId exists."""
        self.mutate(collection_id, lambda current: changes.create_user(current.manifest, user_id))

    def delete_user(self, collection_id: str, user_id: str) -> None:
        """Delete a user; its faces stay in the collection, disassociated."""
        self.mutate(collection_id, lambda current: changes.delete_user(current.manifest, user_id))

    def associate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, min_cosine: float | None = None
    ) -> AssociateResult:
        """Associate faces with a user, as AssociateFaces does (see ``changes.associate_faces``)."""
        if self._engine(collection_id) == ENGINE_S3VECTORS:
            return s3vectors.associate_faces(self, collection_id, user_id, face_ids, min_cosine)
        return self.mutate(
            collection_id,
            lambda current: changes.associate_faces(
                current.manifest,
                user_id,
                face_ids,
                current.is_live,
                min_cosine=min_cosine,
                vectors=current.get_vectors,
            ),
        )

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> DisassociateResult:
        """Remove faces from a user, as DisassociateFaces does (see ``changes.disassociate_faces``)."""
        if self._engine(collection_id) == ENGINE_S3VECTORS:
            return s3vectors.disassociate_faces(self, collection_id, user_id, face_ids)
        return self.mutate(
            collection_id,
            lambda current: changes.disassociate_faces(current.manifest, user_id, face_ids, current.is_live),
        )

    # -------------------------------------------------------------------------- compaction and collection

    def maybe_compact(self, collection_id: str) -> bool:
        """A write's compaction: only a merge within INLINE_COMPACTION_MAX_FACES; True if it swapped.

        A due merge bigger than that is left for the scheduled job (``compact`` without a budget), so a
        write never outlives the function's timeout after committing its own change.
        """
        return compaction.compact(
            self, collection_id, force=False, budget=compaction.INLINE_COMPACTION_MAX_FACES
        )

    def compact(self, collection_id: str, *, force: bool = False, budget: int | None = None) -> bool:
        """Merge segments (see ``compaction.compact``); True if a swap applied.

        ``force``: all into one rebuilt segment. No ``budget``: the job's merges (``plan_job``); with
        one, a write's (``plan``). A swap applies only if the merged segments are all still in the
        manifest (tombstones added meanwhile stay, and still apply to the merged faces).
        """
        return compaction.compact(self, collection_id, force=force, budget=budget)

    def collect_garbage(
        self, collection_id: str, *, grace_seconds: float = compaction.GC_GRACE_SECONDS
    ) -> list[str]:
        """Delete segment objects no manifest references that are older than ``grace_seconds``; their keys."""
        return compaction.collect_garbage(self, collection_id, grace_seconds=grace_seconds)

    def memory_report(self) -> MemoryReport:
        """The store's own memory accounting (for tests, benchmarks and logs)."""
        with self._lock:
            cached = tuple(self._manifests)
            referenced = {ref.segment_id for s in self._manifests.values() for ref in s.manifest.segments}
            blocks = sum(b.matrix.nbytes for s in self._manifests.values() for b in s.exact.values())
        loaded = self.memory.loaded()
        return MemoryReport(
            cached_collections=cached,
            referenced_segments=frozenset(referenced),
            loaded_segments=frozenset(segment.ref.segment_id for segment in loaded),
            loaded_bytes=sum(segment.nbytes() for segment in loaded),
            block_bytes=blocks,
        )

    # ---------------------------------------------------------------- for the store's own modules only

    def segment(self, manifest: Manifest, ref: SegmentRef, *, graph: bool) -> seg.LoadedSegment:
        """A segment of ``manifest`` in memory (what it is searched with too if ``graph``)."""
        return self.memory.load(self.blobs, manifest, ref, graph=graph)

    def mutate(self, collection_id: str, change: Callable[[CollectionView], tuple[Manifest | None, R]]) -> R:
        """Apply ``change`` to the current manifest and swap it in by conditional PUT, retrying lost races.

        ``change`` validates against the view it is given (raising wire errors before anything is
        written) and returns (new manifest or None for "nothing to write", result).
        """
        key = keys.manifest_key(collection_id)
        for attempt in range(MAX_SWAP_ATTEMPTS):
            current = self.view(collection_id)
            new, result = change(current)
            if new is None:
                return result
            try:
                etag = self.blobs.put_if_match(key, new.to_json(), current.snapshot.etag)
            except PreconditionFailed:
                time.sleep(min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.5))
                continue
            self._install(collection_id, Snapshot(etag, new))
            return result
        raise ProvisionedThroughputExceededException(
            f"Too many concurrent writes to collection {collection_id}; retry the request."
        )

    def forget_cached(self, collection_id: str, segment_id: str) -> None:
        """Remove a segment this process replaced from the disk cache (it stays in the blob store)."""
        for ext in ("bin", "json"):
            self.cache.discard(keys.cache_name(self.blobs.location, collection_id, segment_id, ext))

    def upload_segment(self, collection_id: str, built: seg.BuiltSegment) -> None:
        """Upload a built segment (an orphan until a manifest swap names it); cached on disk too."""
        # JSON first: a .bin with no .json is recognisably incomplete; both are orphans until the swap.
        segment_id = built.ref.segment_id
        for ext, body in (("json", built.json_body), ("bin", built.bin_body)):
            self.blobs.put_if_absent(keys.segment_key(collection_id, segment_id, ext), body)
        for ext, body in (("json", built.json_body), ("bin", built.bin_body)):
            self.cache.store(keys.cache_name(self.blobs.location, collection_id, segment_id, ext), body)

    # ---------------------------------------------------------------------------------------------- inside

    def _engine(self, collection_id: str) -> str:
        return self.view(collection_id).manifest.engine

    def _view_of(self, snapshot: Snapshot) -> CollectionView:
        if snapshot.manifest.engine == ENGINE_S3VECTORS:
            return S3VectorsView(self.blobs, self.memory, snapshot, vectors=self.vectors)
        return CollectionView(self.blobs, self.memory, snapshot)

    def _exists(self, collection_id: str) -> bool:
        try:
            self.view(collection_id)
        except ResourceNotFoundException:
            return False
        return True

    def _install(self, collection_id: str, snapshot: Snapshot | None) -> None:
        """Cache ``snapshot`` as the collection's current manifest (None: it is gone); release segments."""
        with self._lock:
            if snapshot is None:
                self._manifests.pop(collection_id, None)
            else:
                self._manifests[collection_id] = snapshot
                self._manifests.move_to_end(collection_id)
                while len(self._manifests) > MAX_CACHED_MANIFESTS:
                    self._manifests.popitem(last=False)
            referenced = {ref.segment_id for s in self._manifests.values() for ref in s.manifest.segments}
        self.memory.retain(referenced)
