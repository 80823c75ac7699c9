"""Shared fixtures: a fresh container per test, the labelled face set, the model pack, S3 on a moto server.

``moto_s3_server`` (session-wide ThreadedMotoServer endpoint URL), ``s3_env`` (points boto3 at it with dummy
credentials), ``s3_bucket`` (a fresh bucket per test) and ``store_location`` (parametrised: a folder, and
``s3://<bucket>/<prefix>`` on moto). Unit tests cannot use the S3 ones: their sockets are disabled.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from facesearch import lazy
from facesearch.settings import ENV_FACEDATA_DIR, REPO_ROOT
from tests.support import s3vectors_query
from tests.support.moto_atomic import make_conditional_puts_atomic

FACEDATA_DIR = Path(os.environ.get(ENV_FACEDATA_DIR) or REPO_ROOT.parent / "shared" / "facedata" / "dev")


@pytest.fixture(autouse=True)
def fresh_container():
    """Every test starts as a cold Lambda container: no cached sessions, clients, indexes or settings."""
    lazy.reset_all()
    yield
    lazy.reset_all()


@pytest.fixture(scope="session")
def facedata() -> dict:
    """The labelled dev face set (../shared/facedata/dev); tests that need it skip on a fresh clone."""
    manifest = FACEDATA_DIR / "manifest.json"
    if not manifest.exists():
        pytest.skip(
            f"labelled face set not found at {FACEDATA_DIR} (set {ENV_FACEDATA_DIR}); it is not shipped"
        )
    data = json.loads(manifest.read_text())
    data["root"] = FACEDATA_DIR
    return data


@pytest.fixture(scope="session")
def model_pack() -> Path:
    """The INT8 model pack and the attribute pack under build/models, built by `make models` (or here)."""
    import subprocess
    import sys

    models_dir = REPO_ROOT / "build" / "models"
    for script in ("build_pack.py", "build_attributes.py"):  # the face pack, then the attribute pack
        subprocess.run(
            [sys.executable, str(REPO_ROOT / "layers" / "models" / script), "--out", str(models_dir)],
            check=True,
        )
    return models_dir


DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_s3_server() -> str:
    """One moto server for the session (real HTTP, conditional writes atomic as on S3); yields its URL."""
    make_conditional_puts_atomic()
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


@pytest.fixture
def vector_bucket(s3_env, monkeypatch) -> str:
    """A fresh S3 Vectors bucket on the moto server (QueryVectors from tests/support/s3vectors_query.py)."""
    s3vectors_query.install()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3VECTORS", s3_env)
    name = f"vectors-{uuid.uuid4().hex[:16]}"
    boto3.client("s3vectors").create_vector_bucket(vectorBucketName=name)
    return name
