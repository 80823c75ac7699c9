"""The engine settings: FACESEARCH_ENGINE, its per-collection overrides and the vector bucket."""

from __future__ import annotations

from facesearch.settings import (
    DEFAULT_ENGINE,
    ENV_ENGINE,
    ENV_ENGINE_OVERRIDES,
    ENV_VECTOR_BUCKET,
    Settings,
)
from facesearch.store.manifest import ENGINES


def test_defaults_keep_every_collection_on_hnsw():
    settings = Settings.from_env({})
    assert (settings.engine, settings.engine_overrides, settings.vector_bucket) == (DEFAULT_ENGINE, (), None)
    assert DEFAULT_ENGINE == "hnsw" and DEFAULT_ENGINE in ENGINES


def test_overrides_are_parsed_in_order():
    settings = Settings.from_env(
        {
            ENV_ENGINE: "s3vectors",
            ENV_ENGINE_OVERRIDES: " small-* = hnsw ,big-*=s3vectors,, ",
            ENV_VECTOR_BUCKET: "vectors",
        }
    )
    assert settings.engine == "s3vectors"
    assert settings.engine_overrides == (("small-*", "hnsw"), ("big-*", "s3vectors"))
    assert settings.vector_bucket == "vectors"
