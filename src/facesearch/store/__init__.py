"""Collections store: manifest + immutable HNSW segments on S3 or a local folder, cached warm in /tmp.

Public API (the protocol layer's only entry points; no HTTP, no Rekognition wire shapes in here):

- ``get_store() -> CollectionStore``: the container's store, created once (``@once``) from
  ``get_settings().store`` (``s3://bucket/prefix`` or a folder) and ``get_settings().cache_dir``.
- ``open_store(location, cache_dir=None, ...) -> CollectionStore``: an uncached store, for tests and bench.
- ``CollectionStore`` (``core``): collections and every write (faces, users, associations, compaction).
- ``CollectionStore.view(id) -> CollectionView`` (``view``): the only read API. One conditional manifest
  GET whose ``info``, ``get_faces``, ``get_vectors``, ``get_user``, ``list_faces``, ``list_users``,
  ``search`` and ``search_users`` a request's reads share.

Modules: ``core`` (manifest cache, conditional read, manifest swap, writes), ``view`` (reads),
``changes`` (pure manifest changes), ``compaction`` (merge policy, compaction, GC), ``memory`` (loaded
segments), ``keys`` (object layout), ``transfer`` (export/import as versioned JSON Lines), ``segment``,
``manifest``, ``blobs``, ``cache``, ``tokens``.

Layout under the location::

    collections/<CollectionId>/manifest.json       the only mutable object, swapped by conditional PUT
    collections/<CollectionId>/segments/<id>.bin   immutable: header + float32 vectors + hnswlib graph
    collections/<CollectionId>/segments/<id>.json  immutable: the segment's face records
    collections/<CollectionId>/idempotency/...     ClientRequestToken records (not GC's; go with it)

Errors: the store raises the shared wire errors of ``facesearch.errors`` itself with Rekognition-like
messages (ResourceNotFoundException, ResourceAlreadyExistsException, ConflictException,
InvalidParameterException, InvalidPaginationTokenException, ServiceQuotaExceededException,
ProvisionedThroughputExceededException when a manifest swap keeps losing races). Internal damage raises
subclasses of InternalServerError from ``facesearch.store.errors``: ``CorruptSegmentError`` (a segment
fails its checksum: the collection is refused cleanly rather than answered with faces missing) and
``ManifestFormatError`` (a manifest written by a newer format version, or unreadable).
"""

from __future__ import annotations

from facesearch.store.core import CollectionStore
from facesearch.store.errors import CorruptSegmentError, ManifestFormatError
from facesearch.store.opening import get_store, open_store
from facesearch.store.view import CollectionView

__all__ = [
    "CollectionStore",
    "CollectionView",
    "CorruptSegmentError",
    "ManifestFormatError",
    "get_store",
    "open_store",
]
