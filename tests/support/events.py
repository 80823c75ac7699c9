"""API Gateway events for tests, built from the ready events in events/: the suite's one event builder."""

from __future__ import annotations

import base64
import copy
import functools
import json
import uuid
from typing import Any

from facesearch.protocol import model
from facesearch.settings import REPO_ROOT

EVENTS_DIR = REPO_ROOT / "events"
# The ready events each door's builder starts from (their headers, request context and stage).
REST_TEMPLATE = "apigw-rest-search-faces-by-image"
HTTP_TEMPLATE = "apigw-http-search-faces-by-image"
TARGET_HEADER = "X-Amz-Target"
Body = str | bytes | dict | list | None


@functools.cache
def _read(name: str) -> str:
    return (EVENTS_DIR / f"{name}.json").read_text()


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``events/<name>.json``."""
    return json.loads(_read(name))


def _encode(body: Body, b64: bool) -> str:
    if body is None:
        raw = b""
    elif isinstance(body, bytes):
        raw = body
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = json.dumps(body).encode()
    return base64.b64encode(raw).decode() if b64 else raw.decode()


def target(operation: str) -> str:
    return f"{model.target_prefix()}.{operation}"


def rest_event(
    operation: str | None,
    body: Body,
    *,
    method: str = "POST",
    path: str = "/",
    b64: bool = False,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (payload 1.0) event: ``operation`` None sends no X-Amz-Target header."""
    event = load_event(REST_TEMPLATE)
    sent = {k: v for k, v in event["headers"].items() if k not in (TARGET_HEADER, "Authorization")}
    if operation is not None:
        sent[TARGET_HEADER] = target(operation)
    sent.update(headers or {})
    context = event["requestContext"]
    context.update(httpMethod=method, resourcePath=path, path=f"/{context['stage']}{path}")
    context["requestId"] = str(uuid.uuid4())
    event.update(
        resource=path,
        path=path,
        httpMethod=method,
        headers=sent,
        multiValueHeaders={name: [value] for name, value in sent.items()},
        body=_encode(body, b64),
        isBase64Encoded=b64,
    )
    return event


def http_event(
    operation: str | None,
    body: Body,
    *,
    method: str = "POST",
    path: str = "/",
    b64: bool = True,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event: lower-case headers, base64 body by default."""
    event = load_event(HTTP_TEMPLATE)
    sent = {k: v for k, v in event["headers"].items() if k not in (TARGET_HEADER.lower(), "authorization")}
    if operation is not None:
        sent[TARGET_HEADER.lower()] = target(operation)
    sent.update({name.lower(): value for name, value in (headers or {}).items()})
    context = copy.deepcopy(event["requestContext"])
    context["http"].update(method=method, path=path)
    context.update(requestId=str(uuid.uuid4()), routeKey=f"{method} {path}")
    event.update(
        routeKey=f"{method} {path}",
        rawPath=path,
        headers=sent,
        requestContext=context,
        body=_encode(body, b64),
        isBase64Encoded=b64,
    )
    return event
