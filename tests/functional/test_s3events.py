"""S3-event indexing through PhotoIndexFunction's handler, in its template environment, on moto S3.

The photo bucket holds the demo photos; the store is another bucket. Checks: the ready events index and
remove; duplicates and stale (out-of-order) deliveries change nothing; an overwritten photo's faces are
replaced; an unindexable photo is recorded, not retried; a failure that may pass is reported for SQS to
retry (then dead-letter); a dead attempt's claim is taken over without doubling faces.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
import uuid

import boto3
import pytest

from facesearch.devtools import invoke
from facesearch.devtools.registry import FACE_API, extract
from facesearch.s3events import CLAIM_LEASE_SECONDS, State
from tests.support.events import load_event

PHOTO_BUCKET = "facesearch-demo-images"  # the bucket the ready events name
COLLECTION = "photos"  # the template's default PhotoCollection


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("demo")
    paths = extract(FACE_API, ["package/demo/sample1.jpg", "package/demo/sample2.jpg"], folder)
    return {path.name: path.read_bytes() for path in paths}


@pytest.fixture
def s3(s3_env):
    client = boto3.client("s3", endpoint_url=s3_env)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=PHOTO_BUCKET)
    return client


@pytest.fixture
def env(s3_bucket, s3, tmp_path):
    overrides = {"FACESEARCH_STORE": f"s3://{s3_bucket}", "POWERTOOLS_METRICS_DISABLED": "true"}
    photo = invoke.function_environment(
        function="PhotoIndexFunction",
        parameters={"PhotoIndexing": "Enabled", "PhotoBucketName": PHOTO_BUCKET},
        env_vars={"PhotoIndexFunction": {**overrides, "FACESEARCH_CACHE_DIR": str(tmp_path / "photo-cache")}},
    )
    api = invoke.function_environment(
        env_vars={"FaceSearchFunction": {**overrides, "FACESEARCH_CACHE_DIR": str(tmp_path / "api-cache")}}
    )
    return {"photo": photo, "api": api, "store_bucket": s3_bucket}


def deliver(env, event) -> list[str]:
    """The messageIds the function reports as failed (for SQS to retry)."""
    result = invoke.invoke(event, env["photo"])
    return [item["itemIdentifier"] for item in result["batchItemFailures"]]


def faces(env) -> list[dict]:
    answer = invoke.invoke({"Operation": "ListFaces", "Parameters": {"CollectionId": COLLECTION}}, env["api"])
    assert answer["StatusCode"] == 200, answer
    return answer["Body"]["Faces"]


def message(detail_type: str, key: str, sequencer: str, bucket: str = PHOTO_BUCKET) -> dict:
    """An SQS event holding one EventBridge S3 event, shaped like events/s3-object-created.json."""
    event = copy.deepcopy(load_event("s3-object-created"))
    record = event["Records"][0]
    body = json.loads(record["body"])
    body["detail-type"] = detail_type
    body["detail"]["bucket"]["name"] = bucket
    body["detail"]["object"] = {"key": key, "sequencer": sequencer}
    record["body"] = json.dumps(body)
    record["messageId"] = str(uuid.uuid4())
    return event


def test_ready_events_index_then_remove_and_duplicates_change_nothing(env, s3, samples):
    s3.put_object(Bucket=PHOTO_BUCKET, Key="photos/sample1.jpg", Body=samples["sample1.jpg"])

    assert deliver(env, load_event("s3-object-created")) == []
    indexed = faces(env)
    assert len(indexed) >= 2
    assert {face["ExternalImageId"] for face in indexed} == {"sample1.jpg"}

    assert deliver(env, load_event("s3-object-created")) == []  # the same delivery again
    assert faces(env) == indexed

    assert deliver(env, load_event("s3-object-removed")) == []
    assert faces(env) == []
    assert deliver(env, load_event("s3-object-created")) == []  # late: older than the removal
    assert faces(env) == []


def test_an_overwritten_photo_replaces_its_faces(env, s3, samples):
    s3.put_object(Bucket=PHOTO_BUCKET, Key="photos/party/me.jpg", Body=samples["sample1.jpg"])
    assert deliver(env, message("Object Created", "photos/party/me.jpg", "0100")) == []
    first = {face["FaceId"] for face in faces(env)}

    s3.put_object(Bucket=PHOTO_BUCKET, Key="photos/party/me.jpg", Body=samples["sample2.jpg"])
    assert deliver(env, message("Object Created", "photos/party/me.jpg", "0200")) == []

    second = faces(env)
    assert {face["ExternalImageId"] for face in second} == {"party:me.jpg"}
    assert not first & {face["FaceId"] for face in second}


def test_s3_notification_bodies_with_encoded_keys(env, s3, samples):
    s3.put_object(Bucket=PHOTO_BUCKET, Key="photos/my photo.jpg", Body=samples["sample1.jpg"])
    notification = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": PHOTO_BUCKET},
                    "object": {"key": "photos/my+photo.jpg", "sequencer": "00AA", "eTag": "x"},
                },
            }
        ]
    }
    event = message("Object Created", "unused", "0")
    event["Records"][0]["body"] = json.dumps(notification)

    assert deliver(env, event) == []
    assert {face["ExternalImageId"] for face in faces(env)} == {"my_photo.jpg"}


def test_keys_outside_the_prefix_and_other_files_are_ignored(env, s3, samples):
    s3.put_object(Bucket=PHOTO_BUCKET, Key="other/sample1.jpg", Body=samples["sample1.jpg"])
    s3.put_object(Bucket=PHOTO_BUCKET, Key="photos/readme.txt", Body=b"hello")

    assert deliver(env, message("Object Created", "other/sample1.jpg", "01")) == []
    assert deliver(env, message("Object Created", "photos/readme.txt", "01")) == []
    assert faces(env) == []


def test_an_unindexable_photo_is_recorded_not_retried(env, s3):
    s3.put_object(Bucket=PHOTO_BUCKET, Key="photos/broken.jpg", Body=b"\xff\xd8 not a jpeg")

    assert deliver(env, message("Object Created", "photos/broken.jpg", "01")) == []

    states = s3.list_objects_v2(Bucket=env["store_bucket"], Prefix=f"collections/{COLLECTION}/s3events/")
    (only,) = states["Contents"]
    state = json.loads(s3.get_object(Bucket=env["store_bucket"], Key=only["Key"])["Body"].read())
    assert state["state"] == "failed"
    assert state["error"].startswith("InvalidImageFormatException")


def test_a_failure_that_may_pass_is_reported_for_retry(env, s3, samples):
    s3.put_object(Bucket=PHOTO_BUCKET, Key="photos/sample1.jpg", Body=samples["sample1.jpg"])
    env["photo"]["FACESEARCH_ALLOWED_IMAGE_BUCKETS"] = "some-other-bucket"  # a misconfiguration
    event = message("Object Created", "photos/sample1.jpg", "01")
    ok = message("Object Created", "photos/readme.txt", "01")
    event["Records"].append(ok["Records"][0])

    assert deliver(env, event) == [event["Records"][0]["messageId"]]
    assert faces(env) == []

    env["photo"]["FACESEARCH_ALLOWED_IMAGE_BUCKETS"] = PHOTO_BUCKET  # fixed: SQS redelivers
    assert deliver(env, event) == []
    assert len(faces(env)) >= 2


def _put_state(s3, env, key: str, state: State) -> None:
    from hashlib import sha256

    digest = sha256(f"{PHOTO_BUCKET}/{key}".encode()).hexdigest()
    s3.put_object(
        Bucket=env["store_bucket"], Key=f"collections/{COLLECTION}/s3events/{digest}.json", Body=state.body()
    )


def test_a_live_claim_is_retried_and_a_dead_ones_faces_are_not_doubled(env, s3, samples):
    s3.put_object(Bucket=PHOTO_BUCKET, Key="photos/sample1.jpg", Body=samples["sample1.jpg"])
    event = message("Object Created", "photos/sample1.jpg", "05")
    # A first attempt indexed the photo and died before recording it.
    assert deliver(env, message("Object Created", "photos/sample1.jpg", "04")) == []
    dead_faces = faces(env)
    _put_state(
        s3, env, "photos/sample1.jpg", State("pending", "05", lease_until=time.time() + CLAIM_LEASE_SECONDS)
    )

    assert deliver(env, event) == [event["Records"][0]["messageId"]]  # still held: retry later

    _put_state(s3, env, "photos/sample1.jpg", State("pending", "05", lease_until=time.time() - 1))
    assert deliver(env, event) == []
    after = faces(env)
    assert len(after) == len(dead_faces)
    assert not {face["FaceId"] for face in dead_faces} & {face["FaceId"] for face in after}


def test_a_removed_photo_indexed_another_way_loses_its_faces(env, s3, samples):
    created = invoke.invoke(
        {"Operation": "CreateCollection", "Parameters": {"CollectionId": COLLECTION}}, env["api"]
    )
    assert created["StatusCode"] == 200
    s3.put_object(Bucket=PHOTO_BUCKET, Key="photos/old.jpg", Body=samples["sample2.jpg"])
    indexed = invoke.invoke(
        {
            "Operation": "IndexFaces",
            "Parameters": {
                "CollectionId": COLLECTION,
                "Image": {"S3Object": {"Bucket": PHOTO_BUCKET, "Name": "photos/old.jpg"}},
                "ExternalImageId": "old.jpg",
            },
        },
        {**env["api"], "FACESEARCH_ALLOWED_IMAGE_BUCKETS": PHOTO_BUCKET},
    )
    assert indexed["StatusCode"] == 200, indexed

    assert deliver(env, message("Object Deleted", "photos/old.jpg", "09")) == []
    assert faces(env) == []
