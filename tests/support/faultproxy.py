"""A fault-injecting HTTP proxy on 127.0.0.1 in front of an S3 endpoint (the moto server).

Requests are numbered from ``arm()``; ``Plan`` says which get which fault: HTTP 500, 503 SlowDown, a reset
connection, a timeout (no answer until the client gives up), a partial upload (half the body read, then a
reset), or a lost response (forwarded, so the object is written, then the connection reset).
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from facesearch.devtools import framing

FAULTS = ("http_500", "slow_down_503", "reset", "timeout", "partial_upload", "lost_response")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}
_ERROR_XML = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>injected</Message></Error>"
)


@dataclass
class Plan:
    """Fault ``fault`` at request number ``step``; ``persistent``: also at every later request to the same
    method and path (so the client's retries fail too)."""

    step: int = -1
    fault: str = ""
    persistent: bool = False


@dataclass
class FaultProxy:
    upstream: str
    timeout_seconds: float
    seen: list[tuple[str, str]] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    plan: Plan = field(default_factory=Plan)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def arm(self, plan: Plan | None = None) -> None:
        with self._lock:
            self.seen = []
            self.injected = []
            self.plan = plan or Plan()

    def decide(self, method: str, path: str) -> str | None:
        with self._lock:
            number = len(self.seen)
            self.seen.append((method, path))
            plan = self.plan
            if plan.step < 0 or number < plan.step:
                return None
            hit = number == plan.step or (plan.persistent and self.seen[plan.step] == (method, path))
            if hit:
                self.injected.append(f"{plan.fault}@{number}:{method} {path}")
                return plan.fault
            return None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _reset(self) -> None:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def _error(self, status: int, code: str) -> None:
                body = _ERROR_XML.format(code=code).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _proxy(self) -> None:
                path = urlsplit(self.path).path
                fault = proxy.decide(self.command, path)
                size = int(self.headers.get("Content-Length") or 0)
                if fault == "partial_upload":
                    self.rfile.read(size // 2)
                    self._reset()
                    return
                body = framing.read_body(self.headers, self.rfile, 1 << 30)
                if fault == "http_500":
                    self._error(500, "InternalError")
                    return
                if fault == "slow_down_503":
                    self._error(503, "SlowDown")
                    return
                if fault == "reset":
                    self._reset()
                    return
                if fault == "timeout":
                    time.sleep(proxy.timeout_seconds)
                    self._reset()
                    return
                upstream = urlsplit(proxy.upstream)
                connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                connection.close()
                if fault == "lost_response":
                    self._reset()
                    return
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _proxy  # noqa: N815

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # a client that gave up (read timeout) closed its end: expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
