"""Raw-HTTP abuse of a `facesearch serve` process over a real socket on 127.0.0.1: framing, nesting,
encodings, sizes, Content-Length variants, chunked bodies, slowloris-style idle connections.

Every request gets a JSON 1.1 answer below 500 naming an error its operation declares, promptly; idle
connections are closed at the (small) idle timeout and never keep anyone else waiting."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from facesearch.devtools.server import MAX_REQUEST_BYTES
from facesearch.protocol import model
from facesearch.protocol.dispatch import OPERATIONS
from tests.reliability.conftest import rekognition, serving
from tests.support.rawhttp import address, chunked, request_bytes, send

pytestmark = pytest.mark.reliability

IDLE_SECONDS = 1.0
PROMPT_SECONDS = 5.0
SLOW_CLIENTS = 24
ABUSERS = 8


def cases(operation: str) -> list[tuple[str, bytes, bool]]:
    """(category, raw request, half-close after sending) for one operation."""
    body = json.dumps({"CollectionId": "abuse"}).encode()
    te = {"Transfer-Encoding": "chunked"}
    return [
        (
            "nesting",
            request_bytes(operation, b'{"CollectionId": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
            False,
        ),
        ("nesting", request_bytes(operation, b'{"X": ' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}"), False),
        ("encoding", request_bytes(operation, b"\xff\xfe{\x00}\x00"), False),
        (
            "encoding",
            request_bytes(operation, gzip.compress(body), headers={"Content-Encoding": "gzip"}),
            False,
        ),
        (
            "encoding",
            request_bytes(operation, '{"CollectionId": "\udcff"}'.encode("utf-8", "surrogatepass")),
            False,
        ),
        ("encoding", request_bytes(operation, b'{"CollectionId": NaN, "MaxResults": Infinity}'), False),
        ("framing", request_bytes(operation, b"[1, 2, 3]"), False),
        ("framing", request_bytes(operation, b'"just a string"'), False),
        ("framing", request_bytes(operation, b"{" * 10), False),
        ("size", request_bytes(operation, b"", content_length=str(MAX_REQUEST_BYTES + 1)), True),
        ("size", request_bytes(operation, b"", content_length=str(2**64)), True),
        ("content_length", request_bytes(operation, body, content_length="abc"), False),
        ("content_length", request_bytes(operation, body, content_length="-1"), False),
        ("content_length", request_bytes(operation, body, content_length=" 1e3"), False),
        (
            "content_length",
            request_bytes(operation, body, content_length="2", headers={"Content-Length": "3"}),
            False,
        ),
        ("content_length", request_bytes(operation, body, content_length=str(len(body) + 50)), True),
        ("chunked", request_bytes(operation, chunked(body), content_length=None, headers=te), False),
        ("chunked", request_bytes(operation, b"ZZ\r\n", content_length=None, headers=te), False),
        (
            "chunked",
            request_bytes(operation, b"%x\r\n" % (MAX_REQUEST_BYTES + 1), content_length=None, headers=te),
            True,
        ),
        ("chunked", request_bytes(operation, chunked(body)[:-5], content_length=None, headers=te), True),
        ("chunked", request_bytes(operation, chunked(body), content_length="5", headers=te), False),
        ("headers", request_bytes(operation, body, headers={"X-Pad": "p" * 70_000}), False),
        ("headers", request_bytes(operation, body, headers={f"X-{i}": "v" for i in range(120)}), False),
        ("method", request_bytes(operation, body, method="OPTIONS"), False),
        ("method", request_bytes(operation, body, method="PROPFIND"), False),
    ]


GENERIC = [
    ("method", b"OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n", False),
    ("framing", b"GARBAGE\r\n\r\n", False),
    ("framing", b"POST / HTTP/9.9\r\n\r\n", False),
    ("framing", b"GET /" + b"x" * 70_000 + b" HTTP/1.1\r\n\r\n", False),
    ("framing", request_bytes(None, b"{}"), False),
    ("framing", request_bytes("NoSuchOperation", b"{}"), False),
    ("framing", request_bytes("../../etc/passwd", b"{}"), False),
]


def allowed_errors(raw: bytes) -> frozenset[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        operation = value.strip().removeprefix("RekognitionService.")
        if name.lower() == "x-amz-target" and operation in OPERATIONS:
            return model.declared_errors(operation) | {"UnknownOperationException"}
    return frozenset({"UnknownOperationException", "InvalidParameterException"})


def test_raw_http_abuse(tmp_path, report):
    all_cases = [case for operation in sorted(OPERATIONS) for case in cases(operation)] + GENERIC
    counts: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    slowest = 0.0
    with serving(tmp_path / "store", idle_timeout=IDLE_SECONDS) as (server,):
        client = rekognition(server.url)
        client.create_collection(CollectionId="abuse")

        def one(case: tuple[str, bytes, bool]) -> tuple[str, int, float]:
            category, raw, half_close = case
            answer = send(server.url, raw, half_close=half_close, timeout=30, close_wait=0.1)
            assert answer.headers.get("content-type") == model.JSON_CONTENT_TYPE, (
                category,
                raw[:200],
                answer,
            )
            assert answer.status < 500, (category, raw[:200], answer)
            if answer.status >= 400:
                assert set(answer.document) == {"__type", "Message"}
                assert answer.error_type in allowed_errors(raw), (category, raw[:200], answer)
                assert answer.headers["x-amzn-errortype"] == answer.error_type
            return category, answer.status, answer.seconds

        with ThreadPoolExecutor(ABUSERS) as pool:  # eight hostile clients at once
            for category, status, seconds in pool.map(one, all_cases):
                counts[category] += 1
                statuses[status] += 1
                slowest = max(slowest, seconds)
        # The only answers that take the idle timeout are the ones whose client stalls; none here.
        assert slowest < IDLE_SECONDS + PROMPT_SECONDS
        # Still healthy. The only well-framed requests among the cases are the chunked ones naming "abuse",
        # so the only collection changes are theirs (CreateCollection and DeleteCollection of it).
        assert set(client.list_collections()["CollectionIds"]) <= {"abuse"}
    report(
        "raw_http",
        requests=sum(counts.values()),
        per_category=dict(sorted(counts.items())),
        status=dict(sorted((str(k), v) for k, v in statuses.items())),
        answers_5xx=sum(v for k, v in statuses.items() if k >= 500),
        slowest_answer_seconds=round(slowest, 2),
        concurrent_abusers=ABUSERS,
    )


def test_slowloris(tmp_path, report):
    """Connections that send half a request and go quiet are closed at the idle timeout; meanwhile everyone
    else is answered at once."""
    with serving(tmp_path / "store", idle_timeout=IDLE_SECONDS) as (server,):
        host_port = address(server.url)
        slow = []
        partials = [
            b"POST / HTTP/1.1\r\nHost: x\r\n",  # headers never finish
            request_bytes("ListCollections", b"{", content_length="100"),  # body never finishes
            b"",  # connects and says nothing
        ]
        for i in range(SLOW_CLIENTS):
            sock = socket.create_connection(host_port, timeout=30)
            sock.sendall(partials[i % len(partials)])
            slow.append(sock)
        started = time.monotonic()
        client = rekognition(server.url)
        for _ in range(5):
            assert client.list_collections()["CollectionIds"] == []
        served_in = time.monotonic() - started
        closed_after = []
        for sock in slow:
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            closed_after.append(time.monotonic() - started)
            # A stalled body gets its JSON error before the close; stalled headers just the close.
            assert data == b"" or (data.startswith(b"HTTP/1.1 400 ") and b"went idle" in data)
            sock.close()
        assert served_in < PROMPT_SECONDS
        assert max(closed_after) < IDLE_SECONDS + PROMPT_SECONDS
    report(
        "raw_http",
        slowloris_connections=SLOW_CLIENTS,
        slowloris_idle_timeout_seconds=IDLE_SECONDS,
        slowloris_all_closed_within_seconds=round(max(closed_after), 2),
        others_served_meanwhile_seconds=round(served_in, 2),
    )
