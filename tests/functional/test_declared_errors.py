"""Every error an operation can raise is declared for it in the service model, and bad input is never a 500.

A battery of requests generated from the model (missing, unknown, mistyped and out-of-range members,
unknown collections, users, faces and tokens, images that are not images or show no face, buckets outside
the allow-list) goes through the dispatcher for every operation, on an empty collection and on none.
"""

from __future__ import annotations

import base64
import io

import pytest
from botocore.model import Shape
from PIL import Image

import facesearch.errors as errors_module
from facesearch.errors import RekognitionError, UnknownOperationException
from facesearch.protocol import model
from facesearch.protocol.context import RequestContext
from facesearch.protocol.dispatch import OPERATIONS, dispatch
from facesearch.protocol.validate import REQUIRED_EXTRA
from facesearch.settings import ENV_ALLOWED_IMAGE_BUCKETS, ENV_STORE
from facesearch.store import get_store
from facesearch.vision.pack import get_pack

CONTEXT = RequestContext(request_id="test", region="us-east-1", account_id="000000000000")
COLLECTION = "battery"
# Operations on a user or face that must exist (in an existing collection).
# (SearchFaces answers an unknown FaceId with InvalidParameterException, as Rekognition does.)
NEEDS_EXISTING_SUBJECT = {"DeleteUser", "AssociateFaces", "DisassociateFaces", "SearchUsers"}
SAMPLE_STRINGS = {
    "FaceId": "11111111-2222-4333-8444-555555555555",
    "ClientRequestToken": "token-1",
    "CollectionId": COLLECTION,
    "S3Bucket": "allowed-bucket",
}


def _blank_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 90, 90)).save(out, format="JPEG")
    return out.getvalue()


BLANK = base64.b64encode(_blank_jpeg()).decode()


def sample(shape: Shape):
    """A minimal valid value of ``shape``."""
    kind = shape.type_name
    if kind == "structure":
        if shape.name == "Image":
            return {"Bytes": BLANK}
        required = [*shape.required_members, *REQUIRED_EXTRA.get(shape.name, ())]
        return {name: sample(shape.members[name]) for name in required}
    if kind == "list":
        return [sample(shape.member)] * max(1, shape.metadata.get("min", 1))
    if kind == "string":
        return shape.enum[0] if shape.enum else SAMPLE_STRINGS.get(shape.name, "abc")
    if kind in ("integer", "long", "float", "double"):
        return max(1, shape.metadata.get("min", 1))
    if kind == "map":
        return {}
    raise AssertionError(f"no sample for {shape.name} ({kind})")


def bad_values(shape: Shape) -> list:
    """Values of ``shape``'s member that break its type or its bounds."""
    kind = shape.type_name
    values = [12345] if kind in ("string", "blob") else ["not-a-number"] if kind != "structure" else ["x"]
    meta = shape.metadata
    if kind == "string":
        values.append("#" * (meta.get("max", 300) + 1))
        if meta.get("min", 0) > 0:
            values.append("")
    if kind in ("integer", "long", "float", "double"):
        values += [meta["min"] - 1] if "min" in meta else []
        values += [meta["max"] + 1] if "max" in meta else []
    if kind == "list":
        values.append([])
        values += [[sample(shape.member)] * (meta["max"] + 1)] if "max" in meta else []
    if kind == "structure":
        values += [{}, {"Unknown": 1}]
    return values


def battery(operation: str) -> list[dict]:
    shape = model.input_shape(operation)
    valid = sample(shape)
    requests = [valid, {}, {**valid, "Bogus": 1}]
    for name, member in shape.members.items():
        requests += [{**valid, name: value} for value in bad_values(member)]
        if member.type_name == "string" and not member.enum and "pattern" not in member.metadata:
            requests.append({**valid, name: "a-token-from-nowhere"})
        if member.name == "Image":
            requests += [
                {**valid, name: {"Bytes": base64.b64encode(b"plain text, not an image").decode()}},
                {**valid, name: {"S3Object": {"Bucket": "forbidden-bucket", "Name": "a.jpg"}}},
                {**valid, name: {"Bytes": BLANK, "S3Object": {"Bucket": "allowed-bucket", "Name": "a.jpg"}}},
            ]
    if "UserId" in shape.members:
        requests.append({**valid, "UserId": "ghost"})
    if "FaceId" in shape.members and "UserId" in shape.members:
        requests.append({**valid, "UserId": "ghost", "FaceId": SAMPLE_STRINGS["FaceId"]})
    return requests


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_STORE, str(tmp_path / "store"))
    monkeypatch.setenv(ENV_ALLOWED_IMAGE_BUCKETS, "allowed-bucket")


@pytest.mark.parametrize("with_collection", [False, True], ids=["no-collection", "empty-collection"])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_every_error_raised_is_declared(operation, with_collection, store_env):
    if with_collection:
        pack = get_pack()
        get_store().create_collection(COLLECTION, face_model_version=pack.face_model_version, dim=pack.dim)
        get_store().create_user(COLLECTION, "u1")
    declared = model.declared_errors(operation)
    raised = set()
    for params in battery(operation):
        try:
            dispatch(operation, params, CONTEXT)
        except RekognitionError as error:
            assert error.code in declared, f"{operation} raised undeclared {error.code}: {error.message}"
            assert error.status < 500, (
                f"{operation} answered bad input {params} with {error.code}: {error.message}"
            )
            raised.add(error.code)
    # The battery reaches past validation: the collection, image and allow-list checks answered too.
    expected = {"InvalidParameterException"}
    members = model.input_shape(operation).members
    if operation in NEEDS_EXISTING_SUBJECT or (
        "CollectionId" in members and not with_collection and operation != "CreateCollection"
    ):
        expected.add("ResourceNotFoundException")
    # The collection is looked up before the image is read.
    reaches_image = with_collection or "CollectionId" not in members
    if reaches_image and any(m.name == "Image" for m in members.values()):
        expected |= {"InvalidImageFormatException", "AccessDeniedException"}
    assert expected <= raised, expected - raised


def test_the_dispatcher_speaks_exactly_the_designed_operations():
    designed = {
        "SearchFacesByImage", "IndexFaces", "SearchFaces", "ListFaces", "DeleteFaces",
        "CreateCollection", "DeleteCollection", "DescribeCollection", "ListCollections",
        "DetectFaces", "CompareFaces",
        "CreateUser", "DeleteUser", "ListUsers", "AssociateFaces", "DisassociateFaces",
        "SearchUsers", "SearchUsersByImage",
    }  # fmt: skip
    assert set(OPERATIONS) == designed
    assert designed <= set(model.service_model().operation_names)


def test_every_wire_error_class_is_a_model_error_shape():
    shapes = {
        name
        for name in model.service_model().shape_names
        if model.service_model().shape_for(name).metadata.get("exception")
    }
    classes = {
        name
        for name, value in vars(errors_module).items()
        if isinstance(value, type) and issubclass(value, RekognitionError) and value is not RekognitionError
    }
    assert classes - shapes == {UnknownOperationException.__name__}


def test_unknown_operation_is_refused_before_validation():
    with pytest.raises(UnknownOperationException) as caught:
        dispatch("DetectText", {"Image": {}}, CONTEXT)
    assert caught.value.message.startswith(
        "Unknown operation 'DetectText': this service speaks AssociateFaces, "
    )
