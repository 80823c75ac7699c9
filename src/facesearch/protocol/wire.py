"""The wire boundary: PascalCase JSON <-> frozen snake_case dataclasses, guided by the service model's shapes.

Names are matched by spelling without case or underscores (``collection_arn`` <-> ``CollectionARN``,
``s3_object`` <-> ``S3Object``), so the model stays the only place PascalCase is written.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from datetime import datetime
from types import NoneType, UnionType
from typing import Any

from botocore.model import Shape

from facesearch.errors import RekognitionError


def _key(name: str) -> str:
    return name.replace("_", "").lower()


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass inside ``hint`` (``X``, ``X | None``), if any."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            if arg is not NoneType and isinstance(arg, type) and dataclasses.is_dataclass(arg):
                return arg
    return None


def from_wire(cls: type, shape: Shape, data: dict[str, Any]) -> Any:
    """Build dataclass ``cls`` from a validated structure; every member of ``shape`` must have a field."""
    fields = {_key(f.name): f.name for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    kwargs = {}
    for member_name, member_shape in shape.members.items():
        field = fields.get(_key(member_name))
        if field is None:
            raise AssertionError(f"{cls.__name__} has no field for {shape.name}.{member_name}")
        if member_name not in data:
            continue
        kwargs[field] = _value_from_wire(hints[field], member_shape, data[member_name])
    return cls(**kwargs)


def _value_from_wire(hint: Any, shape: Shape, value: Any) -> Any:
    if shape.type_name == "structure":
        nested = _dataclass_of(hint)
        if nested is None:
            raise AssertionError(f"no dataclass declared for structure {shape.name}")
        return from_wire(nested, shape, value)
    if shape.type_name == "list":
        return tuple(value)
    return value


def to_wire(obj: Any, shape: Shape) -> Any:
    """Render ``obj`` as ``shape``: dataclass fields become members, tuples lists.

    None is omitted, and so is an empty list the model requires to have items.
    """
    kind = shape.type_name
    if kind == "structure":
        members = {_key(name): (name, member) for name, member in shape.members.items()}
        out = {}
        for field in dataclasses.fields(obj):
            value = getattr(obj, field.name)
            if value is None:
                continue
            found = members.get(_key(field.name))
            if found is None:
                raise AssertionError(f"{type(obj).__name__}.{field.name} is not a member of {shape.name}")
            name, member = found
            # Absent rather than empty where the model forbids an empty list (DeletedFaces, FaceIds...).
            if member.type_name == "list" and not value and member.metadata.get("min", 0) > 0:
                continue
            out[name] = to_wire(value, member)
        return out
    if kind == "list":
        return [to_wire(item, shape.member) for item in obj]
    if kind == "map":
        return {key: to_wire(value, shape.value) for key, value in obj.items()}
    if kind == "timestamp":
        return obj.timestamp() if isinstance(obj, datetime) else float(obj)
    if kind in ("float", "double"):
        return float(obj)
    if kind in ("integer", "long"):
        return int(obj)
    return obj


def error_body(error: RekognitionError) -> dict[str, str]:
    """The AWS JSON 1.1 error document botocore parses into ``client.exceptions.<code>``."""
    return {"__type": error.code, "Message": error.message}


def direct_error(error: RekognitionError) -> dict[str, Any]:
    """The direct-invoke door's error answer: status plus code and message."""
    return {"StatusCode": error.status, "Error": {"Code": error.code, "Message": error.message}}


def error_headers(error: RekognitionError, request_id: str) -> dict[str, str]:
    return {"x-amzn-ErrorType": error.code, "x-amzn-RequestId": request_id}
