"""Create/Describe/List/DeleteCollection through an unchanged boto3 client."""

from __future__ import annotations

import datetime
import uuid

import pytest

from facesearch.vision.pack import get_pack
from tests.conformance.conftest import expect_error


def test_collection_lifecycle(rekognition):
    collection_id = f"life-{uuid.uuid4().hex[:8]}"
    version = get_pack().face_model_version
    # The wire carries epoch seconds, so the lower bound is taken to the second.
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    created = rekognition.create_collection(CollectionId=collection_id)
    after = datetime.datetime.now(datetime.UTC)
    assert created["StatusCode"] == 200
    assert created["FaceModelVersion"] == version
    assert created["CollectionArn"] == f"aws:rekognition:us-east-1:000000000000:collection/{collection_id}"

    described = rekognition.describe_collection(CollectionId=collection_id)
    assert described["FaceCount"] == 0
    assert described["UserCount"] == 0
    assert described["FaceModelVersion"] == version
    assert described["CollectionARN"] == created["CollectionArn"]
    assert before <= described["CreationTimestamp"] <= after

    listed = rekognition.list_collections()
    assert collection_id in listed["CollectionIds"]
    position = listed["CollectionIds"].index(collection_id)
    assert listed["FaceModelVersions"][position] == version

    assert rekognition.delete_collection(CollectionId=collection_id)["StatusCode"] == 200
    assert collection_id not in rekognition.list_collections()["CollectionIds"]


def test_create_existing_collection(rekognition, collection):
    # Real wording (AWS error-handling guide): "The collection id: <Collection Id> already exists."
    # The guide ends its messages with a period that live answers often lack: compare without it.
    message = expect_error(
        rekognition.create_collection,
        "CreateCollection",
        "ResourceAlreadyExistsException",
        CollectionId=collection,
    )
    assert message.removesuffix(".") == f"The collection id: {collection} already exists"


def test_missing_collection(rekognition):
    # Real wording differs per operation ("Various messages depending on the API call", AWS guide):
    # DescribeCollection quoted in aws-solutions/media-insights-on-aws#3, DeleteCollection in a
    # developer's notes of live SDK errors (see README).
    for call, operation, wording in (
        (rekognition.describe_collection, "DescribeCollection", "Collection:nope not found!"),
        (rekognition.delete_collection, "DeleteCollection", "The collection id: nope does not exist"),
    ):
        expect_error(
            call,
            operation,
            "ResourceNotFoundException",
            wording,
            CollectionId="nope",
        )


def test_invalid_collection_id(rekognition):
    # Real constraint violations use the AWS validation wording (kookmin-sw/2019-cap1-2019_4#41, for
    # IndexFaces' externalImageId) and name the member in lowerCamelCase, under ValidationException:
    # only the stable framing is asserted; code and member spelling are open (see README).
    message = expect_error(
        rekognition.create_collection,
        "CreateCollection",
        "InvalidParameterException",
        CollectionId="no spaces",
    )
    assert message.startswith("1 validation error detected: Value 'no spaces' at '")
    assert message.endswith(
        "' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.\\-]+"
    )


@pytest.mark.facesearch_only
def test_tags_are_refused_not_ignored(rekognition):
    collection_id = f"tags-{uuid.uuid4().hex[:8]}"
    # wording: no evidence of the real message (see README): real Rekognition accepts Tags; refusing
    # them is FaceSearch's own choice.
    expect_error(
        rekognition.create_collection,
        "CreateCollection",
        "InvalidParameterException",
        CollectionId=collection_id,
        Tags={"team": "a"},
    )
    # Refused before anything changed.
    assert collection_id not in rekognition.list_collections()["CollectionIds"]


def test_list_collections_pages_are_stable_and_complete(rekognition):
    prefix = f"page-{uuid.uuid4().hex[:6]}"
    ids = [f"{prefix}-{i}" for i in range(5)]
    for collection_id in ids:
        rekognition.create_collection(CollectionId=collection_id)
    seen = []
    for page in rekognition.get_paginator("list_collections").paginate(PaginationConfig={"PageSize": 2}):
        assert len(page["CollectionIds"]) <= 2
        assert len(page["FaceModelVersions"]) == len(page["CollectionIds"])
        seen.extend(page["CollectionIds"])
    assert [c for c in seen if c.startswith(prefix)] == ids
    assert len(seen) == len(set(seen))


def test_list_collections_bad_token(rekognition):
    # Real wording (AWS error-handling guide): "Invalid Token" or "Invalid Pagination Token".
    message = expect_error(
        rekognition.list_collections,
        "ListCollections",
        "InvalidPaginationTokenException",
        NextToken="not-a-token",
    )
    assert message in ("Invalid Token", "Invalid Pagination Token")


def test_list_collections_max_results_out_of_range(rekognition):
    # AWS validation wording, as for test_invalid_collection_id: stable framing only (see README).
    message = expect_error(
        rekognition.list_collections,
        "ListCollections",
        "InvalidParameterException",
        MaxResults=4097,
    )
    assert message.startswith("1 validation error detected: Value '4097' at '")
    assert message.endswith(
        "' failed to satisfy constraint: Member must have value less than or equal to 4096"
    )
