"""Regression tests for the hostile-client probe (issue 10) through the Lambda doors and the dispatcher:
deep nesting, NaN/Infinity thresholds, pattern-valid 255-character CollectionIds starting with ".", bodies
over the local limit, and the ClientRequestToken across two ``facesearch serve`` processes."""

from __future__ import annotations

import json

import pytest

from facesearch.devtools.server import LocalLambdaContext
from facesearch.errors import ImageTooLargeException, InvalidParameterException, UnknownOperationException
from facesearch.handler import lambda_handler
from facesearch.protocol import doors, model
from facesearch.protocol.context import RequestContext
from facesearch.protocol.dispatch import OPERATIONS, dispatch
from facesearch.settings import ENV_STORE
from facesearch.store import get_store
from tests.support.events import http_event, rest_event

CONTEXT = RequestContext(request_id="test", region="us-east-1", account_id="000000000000")
# Past the interpreter's recursion limit (1000): json.loads raised RecursionError, which escaped as a 500.
DEEP_LEVELS = (960, 5000, 100_000)
PERCENT_MEMBERS = {
    "SearchFacesByImage": "FaceMatchThreshold",
    "SearchFaces": "FaceMatchThreshold",
    "CompareFaces": "SimilarityThreshold",
    "AssociateFaces": "UserMatchThreshold",
    "SearchUsers": "UserMatchThreshold",
    "SearchUsersByImage": "UserMatchThreshold",
}


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_STORE, str(tmp_path / "store"))


def call(event) -> tuple[int, dict]:
    answer = lambda_handler(event, LocalLambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


def nested(levels: int, opener: str = "[", closer: str = "]") -> str:
    return '{"CollectionId": "c", "X": ' + opener * levels + closer * levels + "}"


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("levels", DEEP_LEVELS)
def test_deeply_nested_json_is_a_parameter_error_on_every_operation(operation, levels):
    status, body = call(rest_event(operation, nested(levels)))
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    assert "InvalidParameterException" in model.declared_errors(operation)


@pytest.mark.parametrize("make_event", [rest_event, http_event])
def test_deep_objects_and_deep_values_of_known_members(make_event):
    deep_object = '{"CollectionId": ' + '{"a": ' * 3000 + "1" + "}" * 3000 + "}"
    status, body = call(make_event("DescribeCollection", deep_object))
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    # Parsed fine (under the recursion limit) but too deep to print naively in the message.
    status, body = call(make_event("DescribeCollection", nested(900).replace('"X"', '"MaxResults"')))
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    assert len(body["Message"]) < 2000


def test_deep_parameters_by_direct_invoke():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    answer = doors.handle({"Operation": "ListFaces", "Parameters": {"CollectionId": deep}}, None)
    assert answer["StatusCode"] == 400 and answer["Error"]["Code"] == "InvalidParameterException"


@pytest.mark.parametrize(("operation", "member"), sorted(PERCENT_MEMBERS.items()))
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_thresholds_are_refused_naming_the_member(operation, member, constant):
    body = '{"' + member + '": ' + constant + "}"
    status, answer = call(rest_event(operation, body))
    assert (status, answer["__type"]) == (400, "InvalidParameterException")
    assert f"at '{member}' failed to satisfy constraint: Member must be a finite number" in answer["Message"]


def test_nan_threshold_associates_nothing():
    store = get_store()
    store.create_collection("c", face_model_version="1.0", dim=8)
    dispatch("CreateUser", {"CollectionId": "c", "UserId": "u"}, CONTEXT)
    face = "11111111-1111-4111-8111-111111111111"
    with pytest.raises(InvalidParameterException, match="UserMatchThreshold"):
        dispatch(
            "AssociateFaces",
            {"CollectionId": "c", "UserId": "u", "FaceIds": [face], "UserMatchThreshold": float("nan")},
            CONTEXT,
        )
    (user,) = store.list_users("c", max_results=10).items
    assert user.user_id == "u" and user.user_status != "UPDATING"


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_body_over_the_limit_is_an_error_the_operation_declares(operation):
    error = doors.body_too_large(f"{model.target_prefix()}.{operation}", "Request of 17 bytes", 16)
    assert error.code in model.declared_errors(operation)
    declares = "ImageTooLargeException" in model.declared_errors(operation)
    assert isinstance(error, ImageTooLargeException if declares else InvalidParameterException)
    assert error.message.startswith("Request of 17 bytes exceeds the 16-byte limit")


def test_a_body_over_the_limit_with_no_or_an_unknown_target():
    assert isinstance(doors.body_too_large(None, "Request", 1), UnknownOperationException)
    unknown = doors.body_too_large(f"{model.target_prefix()}.Nope", "Request", 1)
    assert isinstance(unknown, UnknownOperationException) and "'Nope'" in unknown.message


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_large_bodies_through_the_doors_answer_declared_errors(operation):
    # 7 MiB (API Gateway passes up to 10 MB): an unknown member, a huge string, and a huge image.
    for params in (
        {"Padding": "x" * (7 << 20)},
        {"CollectionId": "x" * (7 << 20)},
        {"Image": {"Bytes": "A" * (7 << 20)}},
    ):
        status, body = call(rest_event(operation, params))
        assert status == 400 and body["__type"] in model.declared_errors(operation), (params.keys(), body)


def long_dot_ids() -> list[str]:
    return ["." + "a" * 254, ".." + "b" * 253, "." + "c" * 252, "." * 255, "." + "-" * 254]


def test_pattern_valid_long_ids_starting_with_a_dot_work(store_location, monkeypatch):
    monkeypatch.setenv(ENV_STORE, store_location)
    ids = long_dot_ids()
    for collection_id in ids:
        assert dispatch("CreateCollection", {"CollectionId": collection_id}, CONTEXT)["StatusCode"] == 200
        dispatch("CreateUser", {"CollectionId": collection_id, "UserId": "." + "u" * 127}, CONTEXT)
    listed = dispatch("ListCollections", {}, CONTEXT)["CollectionIds"]
    assert sorted(listed) == sorted(ids)
    for collection_id in ids:
        described = dispatch("DescribeCollection", {"CollectionId": collection_id}, CONTEXT)
        assert described["CollectionARN"].endswith("/" + collection_id)
        users = dispatch("ListUsers", {"CollectionId": collection_id}, CONTEXT)["Users"]
        assert [user["UserId"] for user in users] == ["." + "u" * 127]
        dispatch("DeleteCollection", {"CollectionId": collection_id}, CONTEXT)
    assert dispatch("ListCollections", {}, CONTEXT)["CollectionIds"] == []


def test_folder_names_fit_name_max_and_round_trip():
    from facesearch.store.blobs import NAME_MAX_BYTES, _escape, _unescape

    parts = list(
        dict.fromkeys([".", "..", ".x", "~x", "%2Ex", "%7E", "~", ".~", "%", "a%25b", *long_dot_ids()])
    )
    escaped = [_escape(part) for part in parts]
    assert len(set(escaped)) == len(parts)  # injective
    for part, name in zip(parts, escaped, strict=True):
        assert _unescape(name) == part
        assert not name.startswith(".")
        assert len(name.encode()) <= max(NAME_MAX_BYTES, len(part.encode()) + 4)
    assert all(len(_escape(part).encode()) <= NAME_MAX_BYTES for part in long_dot_ids())
    assert _escape(".a") == "%2Ea"  # names that fit keep the escape existing stores use
