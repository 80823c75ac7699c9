"""Raw HTTP/1.1 over a real socket, for requests no HTTP client library would send."""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass, field

TARGET_PREFIX = "RekognitionService."


@dataclass
class Answer:
    """One response: status, headers (lower-case names), body bytes, seconds it took, whether the server
    closed the connection after it."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    closed: bool = False
    extra: list[Answer] = field(default_factory=list)

    @property
    def document(self) -> dict:
        return json.loads(self.body)

    @property
    def error_type(self) -> str:
        return self.document["__type"]


def address(url: str) -> tuple[str, int]:
    host, port = re.search(r"//([^:/]+):(\d+)", url).groups()
    return host, int(port)


def request_bytes(
    operation: str | None,
    body: bytes,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    content_length: str | None = "auto",
) -> bytes:
    """A request head and body; ``content_length`` None sends none, a string sends it verbatim."""
    lines = [f"{method} / HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/x-amz-json-1.1"]
    if operation is not None:
        lines.append(f"X-Amz-Target: {TARGET_PREFIX}{operation}")
    if content_length == "auto":
        lines.append(f"Content-Length: {len(body)}")
    elif content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes, size: int = 7) -> bytes:
    """``body`` in ``Transfer-Encoding: chunked`` framing, ``size`` bytes a chunk."""
    out = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)
    )
    return out + b"0\r\n\r\n"


def _read_answer(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes] | None:
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return None
        buffer.extend(data)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    size = int(headers.get("content-length", "0"))
    body = bytearray(rest)
    while len(body) < size:
        data = sock.recv(65536)
        if not data:
            break
        body.extend(data)
    buffer[:] = body[size:]
    return status, headers, bytes(body[:size])


def send(
    url: str,
    raw: bytes,
    *,
    timeout: float = 10.0,
    half_close: bool = False,
    answers: int = 1,
    close_wait: float = 2.0,
) -> Answer:
    """Send ``raw``, read ``answers`` responses, then see whether the server closed the connection (waiting
    up to ``close_wait`` seconds for it)."""
    started = time.monotonic()
    with socket.create_connection(address(url), timeout=timeout) as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        buffer = bytearray()
        got = []
        for _ in range(answers):
            answer = _read_answer(sock, buffer)
            if answer is None:
                break
            got.append(answer)
        seconds = time.monotonic() - started
        if not got:
            raise ConnectionError(f"no answer within {timeout}s (connection closed or silent)")
        try:
            sock.settimeout(min(timeout, close_wait))
            closed = not buffer and sock.recv(1) == b""
        except TimeoutError:
            closed = False
        except ConnectionResetError:
            closed = True
    first, *rest = got
    return Answer(*first, seconds=seconds, closed=closed, extra=[Answer(*a, seconds=seconds) for a in rest])
