"""Process settings, read once from the environment into one frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from facesearch.lazy import once

# Environment variable names: the only place they are spelled. Defaults for Lambda live in template.yaml.
ENV_MODELS_DIR = "FACESEARCH_MODELS_DIR"
ENV_FACE_MODEL_VERSION = "FACESEARCH_FACE_MODEL_VERSION"
ENV_STORE = "FACESEARCH_STORE"
ENV_CACHE_DIR = "FACESEARCH_CACHE_DIR"
ENV_CACHE_MAX_BYTES = "FACESEARCH_CACHE_MAX_BYTES"
ENV_ALLOWED_IMAGE_BUCKETS = "FACESEARCH_ALLOWED_IMAGE_BUCKETS"
ENV_MAX_IMAGE_PIXELS = "FACESEARCH_MAX_IMAGE_PIXELS"
ENV_INTRA_OP_THREADS = "FACESEARCH_INTRA_OP_THREADS"
ENV_FACEDATA_DIR = "FACESEARCH_FACEDATA_DIR"
ENV_ENGINE = "FACESEARCH_ENGINE"
ENV_ENGINE_OVERRIDES = "FACESEARCH_ENGINE_OVERRIDES"
ENV_VECTOR_BUCKET = "FACESEARCH_VECTOR_BUCKET"
# S3-event indexing (s3events.py): the collection photos are indexed into, and the key prefix they are under.
ENV_PHOTO_COLLECTION = "FACESEARCH_PHOTO_COLLECTION"
ENV_PHOTO_PREFIX = "FACESEARCH_PHOTO_PREFIX"

# The layer mounts at /opt in Lambda; elsewhere the repository's build folder holds the packs.
LAMBDA_MODELS_DIR = Path("/opt/models")
REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_MODELS_DIR = REPO_ROOT / "build" / "models"
LOCAL_STORE_DIR = Path.home() / ".facesearch" / "store"
DEFAULT_CACHE_DIR = Path("/tmp/facesearch-cache")
DEFAULT_CACHE_MAX_BYTES = 512 * 1024 * 1024
# The engine of new collections: today's in-function HNSW segments unless the deployment chooses S3 Vectors.
DEFAULT_ENGINE = "hnsw"
# 40 megapixels: well above any camera photo a 15 MiB JPEG holds, far below a decompression bomb.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


def _default_models_dir() -> Path:
    return LAMBDA_MODELS_DIR if LAMBDA_MODELS_DIR.is_dir() else LOCAL_MODELS_DIR


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one process.

    ``store`` is either ``s3://bucket/prefix`` or a local folder path.
    ``allowed_image_buckets`` is the allow-list for ``Image.S3Object``; ``("*",)`` allows any bucket.
    ``engine`` is the engine of new collections (``hnsw`` or ``s3vectors``); ``engine_overrides`` are
    ``(CollectionId glob, engine)`` pairs from ``FACESEARCH_ENGINE_OVERRIDES`` (``"big-*=s3vectors,x=hnsw"``),
    the first match wins; ``vector_bucket`` is the S3 Vectors bucket of the ``s3vectors`` engine.
    """

    models_dir: Path
    face_model_version: str | None
    store: str
    cache_dir: Path
    cache_max_bytes: int
    allowed_image_buckets: tuple[str, ...]
    max_image_pixels: int
    intra_op_threads: int
    engine: str = DEFAULT_ENGINE
    engine_overrides: tuple[tuple[str, str], ...] = ()
    vector_bucket: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        buckets = tuple(b.strip() for b in env.get(ENV_ALLOWED_IMAGE_BUCKETS, "").split(",") if b.strip())
        return cls(
            models_dir=Path(env.get(ENV_MODELS_DIR) or _default_models_dir()),
            face_model_version=env.get(ENV_FACE_MODEL_VERSION) or None,
            store=env.get(ENV_STORE) or str(LOCAL_STORE_DIR),
            cache_dir=Path(env.get(ENV_CACHE_DIR) or DEFAULT_CACHE_DIR),
            cache_max_bytes=int(env.get(ENV_CACHE_MAX_BYTES) or DEFAULT_CACHE_MAX_BYTES),
            allowed_image_buckets=buckets,
            max_image_pixels=int(env.get(ENV_MAX_IMAGE_PIXELS) or DEFAULT_MAX_IMAGE_PIXELS),
            intra_op_threads=int(env.get(ENV_INTRA_OP_THREADS) or 1),
            engine=env.get(ENV_ENGINE) or DEFAULT_ENGINE,
            engine_overrides=tuple(
                (pattern.strip(), engine.strip())
                for pattern, _, engine in (
                    item.partition("=")
                    for item in env.get(ENV_ENGINE_OVERRIDES, "").split(",")
                    if item.strip()
                )
            ),
            vector_bucket=env.get(ENV_VECTOR_BUCKET) or None,
        )


@once
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_env()
