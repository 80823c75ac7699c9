"""The Lambda handler's doors: API Gateway v1 and v2 (plain and base64 bodies) and direct invoke."""

from __future__ import annotations

import io
import json

import pytest

from facesearch.devtools.server import LocalLambdaContext
from facesearch.handler import lambda_handler
from facesearch.settings import ENV_STORE
from tests.support.events import http_event, rest_event

TARGET = "RekognitionService."
JSON_11 = "application/x-amz-json-1.1"


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_STORE, str(tmp_path / "store"))


def call(event) -> tuple[int, dict, dict]:
    result = lambda_handler(event, LocalLambdaContext())
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.setdefault(name.lower(), values[0])
    return result["statusCode"], headers, json.loads(result["body"])


@pytest.mark.parametrize("b64", [False, True])
def test_rest_api_door(b64):
    event = rest_event("CreateCollection", {"CollectionId": "doors"}, b64=b64)
    status, headers, body = call(event)
    assert status == 200
    assert headers["content-type"] == JSON_11
    assert headers["x-amzn-requestid"] == event["requestContext"]["requestId"]
    assert body["StatusCode"] == 200 and body["CollectionArn"].endswith(":collection/doors")
    status, _, body = call(rest_event("ListCollections", {}, b64=b64))
    assert status == 200 and body["CollectionIds"] == ["doors"]


@pytest.mark.parametrize("b64", [False, True])
def test_http_api_door(b64):
    status, _, body = call(http_event("CreateCollection", {"CollectionId": "v2"}, b64=b64))
    assert status == 200 and body["FaceModelVersion"]
    status, _, body = call(http_event("DescribeCollection", {"CollectionId": "v2"}, b64=b64))
    assert status == 200 and body["FaceCount"] == 0


def test_errors_are_json_1_1_with_headers():
    event = http_event("DescribeCollection", {"CollectionId": "absent"})
    status, headers, body = call(event)
    assert status == 400
    assert headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert headers["x-amzn-requestid"] == event["requestContext"]["requestId"]
    assert body == {
        "__type": "ResourceNotFoundException",
        "Message": "Collection:absent not found!",  # the service's wording (tests/conformance/README.md)
    }


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            rest_event("Frobnicate", {}),
            "Unknown operation 'Frobnicate': this service speaks AssociateFaces, CompareFaces, "
            "CreateCollection, CreateUser, DeleteCollection, DeleteFaces, DeleteUser, DescribeCollection, "
            "DetectFaces, DisassociateFaces, IndexFaces, ListCollections, ListFaces, ListUsers, SearchFaces, "
            "SearchFacesByImage, SearchUsers, SearchUsersByImage",
        ),
        (
            rest_event(None, {}),
            "Missing or malformed X-Amz-Target header None: expected 'RekognitionService.<Operation>'",
        ),
        (
            rest_event("ListCollections", {}, method="GET"),
            "No operation at GET /: this service speaks AWS JSON 1.1 on POST / with an X-Amz-Target header",
        ),
        (
            rest_event("ListCollections", {}, path="/elsewhere"),
            "No operation at POST /elsewhere: "
            "this service speaks AWS JSON 1.1 on POST / with an X-Amz-Target header",
        ),
    ],
)
def test_unknown_operations_and_routes_are_json_errors_not_404_pages(event, message):
    status, headers, body = call(event)
    assert status == 400
    assert headers["x-amzn-errortype"] == "UnknownOperationException"
    assert body == {"__type": "UnknownOperationException", "Message": message}


@pytest.mark.parametrize("text", ["{not json", "[1, 2", '"unterminated'])
def test_malformed_json_is_invalid_parameter(text):
    status, _, body = call(rest_event("ListCollections", text))
    assert status == 400
    assert body["__type"] == "InvalidParameterException"
    assert body["Message"].startswith("Request body is not a valid JSON document: ")


def test_body_must_be_an_object():
    status, _, body = call(rest_event("ListCollections", [1]))
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    assert body["Message"] == (
        "1 validation error detected: Value '[1]' at 'request' failed to satisfy constraint: "
        "Member must be a structure (JSON object)"
    )


def test_empty_body_is_an_empty_request():
    status, _, body = call(rest_event("ListCollections", ""))
    assert status == 200 and body == {"CollectionIds": [], "FaceModelVersions": []}


def test_unexpected_failures_are_internal_server_errors(monkeypatch):
    from facesearch.operations import collections

    def broken(*_):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(collections, "get_store", broken)
    status, headers, body = call(rest_event("ListCollections", {}))
    assert status == 500
    assert headers["x-amzn-errortype"] == "InternalServerError"
    assert body == {"__type": "InternalServerError", "Message": "Internal server error"}
    direct = lambda_handler({"Operation": "ListCollections", "Parameters": {}}, LocalLambdaContext())
    assert direct == {
        "StatusCode": 500,
        "Error": {"Code": "InternalServerError", "Message": "Internal server error"},
    }


def test_direct_invoke_door():
    context = LocalLambdaContext()
    created = lambda_handler(
        {"Operation": "CreateCollection", "Parameters": {"CollectionId": "direct"}}, context
    )
    assert created["StatusCode"] == 200
    assert created["Body"]["CollectionArn"].endswith(":collection/direct")
    listed = lambda_handler({"Operation": "ListFaces", "Parameters": {"CollectionId": "direct"}}, context)
    assert listed["StatusCode"] == 200
    assert listed["Body"]["Faces"] == []


@pytest.mark.parametrize(
    ("event", "code", "message"),
    [
        (
            {"Operation": "CreateCollection", "Parameters": {"CollectionId": "direct"}},
            "ResourceAlreadyExistsException",
            "The collection id: direct already exists",
        ),
        (
            {"Operation": "DescribeCollection", "Parameters": {}},
            "InvalidParameterException",
            "1 validation error detected: Missing required parameter: 'CollectionId'",
        ),
        (
            {"Operation": "DescribeCollection", "Parameters": {"CollectionId": "direct"}, "Extra": 1},
            "InvalidParameterException",
            "Unknown key(s) in a direct invocation: Extra; expected Operation, Parameters",
        ),
        (
            {"Operation": 5},
            "UnknownOperationException",
            "Operation must be an operation name, not 5",
        ),
    ],
)
def test_direct_invoke_errors(event, code, message):
    lambda_handler(
        {"Operation": "CreateCollection", "Parameters": {"CollectionId": "direct"}}, LocalLambdaContext()
    )
    assert lambda_handler(event, LocalLambdaContext()) == {
        "StatusCode": 400,
        "Error": {"Code": code, "Message": message},
    }


@pytest.mark.parametrize(
    ("event", "keys"),
    [({}, ""), ({"Records": []}, "Records"), (["a"], "list")],
)
def test_events_of_no_door_are_refused(event, keys):
    assert lambda_handler(event, LocalLambdaContext()) == {
        "StatusCode": 400,
        "Error": {
            "Code": "InvalidParameterException",
            "Message": f"Unrecognised event ({keys}): expected an API Gateway REST/HTTP API proxy event "
            'or a direct invocation {"Operation": ..., "Parameters": {...}}',
        },
    }


def test_logs_carry_the_request_id_as_correlation_id(monkeypatch):
    from facesearch.operations import collections
    from facesearch.telemetry import logger

    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)

    def broken(*_):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(collections, "get_store", broken)
    event = rest_event("ListCollections", {})
    call(event)
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    failure = next(entry for entry in logged if entry["message"] == "unexpected failure")
    assert failure["correlation_id"] == event["requestContext"]["requestId"]
    assert failure["exception_name"] == "RuntimeError"
