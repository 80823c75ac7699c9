"""The wire boundary: every request member has a snake_case field, responses render exactly their shape."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from facesearch.domain import BoundingBox, FaceRecord
from facesearch.errors import ConflictException, InternalServerError
from facesearch.protocol import model, responses, shapes, wire
from facesearch.protocol.dispatch import OPERATIONS
from facesearch.protocol.validate import violations

BOX = BoundingBox(left=0.1, top=0.2, width=0.3, height=0.4)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_request_types_have_exactly_the_input_members(operation):
    request_type, _ = OPERATIONS[operation]
    members = {name.lower() for name in model.input_shape(operation).members}
    fields = {field.name.replace("_", "") for field in dataclasses.fields(request_type)}
    assert fields == members


def test_from_wire_builds_nested_frozen_requests_with_defaults():
    request = wire.from_wire(
        shapes.SearchFacesByImageRequest,
        model.input_shape("SearchFacesByImage"),
        {"CollectionId": "c", "Image": {"S3Object": {"Bucket": "b", "Name": "k.jpg"}}},
    )
    assert request == shapes.SearchFacesByImageRequest(
        collection_id="c", image=shapes.ImageRef(s3_object=shapes.S3ObjectRef(bucket="b", name="k.jpg"))
    )
    assert (request.face_match_threshold, request.quality_filter, request.max_faces) == (80.0, "NONE", 80)
    index = wire.from_wire(
        shapes.IndexFacesRequest,
        model.input_shape("IndexFaces"),
        {"CollectionId": "c", "Image": {"Bytes": b"x"}},
    )
    assert index.quality_filter == "AUTO" and index.image.bytes_ == b"x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.collection_id = "other"


def test_to_wire_uses_the_models_spelling_and_epoch_timestamps():
    created = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    response = responses.DescribeCollectionResponse(
        face_count=2,
        face_model_version="v-1.0",
        collection_arn="arn",
        creation_timestamp=created,
        user_count=0,
    )
    document = wire.to_wire(response, model.output_shape("DescribeCollection"))
    assert document == {
        "FaceCount": 2,
        "FaceModelVersion": "v-1.0",
        "CollectionARN": "arn",
        "CreationTimestamp": created.timestamp(),
        "UserCount": 0,
    }


def test_to_wire_omits_none_and_empty_lists_the_model_forbids():
    face_id, image_id = "11111111-2222-4333-8444-555555555555", "22222222-2222-4333-8444-555555555555"
    face = FaceRecord(face_id, image_id, None, BOX, 99.0, "1.0")
    response = responses.SearchFacesResponse(
        searched_face_id=face.face_id,
        face_matches=(responses.FaceMatch(similarity=90.0, face=face),),
        face_model_version="1.0",
    )
    document = wire.to_wire(response, model.output_shape("SearchFaces"))
    assert document["FaceMatches"][0]["Face"] == {
        "FaceId": face.face_id,
        "BoundingBox": {"Left": 0.1, "Top": 0.2, "Width": 0.3, "Height": 0.4},
        "ImageId": face.image_id,
        "Confidence": 99.0,
        "IndexFacesModelVersion": "1.0",
    }
    assert violations(model.output_shape("SearchFaces"), document) == []
    deleted = wire.to_wire(responses.DeleteFacesResponse((), ()), model.output_shape("DeleteFaces"))
    assert deleted == {"UnsuccessfulFaceDeletions": []}


def test_to_wire_refuses_fields_the_shape_lacks():
    with pytest.raises(
        AssertionError, match=r"SourceFace\.bounding_box is not a member of CreateUserResponse"
    ):
        wire.to_wire(responses.SourceFace(bounding_box=BOX, confidence=1.0), model.output_shape("CreateUser"))


def test_error_renderings():
    error = ConflictException("The user id: a already exists")
    assert wire.error_body(error) == {
        "__type": "ConflictException",
        "Message": "The user id: a already exists",
    }
    assert wire.error_headers(error, "rid") == {
        "x-amzn-ErrorType": "ConflictException",
        "x-amzn-RequestId": "rid",
    }
    assert wire.direct_error(InternalServerError("boom")) == {
        "StatusCode": 500,
        "Error": {"Code": "InternalServerError", "Message": "boom"},
    }
