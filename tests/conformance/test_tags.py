"""TagResource, UntagResource, ListTagsForResource and CreateCollection Tags, through an unchanged boto3."""

from __future__ import annotations

import uuid

from tests.conformance.conftest import expect_error


def collection_arn(rekognition, collection_id: str) -> str:
    return rekognition.describe_collection(CollectionId=collection_id)["CollectionARN"]


def test_tags_round_trip(rekognition, collection):
    arn = collection_arn(rekognition, collection)
    assert rekognition.list_tags_for_resource(ResourceArn=arn)["Tags"] == {}
    rekognition.tag_resource(ResourceArn=arn, Tags={"team": "search", "env": "dev"})
    rekognition.tag_resource(ResourceArn=arn, Tags={"env": "prod", "owner": "Grüße @a.b/c=d+e-f:g"})
    tags = rekognition.list_tags_for_resource(ResourceArn=arn)["Tags"]
    assert tags == {"team": "search", "env": "prod", "owner": "Grüße @a.b/c=d+e-f:g"}
    rekognition.untag_resource(ResourceArn=arn, TagKeys=["team", "never-set"])
    assert rekognition.list_tags_for_resource(ResourceArn=arn)["Tags"] == {
        "env": "prod",
        "owner": "Grüße @a.b/c=d+e-f:g",
    }
    # The collection itself is untouched by tagging.
    assert rekognition.describe_collection(CollectionId=collection)["FaceCount"] == 0


def test_the_arn_with_its_scheme_names_the_same_collection(rekognition, collection):
    arn = collection_arn(rekognition, collection)
    assert not arn.startswith("arn:")  # Rekognition answers collection ARNs without the scheme
    rekognition.tag_resource(ResourceArn=f"arn:{arn}", Tags={"k": "v"})
    assert rekognition.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"k": "v"}


def test_create_collection_with_tags_and_tags_go_with_the_collection(rekognition):
    collection_id = f"tags-{uuid.uuid4().hex[:8]}"
    created = rekognition.create_collection(CollectionId=collection_id, Tags={"team": "a", "empty": ""})
    arn = created["CollectionArn"]
    assert rekognition.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "a", "empty": ""}
    rekognition.delete_collection(CollectionId=collection_id)
    expect_error(
        rekognition.list_tags_for_resource,
        "ListTagsForResource",
        "ResourceNotFoundException",
        ResourceArn=arn,
    )
    rekognition.create_collection(CollectionId=collection_id)
    assert rekognition.list_tags_for_resource(ResourceArn=arn)["Tags"] == {}
    rekognition.delete_collection(CollectionId=collection_id)


def test_unknown_collection_is_not_found(rekognition, collection):
    arn = collection_arn(rekognition, collection).replace(collection, f"ghost-{uuid.uuid4().hex[:8]}")
    for call, operation, params in [
        (rekognition.tag_resource, "TagResource", {"Tags": {"k": "v"}}),
        (rekognition.untag_resource, "UntagResource", {"TagKeys": ["k"]}),
        (rekognition.list_tags_for_resource, "ListTagsForResource", {}),
    ]:
        expect_error(call, operation, "ResourceNotFoundException", ResourceArn=arn, **params)


def test_other_region_account_or_resource_type_is_not_found(rekognition, collection):
    arn = collection_arn(rekognition, collection)
    _, service, region, account, resource = arn.split(":", 4)
    for other in [
        f"aws:{service}:eu-west-9:{account}:{resource}",
        f"aws:{service}:{region}:999999999999:{resource}",
        f"aws:{service}:{region}:{account}:streamprocessor/{collection}",
    ]:
        expect_error(
            rekognition.tag_resource,
            "TagResource",
            "ResourceNotFoundException",
            ResourceArn=other,
            Tags={"k": "v"},
        )
    assert rekognition.list_tags_for_resource(ResourceArn=arn)["Tags"] == {}


def test_malformed_arn_is_invalid(rekognition, collection):
    for bad in [
        "not-an-arn-at-all-but-long-enough",
        f"arn:aws:s3:::bucket/{collection}",
        f"aws:rekognition:us-east-1:000000000000:collection/bad id {collection}",
    ]:
        expect_error(
            rekognition.list_tags_for_resource,
            "ListTagsForResource",
            "InvalidParameterException",
            ResourceArn=bad,
        )


def test_reserved_prefix_in_any_case_is_refused_and_nothing_changes(rekognition, collection):
    arn = collection_arn(rekognition, collection)
    for key in ["aws:team", "AWS:team", "Aws:Team"]:
        expect_error(
            rekognition.tag_resource,
            "TagResource",
            "InvalidParameterException",
            ResourceArn=arn,
            Tags={"fine": "1", key: "v"},
        )
    assert rekognition.list_tags_for_resource(ResourceArn=arn)["Tags"] == {}
    collection_id = f"tags-{uuid.uuid4().hex[:8]}"
    expect_error(
        rekognition.create_collection,
        "CreateCollection",
        "InvalidParameterException",
        CollectionId=collection_id,
        Tags={"AWS:x": "v"},
    )
    assert collection_id not in rekognition.list_collections()["CollectionIds"]


def test_model_patterns_and_lengths_are_enforced(rekognition, collection):
    arn = collection_arn(rekognition, collection)
    # (An empty key never leaves boto3: it checks minimum lengths itself.)
    for tags in [{"bad#key": "v"}, {"k": "bad#value"}, {"k" * 129: "v"}, {"k": "v" * 257}]:
        expect_error(
            rekognition.tag_resource, "TagResource", "InvalidParameterException", ResourceArn=arn, Tags=tags
        )
    expect_error(
        rekognition.untag_resource,
        "UntagResource",
        "InvalidParameterException",
        ResourceArn=arn,
        TagKeys=["k" * 129],
    )
    assert rekognition.list_tags_for_resource(ResourceArn=arn)["Tags"] == {}


def test_more_than_50_tags_exceeds_the_quota(rekognition, collection):
    arn = collection_arn(rekognition, collection)
    rekognition.tag_resource(ResourceArn=arn, Tags={f"k{i}": str(i) for i in range(40)})
    # Overwriting existing keys does not count twice: exactly 50 is allowed.
    rekognition.tag_resource(ResourceArn=arn, Tags={f"k{i}": "x" for i in range(30, 50)})
    assert len(rekognition.list_tags_for_resource(ResourceArn=arn)["Tags"]) == 50
    expect_error(
        rekognition.tag_resource,
        "TagResource",
        "ServiceQuotaExceededException",
        ResourceArn=arn,
        Tags={"one-more": "v"},
    )
    assert len(rekognition.list_tags_for_resource(ResourceArn=arn)["Tags"]) == 50
    collection_id = f"tags-{uuid.uuid4().hex[:8]}"
    expect_error(
        rekognition.create_collection,
        "CreateCollection",
        "ServiceQuotaExceededException",
        CollectionId=collection_id,
        Tags={f"k{i}": "v" for i in range(51)},
    )
    assert collection_id not in rekognition.list_collections()["CollectionIds"]
