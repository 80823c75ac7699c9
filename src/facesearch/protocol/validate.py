"""Whole-request validation against the service model: every rule the model states, every field named."""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
import reprlib
from typing import Any

from botocore.model import Shape

from facesearch.errors import ImageTooLargeException, InvalidParameterException
from facesearch.protocol import model

# The model's blob shape for Image.Bytes: exceeding its max is ImageTooLargeException, as Rekognition answers,
# rather than a generic constraint violation.
IMAGE_BLOB_SHAPE = "ImageBlob"
# Shapes that are unions in Rekognition's semantics although the model cannot say so.
EXACTLY_ONE_OF = {"Image": ("Bytes", "S3Object")}
# S3Object members Rekognition requires although the model leaves them optional.
REQUIRED_EXTRA = {"S3Object": ("Bucket", "Name")}
_SHOWN_VALUE_CHARS = 64
# Shown values are rendered at most this deep: a deeply nested JSON value must not recurse in its message.
_SHOWN_LEVELS = 3
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel = _SHOWN_LEVELS
_SHOWN.maxstring = _SHOWN.maxother = _SHOWN_VALUE_CHARS
# Java's Unicode classes inside a character class (the Tags patterns use them), which Python's ``re`` lacks:
# letters and numbers are word characters but "_", separators are whitespace. Both slightly over-accept
# (e.g. tabs) rather than refuse a valid tag.
_JAVA_CLASS = re.compile(r"\[((?:[^\]\\]|\\.)*?\\p\{[A-Z]\}(?:[^\]\\]|\\.)*)\]")
_JAVA_CATEGORY = re.compile(r"\\p\{([A-Z])\}")
_CATEGORY_CLASS = {"L": r"[^\W_]", "N": r"[^\W_]", "Z": r"\s"}


def _python_class(match: re.Match) -> str:
    inside = match.group(1)
    categories = dict.fromkeys(_CATEGORY_CLASS[c] for c in _JAVA_CATEGORY.findall(inside))
    rest = _JAVA_CATEGORY.sub("", inside)
    return "(?:" + "|".join([*categories, *([f"[{rest}]"] if rest else [])]) + ")"


@functools.cache
def compiled_pattern(pattern: str) -> re.Pattern:
    """A model pattern (Java regex syntax) as a Python regex."""
    return re.compile(_JAVA_CLASS.sub(_python_class, pattern))


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else _SHOWN.repr(value)
    return text if len(text) <= _SHOWN_VALUE_CHARS else text[:_SHOWN_VALUE_CHARS] + "..."


class _Walker:
    """Collects every violation of one request, so the caller sees all of them in one message."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.too_large: str | None = None

    def fail(self, path: str, value: Any, constraint: str) -> None:
        self.problems.append(f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: {constraint}")

    def walk(self, shape: Shape, value: Any, path: str) -> Any:
        kind = shape.type_name
        if kind == "structure":
            return self._structure(shape, value, path)
        if kind == "list":
            return self._list(shape, value, path)
        if kind == "map":
            return self._map(shape, value, path)
        if kind == "string":
            return self._string(shape, value, path)
        if kind in ("integer", "long"):
            if not isinstance(value, int) or isinstance(value, bool):
                self.fail(path, value, "Member must be an integer")
                return None
            self._range(shape, value, path)
            return value
        if kind in ("float", "double"):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                self.fail(path, value, "Member must be a number")
                return None
            # json.loads accepts NaN and Infinity, which are not JSON; NaN passes every range comparison.
            if not math.isfinite(value):
                self.fail(path, value, "Member must be a finite number")
                return None
            self._range(shape, value, path)
            return float(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                self.fail(path, value, "Member must be a boolean")
            return value
        if kind == "blob":
            return self._blob(shape, value, path)
        if kind == "timestamp":
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                self.fail(path, value, "Member must be a timestamp in epoch seconds")
            return value
        raise AssertionError(f"shape type {kind} of {shape.name} is not handled")

    def _structure(self, shape: Shape, value: Any, path: str) -> dict | None:
        if not isinstance(value, dict):
            self.fail(path or "request", value, "Member must be a structure (JSON object)")
            return None
        members = shape.members
        out: dict[str, Any] = {}
        for name in value:
            if name not in members:
                where = f"{path}.{name}" if path else name
                self.problems.append(
                    f'Unknown parameter in input: "{where}", must be one of: {", ".join(members)}'
                )
        required = [*shape.required_members, *REQUIRED_EXTRA.get(shape.name, ())]
        for name, member in members.items():
            where = f"{path}.{name}" if path else name
            item = value.get(name)
            if item is None:
                if name in required:
                    self.problems.append(f"Missing required parameter: '{where}'")
                continue
            out[name] = self.walk(member, item, where)
        one_of = EXACTLY_ONE_OF.get(shape.name)
        if one_of and sum(value.get(name) is not None for name in one_of) != 1:
            self.problems.append(f"'{path}' must have exactly one of: {', '.join(one_of)}")
        return out

    def _list(self, shape: Shape, value: Any, path: str) -> list | None:
        if not isinstance(value, list):
            self.fail(path, value, "Member must be a list")
            return None
        self._length(shape, len(value), value, path, "length")
        return [self.walk(shape.member, item, f"{path}[{i}]") for i, item in enumerate(value)]

    def _map(self, shape: Shape, value: Any, path: str) -> dict | None:
        if not isinstance(value, dict):
            self.fail(path, value, "Member must be a map (JSON object)")
            return None
        self._length(shape, len(value), value, path, "number of entries")
        out = {}
        for key, item in value.items():
            checked_key = self.walk(shape.key, key, f"{path}.keys")
            out[checked_key] = self.walk(shape.value, item, f"{path}.{key}")
        return out

    def _string(self, shape: Shape, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.fail(path, value, "Member must be a string")
            return None
        self._length(shape, len(value), value, path, "length")
        meta = shape.metadata
        pattern = meta.get("pattern")
        if pattern and not compiled_pattern(pattern).fullmatch(value):
            self.fail(path, value, f"Member must satisfy regular expression pattern: {pattern}")
        if shape.enum and value not in shape.enum:
            self.fail(path, value, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        return value

    def _blob(self, shape: Shape, value: Any, path: str) -> bytes | None:
        if not isinstance(value, str):
            self.fail(path, "<not a string>", "Member must be a base64-encoded string")
            return None
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.fail(path, "<blob>", "Member must be valid base64")
            return None
        limit = shape.metadata.get("max")
        if shape.name == IMAGE_BLOB_SHAPE and limit is not None and len(data) > limit:
            # The service's own wording for this case, a Java ByteBuffer and a lowerCamelCase member path
            # included (tests/conformance/README.md, row 22).
            self.too_large = (
                f"1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim={len(data)} "
                f"cap={len(data)}]' at '{_lower_camel(path)}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {limit}"
            )
            return data
        self._length(shape, len(data), "<blob>", path, "length")
        return data

    def _length(self, shape: Shape, size: int, value: Any, path: str, what: str) -> None:
        meta = shape.metadata
        if "min" in meta and size < meta["min"]:
            self.fail(path, value, f"Member must have {what} greater than or equal to {meta['min']}")
        if "max" in meta and size > meta["max"]:
            self.fail(path, value, f"Member must have {what} less than or equal to {meta['max']}")

    def _range(self, shape: Shape, number: float, path: str) -> None:
        meta = shape.metadata
        if "min" in meta and number < meta["min"]:
            self.fail(path, number, f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and number > meta["max"]:
            self.fail(path, number, f"Member must have value less than or equal to {meta['max']}")


def parse_request(operation: str, params: Any) -> dict[str, Any]:
    """Validate ``params`` (the decoded JSON body) as ``operation``'s input; blobs come back decoded.

    Raises InvalidParameterException listing every violation, or ImageTooLargeException when the only
    problem is an Image.Bytes over the model's limit.
    """
    walker = _Walker()
    checked = walker.walk(model.input_shape(operation), params, "")
    if walker.problems:
        count = len(walker.problems)
        noun = "error" if count == 1 else "errors"
        raise InvalidParameterException(f"{count} validation {noun} detected: " + "; ".join(walker.problems))
    if walker.too_large:
        raise ImageTooLargeException(walker.too_large)
    return checked


def _lower_camel(path: str) -> str:
    """``SourceImage.Bytes`` -> ``sourceImage.bytes``: how the service spells member paths."""
    return ".".join(part[:1].lower() + part[1:] for part in path.split("."))


def violations(shape: Shape, document: Any) -> list[str]:
    """Every way ``document`` breaks ``shape`` (the conformance suite checks responses with it)."""
    walker = _Walker()
    walker.walk(shape, document, "")
    return walker.problems
