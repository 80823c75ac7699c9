"""Opening a store: ``open_store`` for tests and tools, ``get_store`` once per container from the settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from facesearch.lazy import once
from facesearch.settings import DEFAULT_CACHE_MAX_BYTES, DEFAULT_ENGINE, get_settings
from facesearch.store.blobs import open_blob_store
from facesearch.store.cache import DiskCache
from facesearch.store.core import CollectionStore
from facesearch.store.manifest import ENGINE_HNSW
from facesearch.store.vectorindex import VectorIndexes


def open_store(
    location: str,
    cache_dir: Path | None = None,
    *,
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
    s3_client=None,
    engine: str = DEFAULT_ENGINE,
    engine_overrides: Sequence[tuple[str, str]] = (),
    vector_bucket: str | None = None,
    s3vectors_client=None,
) -> CollectionStore:
    """A new, uncached store on ``location`` (``s3://bucket/prefix`` or a folder), for tests and benchmarks.

    ``cache_dir`` defaults to the settings' cache folder; segments are cached there under names that
    include a hash of the location, so stores never mix their files. ``engine`` is the engine of new
    collections (``engine_overrides``: (CollectionId glob, engine) pairs, first match wins); the
    s3vectors engine needs an S3 location and ``vector_bucket`` (a folder store is hnsw only).
    """
    blobs = open_blob_store(location, s3_client=s3_client)
    vectors = None
    if vector_bucket and location.startswith("s3://"):
        from facesearch.aws import s3vectors_client as get_s3vectors_client

        vectors = VectorIndexes(s3vectors_client or get_s3vectors_client(), vector_bucket)
    if not location.startswith("s3://"):
        engine, engine_overrides = ENGINE_HNSW, ()
    return CollectionStore(
        blobs,
        DiskCache(cache_dir or get_settings().cache_dir, cache_max_bytes),
        vectors=vectors,
        engine=engine,
        engine_overrides=engine_overrides,
    )


@once
def get_store() -> CollectionStore:
    """The container's store, from ``get_settings().store`` and its cache settings; created once."""
    settings = get_settings()
    return open_store(
        settings.store,
        settings.cache_dir,
        cache_max_bytes=settings.cache_max_bytes,
        engine=settings.engine,
        engine_overrides=settings.engine_overrides,
        vector_bucket=settings.vector_bucket,
    )
