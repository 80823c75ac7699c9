"""Conformance fixtures: an unchanged boto3 Rekognition client against `facesearch serve` and the handler.

``rekognition`` is parametrised over two transports:
- ``serve``: real HTTP to one ``LocalServer`` per session (REST v1 events, a folder store);
- ``handler``: the handler called in-process by a botocore ``before-send`` hook that turns the signed
  request into an API Gateway HTTP API (v2) event, with the collections on S3 (moto).
With ``FACESEARCH_ENGINE=s3vectors`` the handler's collections use the S3 Vectors engine (a vector
bucket on the same moto server, QueryVectors from ``tests.support.s3vectors_query``) and ``serve`` is
skipped: its folder store is hnsw only, and its wire is the same whatever the engine.
Every successful response body is checked against the operation's output shape from the service model.

With ``FACESEARCH_CONFORMANCE_AWS=1`` and AWS credentials, a third transport, ``aws``, runs the same tests
against real Amazon Rekognition (the default region of the credentials, or ``AWS_DEFAULT_REGION``), so codes,
messages and shapes are compared with the service itself. Collections it creates are deleted after each
test. Tests of FaceSearch-only behaviour (``@pytest.mark.facesearch_only``) and tests that need S3 objects
(the ``s3`` fixture is moto's) are skipped there with their reason.
"""

from __future__ import annotations

import contextlib
import io
import os
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
from tests.support.transport import HandlerTransport, check_output_shape, rekognition_client

S3VECTORS = Settings.from_env().engine == "s3vectors"
s3vectors_query.install()

REGION = "us-east-1"
DEMO_PHOTOS = [f"package/demo/sample{i}.jpg" for i in range(1, 7)]
IMAGE_BUCKET = "facesearch-conformance-images"
FORBIDDEN_BUCKET = "facesearch-conformance-forbidden"
ENV_CONFORMANCE_AWS = "FACESEARCH_CONFORMANCE_AWS"
AWS_MODE = os.environ.get(ENV_CONFORMANCE_AWS) == "1"
TRANSPORTS = ["serve", "handler", *(["aws"] if AWS_MODE else [])]


def on_aws(request) -> bool:
    callspec = getattr(request.node, "callspec", None)
    return callspec is not None and callspec.params.get("rekognition") == "aws"


@pytest.fixture(autouse=True)
def _skip_facesearch_only_on_aws(request):
    if on_aws(request) and request.node.get_closest_marker("facesearch_only"):
        pytest.skip("FaceSearch-only behaviour: real Rekognition has no such refusal")


@pytest.fixture(scope="session")
def local_server(tmp_path_factory):
    with LocalServer(str(tmp_path_factory.mktemp("serve-store"))) as server:
        yield server


def _aws_client():
    session = boto3.Session()
    if session.get_credentials() is None:
        pytest.skip(f"{ENV_CONFORMANCE_AWS}=1 but no AWS credentials are configured")
    client = session.client("rekognition", region_name=session.region_name or REGION)
    client.meta.events.register("before-parse.rekognition", check_output_shape)
    return client


@pytest.fixture(params=TRANSPORTS)
def rekognition(request, monkeypatch):
    """An unchanged boto3 Rekognition client; S3 (images, and the handler's store) is the moto server."""
    if request.param == "aws":
        return _aws_client()
    s3_env = request.getfixturevalue("s3_env")
    s3 = boto3.client("s3", endpoint_url=s3_env)
    for bucket in (IMAGE_BUCKET, FORBIDDEN_BUCKET):
        s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv(ENV_ALLOWED_IMAGE_BUCKETS, IMAGE_BUCKET)
    if request.param == "serve":
        if S3VECTORS:
            pytest.skip("serve uses a folder store, which is hnsw only")
        return rekognition_client(request.getfixturevalue("local_server").url)
    store_bucket = f"store-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=store_bucket)
    monkeypatch.setenv(ENV_STORE, f"s3://{store_bucket}/facesearch")
    if S3VECTORS:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3VECTORS", s3_env)
        boto3.client("s3vectors", endpoint_url=s3_env).create_vector_bucket(vectorBucketName=store_bucket)
        monkeypatch.setenv(ENV_VECTOR_BUCKET, store_bucket)
    return rekognition_client("https://rekognition.in-process.invalid", HandlerTransport("http"))


@pytest.fixture
def s3(request):
    """moto's S3, holding the images the tests name (the ``aws`` transport has no such buckets)."""
    if on_aws(request):
        pytest.skip("needs S3 image buckets that real Rekognition can read; moto's are local")
    return boto3.client("s3", endpoint_url=request.getfixturevalue("s3_env"))


@pytest.fixture
def collection(rekognition) -> str:
    """A fresh, empty collection (deleted after the test, which matters on a real account)."""
    collection_id = f"conf-{uuid.uuid4().hex[:12]}"
    rekognition.create_collection(CollectionId=collection_id)
    yield collection_id
    with contextlib.suppress(ClientError):  # the test may have deleted it itself
        rekognition.delete_collection(CollectionId=collection_id)


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
