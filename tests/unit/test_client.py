"""facesearch.client: boto3's own Rekognition client, signing for execute-api, every call still answered.

No sockets: a botocore ``before-send`` hook hands each signed request to the real Lambda handler as the
API Gateway event API Gateway would deliver, and returns the handler's answer as the HTTP response.
"""

from __future__ import annotations

import re

import boto3
import pytest

import facesearch
from tests.support.transport import HandlerTransport

STAGE = "v1"
ENDPOINT = f"https://abc123defg.execute-api.eu-west-1.amazonaws.com/{STAGE}/"
CREDENTIALS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}
# SigV4: Credential=<key>/<date>/<region>/<service>/aws4_request
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


@pytest.fixture
def transport(tmp_path, monkeypatch) -> HandlerTransport:
    monkeypatch.setenv("FACESEARCH_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    return HandlerTransport("rest", stage=STAGE)


def _scope(request) -> tuple[str, str]:
    match = SCOPE.search(request.headers["Authorization"].decode())
    assert match, request.headers["Authorization"]
    return match.group(1), match.group(2)


def test_every_request_is_signed_for_execute_api_and_answered(transport):
    rekognition = facesearch.client(ENDPOINT, **CREDENTIALS)
    rekognition.meta.events.register("before-send.rekognition", transport)

    created = rekognition.create_collection(CollectionId="staff")
    listed = rekognition.list_collections()
    described = rekognition.describe_collection(CollectionId="staff")
    with pytest.raises(rekognition.exceptions.ResourceNotFoundException) as missing:
        rekognition.describe_collection(CollectionId="nobody")
    deleted = rekognition.delete_collection(CollectionId="staff")

    assert created["StatusCode"] == 200
    assert listed["CollectionIds"] == ["staff"]
    assert described["FaceCount"] == 0
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "nobody" in missing.value.response["Error"]["Message"]
    assert deleted["StatusCode"] == 200
    assert [_scope(request) for request in transport.sent] == [("eu-west-1", "execute-api")] * 5
    targets = [request.headers["X-Amz-Target"].decode() for request in transport.sent]
    assert targets[0] == "RekognitionService.CreateCollection"


def test_plain_boto3_client_signs_for_rekognition_so_api_gateway_would_refuse_it(transport):
    plain = boto3.client("rekognition", endpoint_url=ENDPOINT, region_name="eu-west-1", **CREDENTIALS)
    plain.meta.events.register("before-send.rekognition", transport)

    plain.list_collections()

    assert _scope(transport.sent[0]) == ("eu-west-1", "rekognition")


def test_explicit_region_wins_and_other_urls_use_boto3s_region(transport, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    explicit = facesearch.client(ENDPOINT, region_name="us-west-2", **CREDENTIALS)
    custom_domain = facesearch.client("https://faces.example.com/", **CREDENTIALS)
    for rekognition in (explicit, custom_domain):
        rekognition.meta.events.register("before-send.rekognition", transport)
        rekognition.list_collections()

    assert [_scope(request) for request in transport.sent] == [
        ("us-west-2", "execute-api"),
        ("ap-south-1", "execute-api"),
    ]


def test_region_of_reads_api_gateway_default_endpoints_only():
    from facesearch.client import region_of

    assert region_of("https://a1b2c3.execute-api.eu-central-1.amazonaws.com/v1/") == "eu-central-1"
    assert region_of("https://a1b2c3.execute-api.cn-north-1.amazonaws.com.cn/prod") == "cn-north-1"
    assert region_of("http://127.0.0.1:8787") is None
    assert region_of("https://evil.example.com/a1b2c3.execute-api.eu-west-1.amazonaws.com/") is None
