"""Functional fixtures: a real-HTTP moto S3 server, per-test buckets, and the store on both backends.

Shared with the protocol tests: ``moto_s3_server`` (session-wide ThreadedMotoServer endpoint URL),
``s3_env`` (points boto3 at it via AWS_ENDPOINT_URL_S3 with dummy credentials), ``s3_bucket`` (a fresh
bucket per test) and ``store_location`` (parametrised: a folder, and ``s3://<bucket>/<prefix>`` on moto).
"""

from __future__ import annotations

import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_s3_server() -> str:
    """One moto server for the session (real HTTP, real conditional writes); yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(moto_s3_server, monkeypatch) -> str:
    """Environment that sends every boto3 S3 client (including ``facesearch.aws.s3_client()``) to moto."""
    for name, value in DUMMY_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_s3_server)
    return moto_s3_server


@pytest.fixture
def s3_bucket(s3_env) -> str:
    """A fresh, empty bucket on the moto server."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    boto3.client("s3", endpoint_url=s3_env).create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["folder", "s3"])
def store_location(request, tmp_path) -> str:
    """Where a store lives: a local folder, or a prefix of a fresh bucket on the moto server."""
    if request.param == "folder":
        return str(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/facesearch"
