"""Whole-request validation from the service model: every rule, every field named, every problem listed."""

from __future__ import annotations

import base64

import pytest

from facesearch.errors import ImageTooLargeException, InvalidParameterException
from facesearch.protocol import model
from facesearch.protocol.validate import parse_request

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def invalid(operation: str, params) -> str:
    with pytest.raises(InvalidParameterException) as caught:
        parse_request(operation, params)
    return caught.value.message


def test_valid_request_comes_back_with_blobs_decoded():
    checked = parse_request(
        "SearchFacesByImage",
        {"CollectionId": "c-1", "Image": {"Bytes": b64(PNG)}, "MaxFaces": 3, "FaceMatchThreshold": 90},
    )
    assert checked == {
        "CollectionId": "c-1",
        "Image": {"Bytes": PNG},
        "MaxFaces": 3,
        "FaceMatchThreshold": 90.0,
    }


def test_missing_required_member_is_named():
    assert (
        invalid("DescribeCollection", {})
        == "1 validation error detected: Missing required parameter: 'CollectionId'"
    )


def test_unknown_member_is_named_with_the_allowed_ones():
    message = invalid("DeleteCollection", {"CollectionId": "c", "Force": True})
    assert message == (
        '1 validation error detected: Unknown parameter in input: "Force", must be one of: CollectionId'
    )


def test_unknown_nested_member_is_named_with_its_path():
    message = invalid("DetectFaces", {"Image": {"Bytes": b64(PNG), "Url": "http://x"}})
    assert 'Unknown parameter in input: "Image.Url", must be one of: Bytes, S3Object' in message


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"CollectionId": "bad id"},
            "Value 'bad id' at 'CollectionId' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.\\-]+",
        ),
        (
            {"CollectionId": 7},
            "Value '7' at 'CollectionId' failed to satisfy constraint: Member must be a string",
        ),
    ],
)
def test_string_rules(params, expected):
    assert invalid("DescribeCollection", params) == f"1 validation error detected: {expected}"


def test_empty_string_breaks_length_and_pattern():
    assert invalid("DescribeCollection", {"CollectionId": ""}) == (
        "2 validation errors detected: Value '' at 'CollectionId' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1; Value '' at 'CollectionId' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.\\-]+"
    )


def test_too_long_values_are_shown_truncated():
    message = invalid("DescribeCollection", {"CollectionId": "a" * 256})
    assert message == (
        "1 validation error detected: Value '" + "a" * 64 + "...' at 'CollectionId' failed to satisfy "
        "constraint: Member must have length less than or equal to 255"
    )


@pytest.mark.parametrize(
    ("member", "value", "constraint"),
    [
        ("MaxFaces", 0, "Member must have value greater than or equal to 1"),
        ("MaxFaces", 4097, "Member must have value less than or equal to 4096"),
        ("MaxFaces", 2.5, "Member must be an integer"),
        ("MaxFaces", True, "Member must be an integer"),
        ("FaceMatchThreshold", 100.5, "Member must have value less than or equal to 100"),
        ("FaceMatchThreshold", -1, "Member must have value greater than or equal to 0"),
        ("FaceMatchThreshold", "80", "Member must be a number"),
        ("FaceId", "not-a-uuid", "Member must satisfy regular expression pattern: "),
    ],
)
def test_number_and_pattern_rules(member, value, constraint):
    params = {"CollectionId": "c", "FaceId": "11111111-2222-3333-4444-555555555555", member: value}
    message = invalid("SearchFaces", params)
    assert message.startswith(f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy")
    assert constraint in message


def test_enum_rule():
    message = invalid(
        "SearchFacesByImage", {"CollectionId": "c", "Image": {"Bytes": b64(PNG)}, "QualityFilter": "x"}
    )
    assert message == (
        "1 validation error detected: Value 'x' at 'QualityFilter' failed to satisfy constraint: "
        "Member must satisfy enum value set: [NONE, AUTO, LOW, MEDIUM, HIGH]"
    )


def test_list_rules_and_item_paths():
    assert invalid("DeleteFaces", {"CollectionId": "c", "FaceIds": []}) == (
        "1 validation error detected: Value '[]' at 'FaceIds' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )
    message = invalid(
        "DeleteFaces", {"CollectionId": "c", "FaceIds": ["11111111-2222-3333-4444-555555555555", "x"]}
    )
    assert (
        "at 'FaceIds[1]' failed to satisfy constraint: Member must satisfy regular expression pattern"
        in message
    )
    too_many = ["11111111-2222-3333-4444-555555555555"] * 101
    message = invalid("AssociateFaces", {"CollectionId": "c", "UserId": "u", "FaceIds": too_many})
    assert (
        "at 'FaceIds' failed to satisfy constraint: Member must have length less than or equal to 100"
        in message
    )


def test_map_rules():
    message = invalid("CreateCollection", {"CollectionId": "c", "Tags": {"k": 5}})
    assert message == (
        "1 validation error detected: Value '5' at 'Tags.k' failed to satisfy constraint: "
        "Member must be a string"
    )


def test_every_problem_is_listed_at_once():
    message = invalid("SearchFaces", {"CollectionId": "bad id", "MaxFaces": 0, "Extra": 1})
    assert message.startswith("4 validation errors detected: ")
    for part in ("'CollectionId'", "'MaxFaces'", '"Extra"', "Missing required parameter: 'FaceId'"):
        assert part in message


def test_request_must_be_an_object():
    assert invalid("ListCollections", ["x"]) == (
        "1 validation error detected: Value '['x']' at 'request' failed to satisfy constraint: "
        "Member must be a structure (JSON object)"
    )


def test_image_needs_exactly_one_source():
    message = invalid("DetectFaces", {"Image": {}})
    assert message == "1 validation error detected: 'Image' must have exactly one of: Bytes, S3Object"
    both = {"Bytes": b64(PNG), "S3Object": {"Bucket": "bucket", "Name": "a.jpg"}}
    assert "'Image' must have exactly one of: Bytes, S3Object" in invalid("DetectFaces", {"Image": both})


def test_s3_object_needs_bucket_and_name():
    message = invalid("DetectFaces", {"Image": {"S3Object": {"Bucket": "bucket"}}})
    assert message == "1 validation error detected: Missing required parameter: 'Image.S3Object.Name'"


def test_blob_must_be_base64():
    message = invalid("DetectFaces", {"Image": {"Bytes": "not base64!"}})
    assert message == (
        "1 validation error detected: Value '<blob>' at 'Image.Bytes' failed to satisfy constraint: "
        "Member must be valid base64"
    )


def test_image_bytes_over_the_model_limit_is_image_too_large():
    limit = model.input_shape("DetectFaces").members["Image"].members["Bytes"].metadata["max"]
    with pytest.raises(ImageTooLargeException) as caught:
        parse_request("DetectFaces", {"Image": {"Bytes": b64(b"\xff" * (limit + 1))}})
    # The service's wording (tests/conformance/README.md, row 22), lowerCamelCase path included.
    size = limit + 1
    assert caught.value.message == (
        f"1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim={size} cap={size}]' "
        "at 'image.bytes' failed to satisfy constraint: "
        f"Member must have length less than or equal to {limit}"
    )


def test_other_problems_win_over_a_too_large_image():
    limit = model.input_shape("DetectFaces").members["Image"].members["Bytes"].metadata["max"]
    message = invalid("DetectFaces", {"Image": {"Bytes": b64(b"\xff" * (limit + 1))}, "Attributes": ["NOPE"]})
    assert "at 'Attributes[0]' failed to satisfy constraint: Member must satisfy enum value set" in message


def test_null_members_are_absent():
    assert parse_request("ListCollections", {"NextToken": None, "MaxResults": None}) == {}


def test_java_unicode_classes_of_tag_patterns():
    assert parse_request("CreateCollection", {"CollectionId": "c", "Tags": {"Größe 1": "wert_2"}})[
        "Tags"
    ] == {"Größe 1": "wert_2"}
    message = invalid("CreateCollection", {"CollectionId": "c", "Tags": {"aws:reserved": "v", "ok": "a#b"}})
    assert message.startswith("2 validation errors detected: ")
    assert (
        "Value 'aws:reserved' at 'Tags.keys' failed to satisfy constraint: Member must satisfy regular"
        in message
    )
    assert "Value 'a#b' at 'Tags.ok' failed to satisfy constraint: Member must satisfy regular" in message
