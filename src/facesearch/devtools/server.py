"""``facesearch serve``: the Rekognition protocol on localhost, each request run through the Lambda handler.

Every HTTP request becomes an API Gateway REST (v1) proxy event for ``facesearch.handler.lambda_handler``,
exactly as API Gateway would deliver it, so an unchanged boto3 client talks to the very same code path
as in Lambda. ``LocalServer`` runs the same thing in a background thread for tests, demos and benchmarks.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

from facesearch import lazy
from facesearch.devtools import console, framing
from facesearch.protocol import model, wire
from facesearch.settings import ENV_STORE, LOCAL_STORE_DIR

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
# The largest valid request: CompareFaces with two 5 MiB images, base64-encoded (4/3), plus JSON framing.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
DRAIN_LIMIT_BYTES = 4 * MAX_REQUEST_BYTES
LOCAL_FUNCTION_NAME = "facesearch-local"
# Lambda's maximum timeout: the local server never cuts a request short.
REMAINING_MILLIS = 900_000
METRICS_DISABLED_ENV = "POWERTOOLS_METRICS_DISABLED"
# A client that stops sending (a body shorter than its Content-Length, an idle keep-alive) loses its
# connection after this many idle seconds instead of holding a server thread forever.
IDLE_TIMEOUT_SECONDS = 60.0


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that the handler and Powertools read."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = LOCAL_FUNCTION_NAME
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 0
    invoked_function_arn: str = ""
    log_group_name: str = f"/aws/lambda/{LOCAL_FUNCTION_NAME}"
    log_stream_name: str = "local"
    # What the invocation has left when it starts: the function's Timeout, for ``facesearch invoke``.
    remaining_millis: int = REMAINING_MILLIS

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


def to_gateway_event(method: str, path: str, headers: dict[str, str], body: bytes, source_ip: str) -> dict:
    """An API Gateway REST proxy event (payload 1.0) for one HTTP request."""
    request_id = str(uuid.uuid4())
    try:
        text, is_base64 = body.decode(), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    route, _, query = path.partition("?")
    params = dict(pair.partition("=")[::2] for pair in query.split("&") if pair)
    return {
        "resource": route,
        "path": route,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": params or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in params.items()} or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route,
            "httpMethod": method,
            "path": route,
            "stage": "$default",
            "requestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": source_ip},
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "facesearch"
    # Headers and body go out in separate writes; with Nagle's algorithm the body waits for the client's
    # delayed ACK (~40 ms per response on Linux).
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_SECONDS

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, refusal: framing.FramingError) -> None:
        """Answer a request that never reaches the handler with its JSON 1.1 error."""
        # Read what the client is still sending so it sees the answer rather than a reset connection;
        # past a bound, stop reading.
        remaining = refusal.drain
        with contextlib.suppress(OSError):
            while 0 < remaining <= DRAIN_LIMIT_BYTES and (chunk := self.rfile.read(min(remaining, 1 << 20))):
                remaining -= len(chunk)
        if refusal.close:
            self.close_connection = True
        error = refusal.error
        headers = {"Content-Type": model.JSON_CONTENT_TYPE, **wire.error_headers(error, str(uuid.uuid4()))}
        self._answer(error.status, headers, json.dumps(wire.error_body(error)).encode())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, oversized or too many headers, unknown method) in
        the JSON 1.1 error shape instead of its HTML page; the connection closes as http.server intends."""
        self.close_connection = True
        # A request line http.server could not read leaves it at HTTP/0.9, which gets no status line.
        if self.request_version == "HTTP/0.9":
            self.request_version = self.protocol_version
        self._refuse(framing.FramingError(framing.http_error(code, message or explain or "")))

    def _serve(self) -> None:
        from facesearch.handler import lambda_handler
        from facesearch.telemetry import logger, metrics

        started = time.monotonic()
        if console.serve_page(self, started):  # the web console's own GET routes
            return
        try:
            body = framing.read_body(self.headers, self.rfile, MAX_REQUEST_BYTES)
        except framing.FramingError as refusal:
            self._refuse(refusal)
            return
        event = to_gateway_event(
            self.command, self.path, dict(self.headers.items()), body, self.client_address[0]
        )
        # Requests run concurrently, each in its connection's thread, as in one warm container serving
        # several at once: the store reads without a store-wide lock and swaps manifests by conditional
        # PUT, the lazy factories create each object once under their own lock, each thread has its own
        # API Gateway resolver (doors), and metrics are changed and flushed under their own short lock
        # (telemetry). Powertools' log keys are per process: this thread's request ids, set as thread-safe
        # keys, take precedence in the lines this thread logs.
        context = LocalLambdaContext()
        logger.thread_safe_append_keys(
            correlation_id=event["requestContext"]["requestId"], function_request_id=context.aws_request_id
        )
        try:
            result = lambda_handler(event, context)
        finally:
            logger.thread_safe_clear_keys()
        if os.environ.get(METRICS_DISABLED_ENV) == "true":
            # Powertools neither prints nor clears disabled metrics: they would grow without bound
            # (and spill onto stdout every 100 values).
            metrics.clear_metrics()
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        headers = dict(result.get("headers") or {})
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.setdefault(name, ", ".join(values))
        # Before answering: a client that lists faces next finds their thumbnails.
        console.after_request(self, body, int(result["statusCode"]), data, started)
        self._answer(int(result["statusCode"]), headers, data)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        # console.access prints one line per request (``facesearch serve``); http.server's duplicate it.
        pass


def _handler_class(idle_timeout: float | None) -> type[_Handler]:
    """The request handler, with its own idle timeout when one is given (tests keep it small)."""
    if idle_timeout is None:
        return _Handler
    return type("_Handler", (_Handler,), {"timeout": idle_timeout})


class LocalServer:
    """``facesearch serve`` in a background thread: ``with LocalServer(store) as server: server.url``.

    ``store`` is a folder or ``s3://bucket/prefix``. The process's ``FACESEARCH_STORE`` points at it while
    the server runs (the handler reads its settings from the environment, as in Lambda) and is restored
    on exit.
    """

    def __init__(
        self,
        store: str,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        idle_timeout: float | None = None,
        thumbnails: bool = False,
        access_log: TextIO | None = None,
    ) -> None:
        self.store = str(store)
        self.idle_timeout = idle_timeout
        self.console = console.ConsoleOptions(self.store, thumbnails, access_log)
        self.host = host
        self.port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._previous_store: str | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("LocalServer is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalServer:
        self._previous_store = os.environ.get(ENV_STORE)
        os.environ[ENV_STORE] = self.store
        lazy.reset_all()
        self._httpd = ThreadingHTTPServer((self.host, self.port), _handler_class(self.idle_timeout))
        self._httpd.daemon_threads = True
        self._httpd.console = self.console  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="facesearch-serve", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._previous_store is None:
            os.environ.pop(ENV_STORE, None)
        else:
            os.environ[ENV_STORE] = self._previous_store
        lazy.reset_all()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=str(LOCAL_STORE_DIR),
        help=f"collections folder, or s3://bucket/prefix (default: the per-user folder {LOCAL_STORE_DIR})",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"interface to listen on (default {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT_SECONDS,
        help=f"seconds a connection may stay silent before it is closed (default {IDLE_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--emit-metrics", action="store_true", help="print Powertools EMF metrics to stdout, as Lambda would"
    )
    parser.add_argument(
        "--thumbnails",
        action="store_true",
        help="keep a small JPEG of each face indexed through this server, under the collection's prefix "
        "in the store (collections/<CollectionId>/thumbnails/), for the console; deleted with the faces",
    )
    parser.add_argument("--quiet", action="store_true", help="no access line per request")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; prints the endpoint URL for ``boto3.client(..., endpoint_url=URL)``."""
    store = args.store if args.store.startswith("s3://") else str(Path(args.store).expanduser().resolve())
    if not args.emit_metrics:
        os.environ[METRICS_DISABLED_ENV] = "true"
    log = None if args.quiet else sys.stdout
    server = LocalServer(
        store,
        host=args.host,
        port=args.port,
        idle_timeout=args.idle_timeout,
        thumbnails=args.thumbnails,
        access_log=log,
    )
    with server:
        thumbnails = "on" if args.thumbnails else "off"
        print(
            f"facesearch serving the Rekognition protocol at {server.url} (store: {store}); Ctrl-C stops\n"
            f"web console: {server.url}/ (face thumbnails {thumbnails})",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0
