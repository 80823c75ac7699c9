"""The handler's doors: API Gateway (REST v1 and HTTP v2) speaking AWS JSON 1.1, and direct invoke.

Both doors call the one dispatcher and render errors with the one renderer (``wire.error_body``): the
resolvers through a single Powertools exception handler, the direct door through ``as_wire_error``.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from botocore.exceptions import ClientError

from facesearch.errors import (
    ImageTooLargeException,
    InternalServerError,
    InvalidParameterException,
    RekognitionError,
    ThrottlingException,
    UnknownOperationException,
)
from facesearch.protocol import model, wire
from facesearch.protocol.context import RequestContext
from facesearch.protocol.dispatch import OPERATIONS, dispatch
from facesearch.telemetry import count, logger, metrics

TARGET_HEADER = "X-Amz-Target"
REQUEST_ID_HEADER = "x-amzn-RequestId"
DIRECT_KEYS = ("Operation", "Parameters")
# S3's throttling answers (503 SlowDown) as botocore raises them once its own retries are spent.
STORAGE_THROTTLING_CODES = frozenset(
    {"SlowDown", "503", "Throttling", "ThrottlingException", "RequestLimitExceeded"}
)


def as_wire_error(exc: Exception) -> RekognitionError:
    """The wire error for ``exc``: itself if it is one, ThrottlingException when storage kept throttling
    after botocore's retries (the client should back off too), else a logged InternalServerError."""
    if isinstance(exc, RekognitionError):
        if exc.status >= 500:
            logger.exception("server-side failure", extra={"error_code": exc.code})
        return exc
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in STORAGE_THROTTLING_CODES:
        logger.warning("storage throttled", extra={"error_code": exc.response["Error"]["Code"]})
        return ThrottlingException("The collection store is throttling requests; retry with backoff.")
    logger.exception("unexpected failure")
    return InternalServerError("Internal server error")


def _count_error(error: RekognitionError) -> None:
    count("Errors", 1)
    metrics.add_metadata(key="error_code", value=error.code)


def _json_body(body: str | None, is_base64: bool) -> Any:
    """The request document; an empty body is an empty request, as botocore sends ``{}``.

    A document nested deeper than the interpreter's recursion limit is refused here, as invalid JSON for
    this service (no request shape nests that deep), rather than escaping as a 500 that botocore retries.
    """
    try:
        text = base64.b64decode(body or "", validate=True).decode() if is_base64 else body or ""
        return json.loads(text) if text.strip() else {}
    except RecursionError:
        raise InvalidParameterException(
            "Request body is not a valid JSON document: nested too deeply for any request shape"
        ) from None
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidParameterException(f"Request body is not a valid JSON document: {exc}") from exc


def body_too_large(target: str | None, what: str, limit: int) -> RekognitionError:
    """The error for a request body over ``limit`` bytes, as the operation in ``target`` declares it.

    Only operations taking images declare ImageTooLargeException; the others answer InvalidParameterException
    (every operation declares it), and an unknown target the unknown-operation error.
    """
    try:
        operation = _operation_from_target(target)
        declared = model.declared_errors(operation) if operation in OPERATIONS else None
    except UnknownOperationException as exc:
        return exc
    if declared is None:
        return UnknownOperationException(
            f"Unknown operation {operation!r}: this service speaks {', '.join(sorted(OPERATIONS))}"
        )
    message = f"{what} exceeds the {limit}-byte limit"
    if ImageTooLargeException.__name__ in declared:
        return ImageTooLargeException(f"{message}; pass images as Image.S3Object")
    return InvalidParameterException(message)


def _operation_from_target(target: str | None) -> str:
    prefix = model.target_prefix() + "."
    if not target or not target.startswith(prefix):
        raise UnknownOperationException(
            f"Missing or malformed {TARGET_HEADER} header {target!r}: expected '{prefix}<Operation>'"
        )
    return target[len(prefix) :]


class _PerThread:
    """A resolver attribute held per thread: a data descriptor, so it shadows Powertools' class attribute
    for every read and write made through the resolver."""

    _values = threading.local()

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, resolver: Any, owner: type | None = None) -> Any:
        return getattr(_PerThread._values, self._name)

    def __set__(self, resolver: Any, value: Any) -> None:
        setattr(_PerThread._values, self._name, value)


class _ThreadsOwnEvent:
    """Resolver mixin: the event being resolved and its Lambda context, one per thread.

    Powertools stores both on its ``BaseRouter`` class (one per process) and reads them back through the
    resolver (route matching, the response, our routes' ``app.current_event``): two threads resolving at
    once would read each other's. ``resolve`` fills them for the calling thread only.
    """

    current_event = _PerThread()
    lambda_context = _PerThread()

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        self.current_event = self._to_proxy_event(event)  # type: ignore[attr-defined]
        self.lambda_context = context
        return super().resolve(event, context)  # type: ignore[misc]


class _RestResolver(_ThreadsOwnEvent, APIGatewayRestResolver):
    """API Gateway REST API (payload v1), safe to run in several threads (one resolver per thread)."""


class _HttpResolver(_ThreadsOwnEvent, APIGatewayHttpResolver):
    """API Gateway HTTP API (payload v2), safe to run in several threads (one resolver per thread)."""


def _build_resolver(resolver_class: type[ApiGatewayResolver]) -> ApiGatewayResolver:
    app = resolver_class()

    def request_id() -> str:
        context = getattr(app.current_event, "request_context", None)
        return getattr(context, "request_id", None) or ""

    def error_response(error: RekognitionError) -> Response:
        _count_error(error)
        return Response(
            status_code=error.status,
            content_type=model.JSON_CONTENT_TYPE,
            body=json.dumps(wire.error_body(error)),
            headers=wire.error_headers(error, request_id()),
        )

    @app.post("/")
    def json_protocol() -> Response:
        event = app.current_event
        operation = _operation_from_target(event.headers.get(TARGET_HEADER))
        params = _json_body(event.body, bool(event.is_base64_encoded))
        context = RequestContext.from_lambda(request_id(), app.lambda_context)
        result = dispatch(operation, params, context)
        return Response(
            status_code=200,
            content_type=model.JSON_CONTENT_TYPE,
            body=json.dumps(result),
            headers={REQUEST_ID_HEADER: context.request_id},
        )

    @app.exception_handler(RekognitionError)
    def rekognition_error(exc: RekognitionError) -> Response:
        return error_response(as_wire_error(exc))

    @app.exception_handler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        return error_response(as_wire_error(exc))

    @app.not_found
    def no_route(_: NotFoundError) -> Response:
        event = app.current_event
        return error_response(
            UnknownOperationException(
                f"No operation at {event.http_method} {event.path}: "
                f"this service speaks AWS JSON 1.1 on POST / with an {TARGET_HEADER} header"
            )
        )

    return app


# A Powertools resolver also keeps per-request state on itself (its ``context`` dict: the matched route):
# each thread (one Lambda container has one; a threaded ``facesearch serve`` one per connection) builds
# its own, freed when the thread ends.
_resolvers = threading.local()


def rest_resolver() -> ApiGatewayResolver:
    """API Gateway REST API (payload v1) door: this thread's resolver."""
    return _thread_resolver("rest", _RestResolver)


def http_resolver() -> ApiGatewayResolver:
    """API Gateway HTTP API (payload v2) door: this thread's resolver."""
    return _thread_resolver("http", _HttpResolver)


def _thread_resolver(name: str, resolver_class: type[ApiGatewayResolver]) -> ApiGatewayResolver:
    resolver = getattr(_resolvers, name, None)
    if resolver is None:
        resolver = _build_resolver(resolver_class)
        setattr(_resolvers, name, resolver)
    return resolver


def is_direct(event: Any) -> bool:
    return isinstance(event, dict) and "Operation" in event


def is_http_api(event: Any) -> bool:
    return isinstance(event, dict) and event.get("version") == "2.0" and "requestContext" in event


def is_rest_api(event: Any) -> bool:
    return isinstance(event, dict) and "httpMethod" in event and "requestContext" in event


def unrecognised_event(event: Any) -> dict[str, Any]:
    """Neither door's shape (an S3 notification, a test event...): answered like a direct invocation."""
    keys = ", ".join(sorted(map(str, event))) if isinstance(event, dict) else type(event).__name__
    error = InvalidParameterException(
        f"Unrecognised event ({keys}): expected an API Gateway REST/HTTP API proxy event "
        'or a direct invocation {"Operation": ..., "Parameters": {...}}'
    )
    _count_error(error)
    return wire.direct_error(error)


def handle(event: Any, lambda_context: Any) -> dict[str, Any]:
    """Route ``event`` to its door: direct invoke, API Gateway HTTP (v2) or REST (v1), else refuse it."""
    logger.set_correlation_id(request_id_of(event, lambda_context))
    if is_direct(event):
        return direct_invoke(event, lambda_context)
    if is_http_api(event):
        return http_resolver().resolve(event, lambda_context)
    if is_rest_api(event):
        return rest_resolver().resolve(event, lambda_context)
    return unrecognised_event(event)


def request_id_of(event: Any, lambda_context: Any) -> str:
    """API Gateway's request id for its doors, the invocation's otherwise: the log correlation id."""
    from_gateway = (event.get("requestContext") or {}).get("requestId") if isinstance(event, dict) else None
    return from_gateway or getattr(lambda_context, "aws_request_id", "") or ""


def direct_invoke(event: dict, lambda_context: Any) -> dict[str, Any]:
    """``{"Operation", "Parameters"}`` -> ``{"StatusCode": 200, "Body"}`` or ``{"StatusCode", "Error"}``."""
    context = RequestContext.from_lambda(request_id_of(event, lambda_context), lambda_context)
    try:
        unknown = sorted(set(event) - set(DIRECT_KEYS))
        if unknown:
            raise InvalidParameterException(
                f"Unknown key(s) in a direct invocation: {', '.join(unknown)}; "
                f"expected {', '.join(DIRECT_KEYS)}"
            )
        operation = event["Operation"]
        if not isinstance(operation, str):
            raise UnknownOperationException(f"Operation must be an operation name, not {operation!r}")
        body = dispatch(operation, event.get("Parameters", {}), context)
    except Exception as exc:
        error = as_wire_error(exc)
        _count_error(error)
        return wire.direct_error(error)
    return {"StatusCode": 200, "Body": body}
