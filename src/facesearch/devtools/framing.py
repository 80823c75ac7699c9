"""HTTP/1.1 request framing for ``facesearch serve``: the body by Content-Length or chunked, or a wire error.

Every way a client can frame a request badly (a Content-Length that is not one decimal number, two of them,
Transfer-Encoding beside Content-Length, a coding other than chunked, a malformed chunk, a body that stops
before its announced end) is answered with an AWS JSON 1.1 error instead of a hang or an HTML page. When the
framing is broken the server cannot know where the next request starts, so those answers close the
connection (``FramingError.close``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from typing import Protocol

from facesearch.errors import InvalidParameterException, RekognitionError, UnknownOperationException
from facesearch.protocol import doors

_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")


class Reader(Protocol):
    """The buffered socket file http.server reads requests from."""

    def read1(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int | None = -1, /) -> bytes: ...


# A chunk-size line is a hex number and optional extensions; RFC 9112 sets no limit, this one is generous.
MAX_CHUNK_LINE_BYTES = 4096
# Trailer fields after the last chunk: read and ignored, but bounded like the header block (http.server's
# own limit on header count).
MAX_TRAILER_LINES = 100
_READ_BYTES = 1 << 20


@dataclass
class FramingError(Exception):
    """A request the server answers with ``error`` without running it; ``close`` when framing is lost."""

    error: RekognitionError
    close: bool = True
    # Bytes the client announced and is still sending: read (bounded) so it sees the answer, not a reset.
    drain: int = 0


def _bad(message: str) -> FramingError:
    return FramingError(InvalidParameterException(message))


def too_large(headers: Message, size: int | str, limit: int, drain: int = 0) -> FramingError:
    """A body over ``limit``: ImageTooLargeException if the operation declares it, else InvalidParameter."""
    error = doors.body_too_large(headers.get(doors.TARGET_HEADER), f"Request of {size} bytes", limit)
    return FramingError(error, drain=drain)


def http_error(status: int, message: str) -> RekognitionError:
    """http.server's refusal ``status`` as a wire error: an unsupported method names no operation, the
    rest (bad request line, oversized or too many headers, bad HTTP version) are bad parameters."""
    if status == HTTPStatus.NOT_IMPLEMENTED:
        return UnknownOperationException(
            f"{message}: this service speaks AWS JSON 1.1 on POST / with an {doors.TARGET_HEADER} header"
        )
    return InvalidParameterException(f"Malformed HTTP request ({status}): {message}")


def content_length(headers: Message) -> int | None:
    """The one Content-Length as an int, None when absent; refuses duplicates and anything but digits."""
    values = headers.get_all("Content-Length") or []
    if not values:
        return None
    if len(values) > 1:
        raise _bad(
            f"Request has {len(values)} Content-Length headers ({', '.join(values)}); send exactly one"
        )
    value = values[0].strip()
    if not _DECIMAL.fullmatch(value):
        raise _bad(f"Content-Length {value[:64]!r} is not a non-negative decimal number of bytes")
    return int(value)


def _read_exact(rfile: Reader, size: int, what: str) -> bytes:
    """``size`` bytes, or a framing error when the client ends (EOF) or idles (socket timeout) before."""
    parts: list[bytes] = []
    got = 0
    try:
        while got < size:
            # read1: what has arrived, so the count in the message is right when the client goes idle.
            chunk = rfile.read1(min(size - got, _READ_BYTES))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
    except TimeoutError:
        raise _bad(f"{what} stopped after {got} of {size} bytes: the client went idle") from None
    if got < size:
        raise _bad(f"{what} ended after {got} of {size} bytes (connection closed by the client)")
    return b"".join(parts)


def _read_line(rfile: Reader, what: str) -> bytes:
    try:
        line = rfile.readline(MAX_CHUNK_LINE_BYTES + 1)
    except TimeoutError:
        raise _bad(f"Chunked body stopped in the middle of {what}: the client went idle") from None
    if not line.endswith(b"\n"):
        if len(line) > MAX_CHUNK_LINE_BYTES:
            raise _bad(f"Chunked body has a {what} longer than {MAX_CHUNK_LINE_BYTES} bytes")
        raise _bad(f"Chunked body ended in the middle of {what}")
    return line.rstrip(b"\r\n")


def read_chunked(headers: Message, rfile: Reader, limit: int) -> bytes:
    """A ``Transfer-Encoding: chunked`` body (RFC 9112 §7.1), at most ``limit`` bytes once decoded."""
    parts: list[bytes] = []
    total = 0
    while True:
        size_text = _read_line(rfile, "a chunk-size line").split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_text.decode("latin-1")):
            raise _bad(f"Chunked body has an invalid chunk size {size_text[:32]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        if total > limit:
            raise too_large(headers, f"more than {limit}", limit)
        parts.append(_read_exact(rfile, size, "A chunk"))
        if _read_line(rfile, "a chunk's end") != b"":
            raise _bad("Chunked body has data after a chunk's announced size")
    for _ in range(MAX_TRAILER_LINES):
        if _read_line(rfile, "the trailer") == b"":
            return b"".join(parts)
    raise _bad(f"Chunked body has more than {MAX_TRAILER_LINES} trailer lines")


def read_body(headers: Message, rfile: Reader, limit: int) -> bytes:
    """The request body as its framing announces it; raises FramingError for anything else."""
    codings = [
        coding.strip().lower()
        for value in headers.get_all("Transfer-Encoding") or []
        for coding in value.split(",")
        if coding.strip()
    ]
    if codings:
        if headers.get_all("Content-Length"):
            raise _bad("Request has both Transfer-Encoding and Content-Length; send one of them")
        if codings != ["chunked"]:
            raise _bad(f"Transfer-Encoding {', '.join(codings)!r} is not supported: send chunked or none")
        return read_chunked(headers, rfile, limit)
    size = content_length(headers)
    if not size:
        return b""
    if size > limit:
        raise too_large(headers, size, limit, drain=size)
    return _read_exact(rfile, size, "Request body")
