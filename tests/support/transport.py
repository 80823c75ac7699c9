"""One in-process transport for boto3: a botocore ``before-send`` hook that answers with the Lambda handler.

The signed request becomes an API Gateway event (REST v1 with the stage taken off the path, as API
Gateway does, or HTTP API v2) and the handler's answer becomes botocore's HTTP response: no sockets.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config

from facesearch.protocol import model
from facesearch.protocol.validate import violations
from tests.support.events import http_event, rest_event

REGION = "us-east-1"
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class _Raw:
    """The raw stream botocore reads an HTTP response body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any):
        yield self._body


class HandlerTransport:
    """Records each outgoing request and answers it with ``lambda_handler`` behind an API Gateway door."""

    def __init__(self, door: str = "http", stage: str = "") -> None:
        if door not in ("http", "rest"):
            raise ValueError(f"door is 'http' or 'rest', not {door!r}")
        self.door = door
        self.stage = stage
        self.sent: list[AWSPreparedRequest] = []

    def event(self, request: AWSPreparedRequest) -> dict[str, Any]:
        path = "/" + request.url.split("/", 3)[3]
        if self.stage:
            path = "/" + path[1:].removeprefix(self.stage + "/")
        headers = {
            name: value.decode() if isinstance(value, bytes) else value
            for name, value in request.headers.items()
        }
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else bytes(body)
        build = http_event if self.door == "http" else rest_event
        return build(None, body, method=request.method, path=path, b64=True, headers=headers)

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        from facesearch.devtools.server import LocalLambdaContext
        from facesearch.handler import lambda_handler

        self.sent.append(request)
        result = lambda_handler(self.event(request), LocalLambdaContext())
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        return AWSResponse(request.url, result["statusCode"], result.get("headers") or {}, _Raw(data))


def check_output_shape(response_dict: dict[str, Any], operation_model: Any, **_: Any) -> None:
    """Responses must be exactly the output shape: botocore's parser would silently drop extra members."""
    if response_dict["status_code"] == 200:
        document = json.loads(response_dict["body"] or b"{}")
        problems = violations(model.output_shape(operation_model.name), document)
        assert not problems, f"{operation_model.name} response breaks its output shape: {problems}"


def rekognition_client(
    endpoint_url: str,
    transport: HandlerTransport | None = None,
    config: Config | None = None,
    **credentials: str,
):
    """An unchanged boto3 Rekognition client, answered in-process when ``transport`` is given."""
    client = boto3.client(
        "rekognition",
        endpoint_url=endpoint_url,
        region_name=REGION,
        config=config,
        **(credentials or DUMMY_CREDENTIALS),
    )
    if transport is not None:
        client.meta.events.register("before-send.rekognition", transport)
    client.meta.events.register("before-parse.rekognition", check_output_shape)
    return client
