"""Create/Describe/List/DeleteCollection through an unchanged boto3 client."""

from __future__ import annotations

import datetime
import uuid

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
    expect_error(
        rekognition.create_collection,
        "CreateCollection",
        "ResourceAlreadyExistsException",
        f"The collection id: {collection} already exists",
        CollectionId=collection,
    )


def test_missing_collection(rekognition):
    for call, operation in (
        (rekognition.describe_collection, "DescribeCollection"),
        (rekognition.delete_collection, "DeleteCollection"),
    ):
        expect_error(
            call,
            operation,
            "ResourceNotFoundException",
            "The collection id: nope does not exist",
            CollectionId="nope",
        )


def test_invalid_collection_id(rekognition):
    expect_error(
        rekognition.create_collection,
        "CreateCollection",
        "InvalidParameterException",
        "1 validation error detected: Value 'no spaces' at 'CollectionId' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9_.\\-]+",
        CollectionId="no spaces",
    )


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
    expect_error(
        rekognition.list_collections,
        "ListCollections",
        "InvalidPaginationTokenException",
        "Invalid pagination token: it is malformed or was issued for another listing.",
        NextToken="not-a-token",
    )


def test_list_collections_max_results_out_of_range(rekognition):
    expect_error(
        rekognition.list_collections,
        "ListCollections",
        "InvalidParameterException",
        "1 validation error detected: Value '4097' at 'MaxResults' failed to satisfy constraint: "
        "Member must have value less than or equal to 4096",
        MaxResults=4097,
    )
