"""The s3vectors engine: a collection's faces in one Amazon S3 Vectors index; the manifest keeps the rest.

The vector key is the FaceId; the vector's metadata holds the face record: ``image_id``,
``external_image_id``, ``bounding_box`` (JSON [left, top, width, height]), ``confidence`` and
``model_version`` (IndexFacesModelVersion), all non-filterable, and two filterable keys: ``shard``
(0..SHARDS-1 from a hash of the FaceId, to split searches wider than one QueryVectors answer) and
``user_id`` (set when a face is associated: SearchUsers searches only faces that have it). The manifest
stays the truth for users and associations (a stale ``user_id`` hint is filtered through it), for the
face count (``vector_count``, counted by the swap after a write) and for deleted faces (tombstones until
DeleteVectors has removed them, so a delete is never half-visible).

Searches wider than the service's topK limit (QUERY_TOP_K_MAX = 100 per QueryVectors) are split by
``shard`` ranges: each range is queried for its 100 nearest and a range that comes back full (and
above the threshold) is halved again, so SearchFaces' MaxFaces up to 4096 is answered from complete
partitions. A threshold prunes: when the 100th nearest of the whole index is already below it, one
call answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

import numpy as np

from facesearch.domain import (
    AssociateResult,
    DeleteResult,
    DisassociateResult,
    FaceRecord,
)
from facesearch.errors import InternalServerError
from facesearch.store import changes
from facesearch.store.manifest import Manifest
from facesearch.store.s3vectors_view import (
    NON_FILTERABLE,
    S3VectorsView,
    gone,
    indexes,
    metadata_of,
)
from facesearch.store.vectorindex import IndexGone, VectorIndexes
from facesearch.store.view import CollectionView

R = TypeVar("R")


class CollectionStore(Protocol):
    """What this engine uses of ``store.core.CollectionStore`` (a structural type: no import cycle)."""

    vectors: VectorIndexes | None

    def view(self, collection_id: str) -> CollectionView: ...

    def mutate(
        self, collection_id: str, change: Callable[[CollectionView], tuple[Manifest | None, R]]
    ) -> R: ...


def new_index(store: CollectionStore, dim: int) -> str:
    """Create a fresh index for a new collection; its name is unique, so a re-created collection never
    receives the writes still in flight to its predecessor."""
    name = f"facesearch-{uuid.uuid4().hex}"
    try:
        indexes(store).create(name, dim, NON_FILTERABLE)
    except IndexGone as error:
        raise InternalServerError(f"The vector bucket {indexes(store).bucket} does not exist.") from error
    return name


def drop_index(store: CollectionStore, manifest: Manifest) -> None:
    if manifest.vector_index:
        indexes(store).delete(manifest.vector_index)


def add_faces(
    store: CollectionStore, manifest: Manifest, records: tuple[FaceRecord, ...], unit: np.ndarray
) -> None:
    """PutVectors (batched, throttling retried), then count them in the manifest."""
    collection_id = manifest.collection_id
    try:
        indexes(store).put(
            manifest.vector_index or "", [r.face_id for r in records], unit, [metadata_of(r) for r in records]
        )
    except IndexGone as error:
        raise gone(collection_id) from error

    def count(current: CollectionView) -> tuple[Manifest, None]:
        if current.manifest.vector_index != manifest.vector_index:
            # Deleted (and re-created) while the vectors went into its old index, which is gone with it.
            raise gone(collection_id)
        return current.manifest.evolve(vector_count=current.manifest.vector_count + len(records)), None

    store.mutate(collection_id, count)


def delete_faces(store: CollectionStore, collection_id: str, face_ids: Sequence[str]) -> DeleteResult:
    """Tombstone (one swap), DeleteVectors, then forget the tombstones and uncount them (a second swap)."""

    def tombstone(current: CollectionView) -> tuple[Manifest | None, DeleteResult]:
        _prefetch(current, face_ids)
        return changes.delete_faces(current.manifest, face_ids, current.is_live)

    result = store.mutate(collection_id, tombstone)
    settle(store, collection_id)
    return result


def settle(store: CollectionStore, collection_id: str) -> None:
    """Remove the tombstoned faces' vectors from the index and then from the manifest's count."""
    manifest = store.view(collection_id).manifest
    if not manifest.tombstones:
        return
    removed = frozenset(manifest.tombstones)
    try:
        indexes(store).remove(manifest.vector_index or "", sorted(removed))
    except IndexGone as error:
        raise gone(collection_id) from error

    def forget(current: CollectionView) -> tuple[Manifest | None, None]:
        done = current.manifest.tombstones & removed
        if not done:
            return None, None
        return (
            current.manifest.evolve(
                tombstones=current.manifest.tombstones - done,
                vector_count=current.manifest.vector_count - len(done),
            ),
            None,
        )

    store.mutate(collection_id, forget)


def associate_faces(
    store: CollectionStore,
    collection_id: str,
    user_id: str,
    face_ids: Sequence[str],
    min_cosine: float | None,
) -> AssociateResult:
    """The manifest change, then the ``user_id`` hint on the associated faces' vectors (re-put)."""

    def associate(current: CollectionView) -> tuple[Manifest | None, AssociateResult]:
        _prefetch(current, face_ids)
        return changes.associate_faces(
            current.manifest,
            user_id,
            face_ids,
            current.is_live,
            min_cosine=min_cosine,
            vectors=current.get_vectors,
        )

    result = store.mutate(collection_id, associate)
    if result.associated:
        view = store.view(collection_id)
        try:
            found = indexes(store).get(view.manifest.vector_index or "", list(result.associated), data=True)
            hinted = [(stored, stored.data) for stored in found.values() if stored.data is not None]
            if hinted:
                indexes(store).put(
                    view.manifest.vector_index or "",
                    [stored.key for stored, _ in hinted],
                    np.stack([data for _, data in hinted]),
                    [{**stored.metadata, "user_id": user_id} for stored, _ in hinted],
                )
        except IndexGone as error:
            raise gone(collection_id) from error
    return result


def disassociate_faces(
    store: CollectionStore, collection_id: str, user_id: str, face_ids: Sequence[str]
) -> DisassociateResult:
    """The manifest change only: the stale ``user_id`` hint is filtered through the manifest (re-putting
    a vector here could resurrect one a concurrent DeleteFaces has just removed)."""

    def disassociate(current: CollectionView) -> tuple[Manifest | None, DisassociateResult]:
        _prefetch(current, face_ids)
        return changes.disassociate_faces(current.manifest, user_id, face_ids, current.is_live)

    return store.mutate(collection_id, disassociate)


def _prefetch(view: CollectionView, face_ids: Sequence[str]) -> None:
    if isinstance(view, S3VectorsView):
        view.prefetch([face_id for face_id in face_ids if face_id not in view.manifest.tombstones])


def with_engine(manifest: Manifest, engine: str, vector_index: str | None) -> Manifest:
    return replace(manifest, engine=engine, vector_index=vector_index)
