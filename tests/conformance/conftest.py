"""Conformance fixtures: an unchanged boto3 Rekognition client against `facesearch serve` and the handler.

``rekognition`` is parametrised over two transports:
- ``serve``: real HTTP to one ``LocalServer`` per session (REST v1 events, a folder store);
- ``handler``: the handler called in-process by a botocore ``before-send`` hook that turns the signed
  request into an API Gateway HTTP API (v2) event, with the collections on S3 (moto).
With ``FACESEARCH_ENGINE=s3vectors`` the handler's collections use the S3 Vectors engine (a vector
bucket on the same moto server, QueryVectors from ``tests.support.s3vectors_query``) and ``serve`` is
skipped: its folder store is hnsw only, and its wire is the same whatever the engine.
Every successful response body is checked against the operation's output shape from the service model.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from facesearch.devtools.registry import FACE_API, extract
from facesearch.devtools.server import LocalServer
from facesearch.protocol import model
from facesearch.settings import ENV_ALLOWED_IMAGE_BUCKETS, ENV_STORE, ENV_VECTOR_BUCKET, Settings
from tests.support import s3vectors_query
from tests.support.transport import HandlerTransport, rekognition_client

S3VECTORS = Settings.from_env().engine == "s3vectors"
s3vectors_query.install()

REGION = "us-east-1"
DEMO_PHOTOS = [f"package/demo/sample{i}.jpg" for i in range(1, 7)]
IMAGE_BUCKET = "facesearch-conformance-images"
FORBIDDEN_BUCKET = "facesearch-conformance-forbidden"


@pytest.fixture(scope="session")
def local_server(tmp_path_factory):
    with LocalServer(str(tmp_path_factory.mktemp("serve-store"))) as server:
        yield server


@pytest.fixture(params=["serve", "handler"])
def rekognition(request, local_server, s3_env, monkeypatch):
    """An unchanged boto3 Rekognition client; S3 (images, and the handler's store) is the moto server."""
    s3 = boto3.client("s3", endpoint_url=s3_env)
    for bucket in (IMAGE_BUCKET, FORBIDDEN_BUCKET):
        s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv(ENV_ALLOWED_IMAGE_BUCKETS, IMAGE_BUCKET)
    if request.param == "serve":
        if S3VECTORS:
            pytest.skip("serve uses a folder store, which is hnsw only")
        return rekognition_client(local_server.url)
    store_bucket = f"store-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=store_bucket)
    monkeypatch.setenv(ENV_STORE, f"s3://{store_bucket}/facesearch")
    if S3VECTORS:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3VECTORS", s3_env)
        boto3.client("s3vectors", endpoint_url=s3_env).create_vector_bucket(vectorBucketName=store_bucket)
        monkeypatch.setenv(ENV_VECTOR_BUCKET, store_bucket)
    return rekognition_client("https://rekognition.in-process.invalid", HandlerTransport("http"))


@pytest.fixture
def s3(s3_env):
    return boto3.client("s3", endpoint_url=s3_env)


@pytest.fixture
def collection(rekognition) -> str:
    """A fresh, empty collection."""
    collection_id = f"conf-{uuid.uuid4().hex[:12]}"
    rekognition.create_collection(CollectionId=collection_id)
    return collection_id


@pytest.fixture(scope="session")
def demo_photos(tmp_path_factory) -> list[bytes]:
    """The MIT demo photos of @vladmandic/face-api (group photos, 3-4 faces each), from the registry."""
    folder = tmp_path_factory.mktemp("face-api-demo")
    return [path.read_bytes() for path in extract(FACE_API, DEMO_PHOTOS, folder)]


@pytest.fixture(scope="session")
def blank_jpeg() -> bytes:
    """A valid JPEG with no face in it."""
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture(scope="session")
def demo_png(demo_photos) -> bytes:
    """Demo photo 1 re-encoded as PNG."""
    out = io.BytesIO()
    Image.open(io.BytesIO(demo_photos[0])).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="session")
def people(facedata) -> dict[str, list[bytes]]:
    """Two photos each of three people of the labelled set (skips when the set is absent)."""
    root = Path(facedata["root"])
    chosen = {}
    for name in ("Ben_Affleck", "Madonna", "Jerry_Seinfeld"):
        chosen[name] = [(root / path).read_bytes() for path in facedata["identities"][name][:2]]
    return chosen


def expect_error(call, operation: str, code: str, message: str | None = None, **params) -> str:
    """Call, expect ``code`` (declared for ``operation`` by the model) and, if given, exactly ``message``."""
    assert code in model.declared_errors(operation), f"{code} is not declared for {operation}"
    with pytest.raises(ClientError) as caught:
        call(**params)
    error = caught.value.response["Error"]
    assert error["Code"] == code, error
    if message is not None:
        assert error["Message"] == message
    return error["Message"]
