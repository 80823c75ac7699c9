"""Model-driven fuzzing of all 18 operations through the Lambda handler (REST door, JSON text bodies).

Requests start valid (built from the botocore input shape, naming a populated collection) and then get one
violation: a systematic grid (every member x every applicable violation) plus seeded hypothesis examples
(random replacement values, random broken images). Every answer must be < 500 and an error the operation
declares, and a refused request must leave the store's files exactly as they were.
"""

from __future__ import annotations

import base64
import io
import json
import math
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.model import Shape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facesearch.devtools.server import LocalLambdaContext
from facesearch.handler import lambda_handler
from facesearch.protocol import model
from facesearch.protocol.dispatch import OPERATIONS
from tests.reliability.conftest import snapshot
from tests.support.events import rest_event

pytestmark = pytest.mark.reliability

COLLECTION = "fuzz"
USER = "fuzz-user"
DEEP = "\x00DEEP\x00"  # replaced in the JSON text by 5000 nested lists (json.dumps cannot write them)
DEEP_LEVELS = 5000
HUGE_CHARS = 1 << 20
MAX_PATH_DEPTH = 3
HYPOTHESIS_EXAMPLES = 800
IMAGE_EXAMPLES = 500
OPERATION_NAMES = sorted(OPERATIONS)


def jpeg(size: tuple[int, int] = (32, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(out, format="JPEG")
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and carries almost no data (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    data = zlib.compress(b"\x00" * 1024)
    idat = struct.pack(">I", len(data)) + b"IDAT" + data + struct.pack(">I", zlib.crc32(b"IDAT" + data))
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat + b"\x00\x00\x00\x00IEND\xaeB`\x82"


BROKEN_IMAGES = {
    "empty": b"",
    "one-byte": b"\xff",
    "text": b"this is not an image",
    "jpeg-header-only": jpeg()[:20],
    "jpeg-truncated": jpeg((256, 256))[:400],
    "png-signature-only": b"\x89PNG\r\n\x1a\n",
    "png-bomb-100k-square": png_header(100_000, 100_000),
    "png-zero-size": png_header(0, 0),
    "gif": b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
    "bmp-header": b"BM" + b"\x00" * 60,
    "tiny-1x1": jpeg((1, 1)),
}


class Fuzzer:
    """Sends requests, checks every answer, counts them per category."""

    def __init__(self, store_root, face_id: str) -> None:
        self.root = store_root
        self.face_id = face_id
        self.image = base64.b64encode(jpeg()).decode()
        self.counts: Counter[str] = Counter()
        self.status: Counter[int] = Counter()
        self.before = snapshot(self.root)

    # -- valid requests -------------------------------------------------------------------------------
    def valid(self, shape: Shape, name: str = "") -> Any:
        kind = shape.type_name
        if kind == "structure":
            if shape.name == "Image":
                return {"Bytes": self.image}
            return {m: self.valid(s, m) for m, s in shape.members.items() if m in shape.required_members}
        if kind == "list":
            return [self.valid(shape.member, name)]
        if kind == "map":
            return {"k": "v"}
        if kind == "string":
            if shape.enum:
                return shape.enum[0]
            known = {
                "CollectionId": COLLECTION,
                "UserId": USER,
                "FaceId": self.face_id,
                "FaceIds": self.face_id,
            }
            return known.get(name) or known.get(shape.name) or "fuzz-value"
        if kind in ("integer", "long"):
            return max(1, int(shape.metadata.get("min", 1)))
        if kind in ("float", "double"):
            return 50.0
        if kind == "boolean":
            return True
        if kind == "blob":
            return self.image
        raise AssertionError(kind)

    # -- the check ------------------------------------------------------------------------------------
    def send(self, operation: str, document: Any, category: str) -> None:
        text = json.dumps(document, allow_nan=True)
        text = text.replace(json.dumps(DEEP), "[" * DEEP_LEVELS + "]" * DEEP_LEVELS)
        answer = lambda_handler(rest_event(operation, text), LocalLambdaContext())
        status = answer["statusCode"]
        body = json.loads(answer["body"])
        self.counts[category] += 1
        self.status[status] += 1
        assert status < 500, (operation, category, text[:300], body)
        if status >= 400:
            assert body["__type"] in model.declared_errors(operation), (operation, category, text[:300], body)
            after = snapshot(self.root)
            assert after == self.before, (operation, category, text[:300], body)
        else:
            self.before = snapshot(self.root)


def member_paths(shape: Shape, path: tuple = (), depth: int = 0) -> Iterator[tuple[tuple, Shape]]:
    """Every member (and list item, map value) reachable within MAX_PATH_DEPTH levels."""
    if depth >= MAX_PATH_DEPTH:
        return
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            yield (*path, name), member
            yield from member_paths(member, (*path, name), depth + 1)
    elif shape.type_name == "list":
        yield (*path, 0), shape.member
        yield from member_paths(shape.member, (*path, 0), depth + 1)
    elif shape.type_name == "map":
        yield (*path, "k"), shape.value


def assign(document: Any, path: tuple, value: Any, fuzzer: Fuzzer, shape: Shape) -> Any:
    """``document`` with ``value`` at ``path`` (intermediate members created valid)."""
    document = json.loads(json.dumps(document))
    node = document
    current = shape
    for step in path[:-1]:
        current = current.members[step] if current.type_name == "structure" else current.member
        if isinstance(node, dict) and not isinstance(node.get(step), (dict, list)):
            node[step] = fuzzer.valid(current, step)
        node = node[step]
    if isinstance(node, dict) and "Bytes" in node and path[-1] == "S3Object":
        node.pop("Bytes")  # the S3Object alternative replaces Bytes
    node[path[-1]] = value
    return document


def violations(shape: Shape) -> Iterator[tuple[str, Any]]:
    """(category, value) pairs that break ``shape``."""
    kind = shape.type_name
    meta = shape.metadata
    wrong = {
        "string": [12345, ["x"], {"a": 1}, True],
        "integer": ["12", 1.5, [1], True],
        "long": ["12", 1.5, True],
        "float": ["50", [50], True, {"v": 1}],
        "boolean": ["true", 1, None],
        "list": [{"a": 1}, "x", 7],
        "map": [["k"], "x", 7],
        "structure": [[1], "x", 7],
        "blob": [12, ["QQ=="], {"b": 1}],
    }
    for value in wrong.get(kind, []):
        if value is not None:
            yield "wrong_type", value
    yield "deep_nesting", DEEP
    yield "huge", "x" * HUGE_CHARS
    if kind == "string":
        if meta.get("min", 0) >= 1:
            yield "out_of_range", ""
        if "max" in meta:
            yield "out_of_range", "a" * (meta["max"] + 1)
        if "pattern" in meta:
            for bad in ("../../etc/passwd", "a/b", "..%2F..", "\u00fc", " ", "a\x00b", "\\..\\x"):
                yield "pattern", bad
        if shape.enum:
            yield "pattern", "BOGUS"
    if kind in ("integer", "long", "float", "double"):
        for bound, step in (("min", -1), ("max", 1)):
            if bound in meta:
                yield "out_of_range", meta[bound] + step
        yield "out_of_range", 2**70
        yield "out_of_range", -(2**70)
        for constant in (math.nan, math.inf, -math.inf):
            yield "nan_infinity", constant
    if kind == "list":
        if meta.get("min", 0) >= 1:
            yield "out_of_range", []
        if "max" in meta:
            yield "out_of_range", ["x"] * (meta["max"] + 1)
    if kind == "blob":
        for bad in ("!!!not base64!!!", "QQ", "QQ=", "====", "A" * 4097 + "="):
            yield "bad_base64", bad
        for data in BROKEN_IMAGES.values():
            yield "bad_image", base64.b64encode(data).decode()
    if kind == "structure":
        yield "unknown_member", {"Bogus": 1}
        if shape.name == "Image":
            yield "pattern", {"Bytes": "QQ==", "S3Object": {"Bucket": "b", "Name": "n"}}
            for bucket, name in (("..", "x"), ("b", "../../etc/passwd"), ("not-allowed", "x.jpg"), ("", "")):
                yield "pattern", {"S3Object": {"Bucket": bucket, "Name": name}}


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory, small_face):
    import os

    from facesearch import lazy
    from facesearch.settings import ENV_STORE

    root = tmp_path_factory.mktemp("fuzz-store")
    previous = os.environ.get(ENV_STORE)
    os.environ[ENV_STORE] = str(root)
    lazy.reset_all()
    try:
        setup = [
            ("CreateCollection", {"CollectionId": COLLECTION}),
            (
                "IndexFaces",
                {"CollectionId": COLLECTION, "Image": {"Bytes": base64.b64encode(small_face).decode()}},
            ),
        ]
        for operation, params in setup:
            answer = lambda_handler(rest_event(operation, params), LocalLambdaContext())
            assert answer["statusCode"] == 200, answer
        faces = json.loads(answer["body"])["FaceRecords"]
        face_id = faces[0]["Face"]["FaceId"]
        for operation, params in (
            ("CreateUser", {"CollectionId": COLLECTION, "UserId": USER}),
            ("AssociateFaces", {"CollectionId": COLLECTION, "UserId": USER, "FaceIds": [face_id]}),
        ):
            assert lambda_handler(rest_event(operation, params), LocalLambdaContext())["statusCode"] == 200
        yield Fuzzer(root, face_id)
    finally:
        if previous is None:
            os.environ.pop(ENV_STORE, None)
        else:
            os.environ[ENV_STORE] = previous
        lazy.reset_all()


@pytest.fixture(autouse=True)
def fresh_container():
    """The module's store and warm container persist across its tests (the root conftest resets them)."""
    yield


@pytest.mark.parametrize("operation", OPERATION_NAMES)
def test_every_member_every_violation(fuzzer, operation):
    shape = model.input_shape(operation)
    base = fuzzer.valid(shape)
    fuzzer.send(operation, {**base, "UnknownMember": 1}, "unknown_member")
    fuzzer.send(operation, DEEP, "deep_nesting")
    for required in shape.required_members:
        fuzzer.send(operation, {k: v for k, v in base.items() if k != required}, "missing_required")
    for path, member in member_paths(shape):
        for category, value in violations(member):
            fuzzer.send(operation, assign(base, path, value, fuzzer, shape), category)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=300),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    derandomize=True,
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_values_at_random_members(fuzzer, data):
    operation = data.draw(st.sampled_from(OPERATION_NAMES))
    shape = model.input_shape(operation)
    paths = list(member_paths(shape))
    path, _ = data.draw(st.sampled_from(paths))
    value = data.draw(json_values)
    fuzzer.send(operation, assign(fuzzer.valid(shape), path, value, fuzzer, shape), "random")


IMAGE_OPERATIONS = ["DetectFaces", "IndexFaces", "SearchFacesByImage", "SearchUsersByImage", "CompareFaces"]


@settings(
    derandomize=True,
    max_examples=IMAGE_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_broken_images(fuzzer, data):
    source = jpeg((64, 64))
    mutation = data.draw(st.sampled_from(["truncate", "flip", "random", "splice"]))
    if mutation == "truncate":
        broken = source[: data.draw(st.integers(0, len(source) - 1))]
    elif mutation == "flip":
        broken = bytearray(source)
        for position in data.draw(st.lists(st.integers(0, len(source) - 1), min_size=1, max_size=16)):
            broken[position] ^= 0xFF
        broken = bytes(broken)
    elif mutation == "random":
        broken = data.draw(st.binary(max_size=2048))
    else:
        broken = source[:100] + data.draw(st.binary(max_size=512)) + source[100:]
    operation = data.draw(st.sampled_from(IMAGE_OPERATIONS))
    shape = model.input_shape(operation)
    image_member = "SourceImage" if operation == "CompareFaces" else "Image"
    document = fuzzer.valid(shape)
    document[image_member] = {"Bytes": base64.b64encode(broken).decode()}
    fuzzer.send(operation, document, "bad_image")


def test_report(fuzzer, report):
    """Runs last in the module: the figures of the tests above."""
    assert sum(fuzzer.counts.values()) > 0
    report(
        "fuzz",
        requests=sum(fuzzer.counts.values()),
        per_category=dict(sorted(fuzzer.counts.items())),
        status=dict(sorted((str(k), v) for k, v in fuzzer.status.items())),
        answers_5xx=sum(v for k, v in fuzzer.status.items() if k >= 500),
        operations=len(OPERATION_NAMES),
    )
