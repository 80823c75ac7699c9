"""Where a command's requests go: a local store (served in-process on localhost) or a deployed endpoint.

Either way the command holds an unchanged boto3 Rekognition client, so it behaves exactly as an SDK user:
``--store DIR|s3://bucket/prefix`` starts ``facesearch serve``'s ``LocalServer`` on a free port for the
command's lifetime; ``--endpoint URL`` signs for API Gateway with ``facesearch.client()``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from facesearch.settings import LOCAL_STORE_DIR

# The local server needs no credentials; fixed dummy ones keep local use independent of ~/.aws.
LOCAL_CREDENTIALS = {
    "aws_access_key_id": "local",
    "aws_secret_access_key": "local",
    "region_name": "us-east-1",
}
# The handler's per-request JSON logs and EMF metrics are Lambda's business, not a command's output.
QUIET_ENV = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
# Connections the client keeps: one per worker thread, plus slack.
MAX_POOL_CONNECTIONS = 32


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--store",
        help=f"local collections folder or s3://bucket/prefix, served in-process (default {LOCAL_STORE_DIR})",
    )
    where.add_argument(
        "--endpoint",
        help="a deployed FaceSearch API URL (the stack's ApiUrl), signed for execute-api with your AWS "
        "credentials; or a running `facesearch serve` URL",
    )


def resolve_store(store: str | None) -> str:
    """The store location as ``facesearch serve`` takes it: s3:// as given, a folder made absolute."""
    if store is None:
        return str(LOCAL_STORE_DIR)
    return store if store.startswith("s3://") else str(Path(store).expanduser().resolve())


@contextlib.contextmanager
def connect(args: argparse.Namespace) -> Iterator[Any]:
    """An unchanged boto3 Rekognition client for ``--endpoint`` or ``--store`` (served while open)."""
    from botocore.config import Config

    config = Config(max_pool_connections=MAX_POOL_CONNECTIONS, retries={"mode": "standard"})
    if args.endpoint:
        if args.endpoint.startswith(("http://127.", "http://localhost")):
            import boto3

            yield boto3.client("rekognition", endpoint_url=args.endpoint, config=config, **LOCAL_CREDENTIALS)
        else:
            from facesearch.client import client as signed_client

            yield signed_client(args.endpoint, config=config)
        return
    import boto3

    from facesearch.devtools.server import LocalServer

    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    with LocalServer(resolve_store(args.store)) as server:
        yield boto3.client("rekognition", endpoint_url=server.url, config=config, **LOCAL_CREDENTIALS)
