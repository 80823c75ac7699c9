"""Every ready event in events/ through its function's handler, in its environment from template.yaml.

Each event runs as ``facesearch invoke`` (and ``sam local invoke -e``) runs it, against a moto S3 store,
and its expected outcome is asserted: the response shape of each door, the state it leaves behind, the
error event's code and message, and the maintenance report of the scheduled event.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from facesearch.devtools import invoke
from facesearch.devtools.registry import FACE_API, extract
from facesearch.protocol import model
from tests.support.events import EVENTS_DIR, load_event

IMAGES_BUCKET = "facesearch-demo-images"
# events/README.md: the search events' face is the square (left, top, right, bottom) of the 1920x1280
# package/demo/sample1.jpg, downscaled to 192x192.
CROP_BOX = (1396, 150, 1745, 499)
SAMPLE1_SIZE = (1920, 1280)
SIMILARITY_THRESHOLD = 80.0


@pytest.fixture(scope="module")
def sample1(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("face-api-demo")
    return extract(FACE_API, ["package/demo/sample1.jpg"], folder)[0].read_bytes()


@pytest.fixture
def images_bucket(s3_env, sample1) -> str:
    """The bucket the S3Object event reads from, holding the demo photo at the event's key."""
    s3 = boto3.client("s3", endpoint_url=s3_env)
    try:
        s3.create_bucket(Bucket=IMAGES_BUCKET)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    s3.put_object(Bucket=IMAGES_BUCKET, Key="images/sample1.jpg", Body=sample1)
    return IMAGES_BUCKET


@pytest.fixture
def function(s3_bucket, images_bucket, tmp_path):
    """Invoke an event by name in the template's environment; only the store's bucket is overridden
    (the template names its own bucket, which does not exist outside a deployed stack)."""
    environment = invoke.function_environment(
        parameters={"AllowedImageBuckets": images_bucket},
        env_vars={
            "FaceSearchFunction": {
                "FACESEARCH_STORE": f"s3://{s3_bucket}",
                "FACESEARCH_CACHE_DIR": str(tmp_path / "cache"),
                "POWERTOOLS_METRICS_DISABLED": "true",
            }
        },
    )
    assert environment["FACESEARCH_ALLOWED_IMAGE_BUCKETS"] == f"CollectionsBucket,{images_bucket}"

    def run(name_or_event):
        event = load_event(name_or_event) if isinstance(name_or_event, str) else name_or_event
        return invoke.invoke(event, environment)

    return run


@pytest.fixture
def maintenance(s3_bucket, tmp_path):
    """Invoke an event by name on the MaintenanceFunction, with its own environment from the template."""
    environment = invoke.function_environment(
        function="MaintenanceFunction",
        env_vars={
            "MaintenanceFunction": {
                "FACESEARCH_STORE": f"s3://{s3_bucket}",
                "FACESEARCH_CACHE_DIR": str(tmp_path / "maintenance-cache"),
                "POWERTOOLS_METRICS_DISABLED": "true",
            }
        },
    )
    assert environment[invoke.HANDLER_ENV] == "facesearch.handler.maintenance_handler"
    assert "FACESEARCH_ALLOWED_IMAGE_BUCKETS" not in environment

    def run(name: str):
        return invoke.invoke(load_event(name), environment)

    return run


def direct(operation: str, **parameters) -> dict:
    return {"Operation": operation, "Parameters": parameters}


def gateway_body(result: dict) -> dict:
    body = result["body"]
    return json.loads(base64.b64decode(body) if result.get("isBase64Encoded") else body)


def gateway_headers(result: dict) -> dict:
    headers = dict(result.get("headers") or {})
    headers.update({name: values[0] for name, values in (result.get("multiValueHeaders") or {}).items()})
    return headers


def index_sample1(function) -> list[dict]:
    assert function("direct-create-collection")["StatusCode"] == 200
    result = function("apigw-rest-index-faces-s3")
    assert result["statusCode"] == 200, result
    return gateway_body(result)["FaceRecords"]


def test_direct_create_collection(function):
    result = function("direct-create-collection")

    assert result["StatusCode"] == 200
    assert result["Body"]["StatusCode"] == 200
    assert result["Body"]["CollectionArn"].endswith(":collection/demo")
    assert result["Body"]["FaceModelVersion"]
    assert function(direct("DescribeCollection", CollectionId="demo"))["Body"]["FaceCount"] == 0


def test_direct_list_collections(function):
    assert function("direct-list-collections")["Body"]["CollectionIds"] == []
    function("direct-create-collection")

    listed = function("direct-list-collections")

    assert listed["StatusCode"] == 200
    assert listed["Body"]["CollectionIds"] == ["demo"]
    assert len(listed["Body"]["FaceModelVersions"]) == 1


def test_apigw_rest_index_faces_s3(function):
    function("direct-create-collection")

    result = function("apigw-rest-index-faces-s3")

    assert result["statusCode"] == 200
    assert gateway_headers(result)["Content-Type"] == model.JSON_CONTENT_TYPE
    records = gateway_body(result)["FaceRecords"]
    assert len(records) >= 3  # the photo shows three women, each face large and frontal
    assert {record["Face"]["ExternalImageId"] for record in records} == {"sample1"}
    described = function(direct("DescribeCollection", CollectionId="demo"))["Body"]
    assert described["FaceCount"] == len(records)


def test_direct_list_faces(function):
    records = index_sample1(function)

    result = function("direct-list-faces")

    assert result["StatusCode"] == 200
    listed = result["Body"]["Faces"]
    assert sorted(face["FaceId"] for face in listed) == sorted(record["Face"]["FaceId"] for record in records)
    assert all(face["ExternalImageId"] == "sample1" for face in listed)


@pytest.mark.parametrize("name", ["apigw-rest-search-faces-by-image", "apigw-http-search-faces-by-image"])
def test_apigw_search_faces_by_image_finds_the_face_it_was_cropped_from(function, name):
    records = index_sample1(function)

    result = function(name)

    assert result["statusCode"] == 200
    assert gateway_headers(result)["Content-Type"] == model.JSON_CONTENT_TYPE
    body = gateway_body(result)
    assert body["SearchedFaceConfidence"] > 90
    top = body["FaceMatches"][0]
    assert top["Similarity"] >= SIMILARITY_THRESHOLD
    assert top["Face"]["FaceId"] in {record["Face"]["FaceId"] for record in records}
    box = top["Face"]["BoundingBox"]
    centre_x = (box["Left"] + box["Width"] / 2) * SAMPLE1_SIZE[0]
    centre_y = (box["Top"] + box["Height"] / 2) * SAMPLE1_SIZE[1]
    assert CROP_BOX[0] < centre_x < CROP_BOX[2]
    assert CROP_BOX[1] < centre_y < CROP_BOX[3]
    similarities = [match["Similarity"] for match in body["FaceMatches"]]
    assert similarities == sorted(similarities, reverse=True)


def test_direct_detect_faces(function):
    result = function("direct-detect-faces")

    assert result["StatusCode"] == 200
    (face,) = result["Body"]["FaceDetails"]
    assert face["Confidence"] > 90
    assert 0.3 < face["BoundingBox"]["Width"] < 0.9


def test_apigw_rest_error_invalid_collection_id(function):
    pattern = model.input_shape("CreateCollection").members["CollectionId"].metadata["pattern"]

    result = function("apigw-rest-error-invalid-collection-id")

    assert result["statusCode"] == 400
    assert gateway_headers(result)["x-amzn-ErrorType"] == "InvalidParameterException"
    body = gateway_body(result)
    assert body["__type"] == "InvalidParameterException"
    assert body["Message"] == (
        "1 validation error detected: Value 'my photos!' at 'CollectionId' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {pattern}"
    )
    assert function("direct-list-collections")["Body"]["CollectionIds"] == []


def test_scheduled_maintenance_compacts_what_the_writes_left(
    function, maintenance, s3_bucket, s3_env, monkeypatch
):
    from facesearch.store.compaction import FAN_OUT

    # Writes may re-index no face inline, so each IndexFaces leaves one more segment behind: FAN_OUT
    # one-face segments fill the lowest tier, which the job merges into one.
    monkeypatch.setattr("facesearch.store.compaction.INLINE_COMPACTION_MAX_FACES", 0)
    image = load_event("direct-detect-faces")["Parameters"]["Image"]
    function("direct-create-collection")
    for _ in range(FAN_OUT):
        assert function(direct("IndexFaces", CollectionId="demo", Image=image))["StatusCode"] == 200
    s3 = boto3.client("s3", endpoint_url=s3_env)

    def segments() -> list[dict]:
        body = s3.get_object(Bucket=s3_bucket, Key="collections/demo/manifest.json")["Body"].read()
        return json.loads(body)["segments"]

    assert len(segments()) == FAN_OUT

    report = maintenance("scheduled-maintenance")

    assert report == {
        "collections_visited": 1,
        "collections_compacted": 1,
        "segments_collected": 0,  # the merged segments are orphans within their grace period
        "stopped_early": False,
    }
    assert len(segments()) == 1
    assert function(direct("DescribeCollection", CollectionId="demo"))["Body"]["FaceCount"] == FAN_OUT
    found = function(direct("SearchFacesByImage", CollectionId="demo", Image=image, MaxFaces=20))["Body"]
    assert len(found["FaceMatches"]) == FAN_OUT
    assert maintenance("scheduled-maintenance")["collections_compacted"] == 0


def test_every_event_has_a_test():
    tested = {
        "direct-create-collection",
        "direct-list-collections",
        "direct-list-faces",
        "direct-detect-faces",
        "apigw-rest-index-faces-s3",
        "apigw-rest-search-faces-by-image",
        "apigw-http-search-faces-by-image",
        "apigw-rest-error-invalid-collection-id",
        "scheduled-maintenance",
        # tests/functional/test_s3events.py runs these through PhotoIndexFunction.
        "s3-object-created",
        "s3-object-removed",
    }
    events = {path.stem for path in EVENTS_DIR.glob("*.json")} - {"env.local"}
    assert events == tested


def test_events_are_small_enough_to_commit():
    assert all(path.stat().st_size < 64 * 1024 for path in Path(EVENTS_DIR).glob("*.json"))
