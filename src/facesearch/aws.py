"""AWS clients, created lazily once per container (boto3 honours AWS_ENDPOINT_URL_S3 for tests)."""

from __future__ import annotations

import boto3
from botocore.config import Config

from facesearch.lazy import once

# Standard retry mode backs off on throttling and 5xx; conditional-write conflicts (412) are not retried
# by botocore and are handled by the store.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)


@once
def s3_client():
    """The container's S3 client."""
    return boto3.client("s3", config=_CONFIG)


@once
def s3vectors_client():
    """The container's S3 Vectors client (boto3 honours AWS_ENDPOINT_URL_S3VECTORS for tests).

    botocore retries nothing here: the engine (``facesearch.store.vectorindex``) retries throttling
    itself, so a batch is never half-retried behind its back and tests can count the attempts.
    """
    return boto3.client(
        "s3vectors", config=Config(retries={"mode": "standard", "max_attempts": 1}, max_pool_connections=32)
    )
