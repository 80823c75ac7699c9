"""CreateUser, DeleteUser, ListUsers, AssociateFaces, DisassociateFaces, SearchUsers, SearchUsersByImage."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from facesearch.vision.pack import get_pack
from tests.conformance.conftest import expect_error


@pytest.fixture
def faces(rekognition, collection, demo_photos) -> list[str]:
    """Face ids of demo photo 1 (different people), largest first."""
    response = rekognition.index_faces(CollectionId=collection, Image={"Bytes": demo_photos[0]})
    return [record["Face"]["FaceId"] for record in response["FaceRecords"]]


def test_create_list_delete_users(rekognition, collection):
    for user_id in ("carol", "alice", "bob"):
        assert (
            rekognition.create_user(CollectionId=collection, UserId=user_id)["ResponseMetadata"][
                "HTTPStatusCode"
            ]
            == 200
        )
    pages = list(
        rekognition.get_paginator("list_users").paginate(
            CollectionId=collection, PaginationConfig={"PageSize": 2}
        )
    )
    users = [user for page in pages for user in page["Users"]]
    assert users == [{"UserId": u, "UserStatus": "CREATED"} for u in ("alice", "bob", "carol")]
    assert len(pages) == 2
    assert rekognition.describe_collection(CollectionId=collection)["UserCount"] == 3
    rekognition.delete_user(CollectionId=collection, UserId="bob")
    assert [u["UserId"] for u in rekognition.list_users(CollectionId=collection)["Users"]] == [
        "alice",
        "carol",
    ]


def test_create_existing_user_conflicts(rekognition, collection):
    rekognition.create_user(CollectionId=collection, UserId="alice")
    # The code is documented (ConflictException: "A User with the same Id already exists within the
    # collection"). wording: no evidence of the real message (see README).
    expect_error(
        rekognition.create_user,
        "CreateUser",
        "ConflictException",
        CollectionId=collection,
        UserId="alice",
    )


def test_client_request_token_replays_and_refuses_other_parameters(rekognition, collection):
    rekognition.create_user(CollectionId=collection, UserId="alice", ClientRequestToken="token-1")
    # The same request again is answered as the first time, not with ConflictException.
    rekognition.create_user(CollectionId=collection, UserId="alice", ClientRequestToken="token-1")
    # Real wording (AWS error-handling guide): "The ClientRequestToken: <Token> you have supplied is
    # already in use."; the trailing period is compared loosely.
    message = expect_error(
        rekognition.create_user,
        "CreateUser",
        "IdempotentParameterMismatchException",
        CollectionId=collection,
        UserId="bob",
        ClientRequestToken="token-1",
    )
    assert message.removesuffix(".") == "The ClientRequestToken: token-1 you have supplied is already in use"
    assert [u["UserId"] for u in rekognition.list_users(CollectionId=collection)["Users"]] == ["alice"]


def test_user_errors(rekognition, collection, faces):
    # The codes are documented (DeleteUser, DisassociateFaces API references: an unknown user or
    # collection is a ResourceNotFoundException).
    # wording: no evidence of the real message (see README): none found quoted for the user operations.
    for call, operation, params in (
        (rekognition.delete_user, "DeleteUser", {}),
        (rekognition.associate_faces, "AssociateFaces", {"FaceIds": faces[:1]}),
        (rekognition.disassociate_faces, "DisassociateFaces", {"FaceIds": faces[:1]}),
        (rekognition.search_users, "SearchUsers", {}),
    ):
        expect_error(
            call,
            operation,
            "ResourceNotFoundException",
            CollectionId=collection,
            UserId="ghost",
            **params,
        )
    for call, operation, params in (
        (rekognition.list_users, "ListUsers", {}),
        (rekognition.create_user, "CreateUser", {"UserId": "alice"}),
        (rekognition.search_users, "SearchUsers", {"UserId": "alice"}),
    ):
        expect_error(
            call,
            operation,
            "ResourceNotFoundException",
            CollectionId="missing",
            **params,
        )


def test_associate_and_disassociate(rekognition, collection, faces):
    rekognition.create_user(CollectionId=collection, UserId="alice")
    rekognition.create_user(CollectionId=collection, UserId="bob")
    first = rekognition.associate_faces(CollectionId=collection, UserId="alice", FaceIds=faces[:1])
    assert first["AssociatedFaces"] == [{"FaceId": faces[0]}]
    assert first["UnsuccessfulFaceAssociations"] == []
    assert first["UserStatus"] == "ACTIVE"

    # Another person's face does not match alice's face at the default UserMatchThreshold (75).
    unknown = "11111111-2222-4333-8444-555555555555"
    second = rekognition.associate_faces(CollectionId=collection, UserId="alice", FaceIds=[faces[1], unknown])
    assert second["AssociatedFaces"] == []
    reasons = {item["FaceId"]: item for item in second["UnsuccessfulFaceAssociations"]}
    assert reasons[unknown]["Reasons"] == ["FACE_NOT_FOUND"]
    assert reasons[faces[1]]["Reasons"] == ["LOW_MATCH_CONFIDENCE"]
    assert 0 <= reasons[faces[1]]["Confidence"] < 75
    # With UserMatchThreshold 0 the same face is accepted.
    third = rekognition.associate_faces(
        CollectionId=collection, UserId="alice", FaceIds=[faces[1]], UserMatchThreshold=0
    )
    assert third["AssociatedFaces"] == [{"FaceId": faces[1]}]

    taken = rekognition.associate_faces(CollectionId=collection, UserId="bob", FaceIds=[faces[0]])
    assert taken["UnsuccessfulFaceAssociations"] == [
        {"FaceId": faces[0], "UserId": "alice", "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]}
    ]
    listed = rekognition.list_faces(CollectionId=collection, UserId="alice")["Faces"]
    assert sorted(face["FaceId"] for face in listed) == sorted(faces[:2])
    assert all(face["UserId"] == "alice" for face in listed)

    deleted = rekognition.delete_faces(CollectionId=collection, FaceIds=[faces[0]])
    assert deleted["UnsuccessfulFaceDeletions"] == [
        {"FaceId": faces[0], "UserId": "alice", "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]}
    ]

    out = rekognition.disassociate_faces(CollectionId=collection, UserId="bob", FaceIds=[faces[0]])
    assert out["UnsuccessfulFaceDisassociations"] == [
        {"FaceId": faces[0], "UserId": "alice", "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]}
    ]
    out = rekognition.disassociate_faces(CollectionId=collection, UserId="alice", FaceIds=faces[:2])
    assert sorted(item["FaceId"] for item in out["DisassociatedFaces"]) == sorted(faces[:2])
    assert out["UserStatus"] == "CREATED"


def test_search_users_by_face_and_by_image(rekognition, collection, faces, demo_photos, blank_jpeg):
    rekognition.create_user(CollectionId=collection, UserId="alice")
    rekognition.associate_faces(CollectionId=collection, UserId="alice", FaceIds=faces[:1])
    version = get_pack().face_model_version

    by_face = rekognition.search_users(CollectionId=collection, FaceId=faces[0])
    assert by_face["SearchedFace"] == {"FaceId": faces[0]}
    assert by_face["FaceModelVersion"] == version
    assert [m["User"] for m in by_face["UserMatches"]] == [{"UserId": "alice", "UserStatus": "ACTIVE"}]
    assert by_face["UserMatches"][0]["Similarity"] > 99

    by_user = rekognition.search_users(CollectionId=collection, UserId="alice")
    assert by_user["SearchedUser"] == {"UserId": "alice"}
    assert by_user["UserMatches"] == []  # the user itself is not a match

    by_image = rekognition.search_users_by_image(CollectionId=collection, Image={"Bytes": demo_photos[0]})
    assert [m["User"]["UserId"] for m in by_image["UserMatches"]] == ["alice"]
    assert set(by_image["SearchedFace"]["FaceDetail"]) == {
        "BoundingBox",
        "Confidence",
        "Landmarks",
        "Pose",
        "Quality",
    }
    assert by_image["UnsearchedFaces"]
    assert all(face["Reasons"] == ["FACE_NOT_LARGEST"] for face in by_image["UnsearchedFaces"])

    # No face at all is an empty answer for SearchUsersByImage (not an error, unlike SearchFacesByImage).
    empty = rekognition.search_users_by_image(CollectionId=collection, Image={"Bytes": blank_jpeg})
    assert empty["UserMatches"] == [] and empty["UnsearchedFaces"] == []
    assert "SearchedFace" not in empty


def test_search_users_needs_exactly_one_subject(rekognition, collection, faces):
    # wording: no evidence of the real message (see README).
    for params in ({}, {"UserId": "alice", "FaceId": faces[0]}):
        expect_error(
            rekognition.search_users,
            "SearchUsers",
            "InvalidParameterException",
            CollectionId=collection,
            **params,
        )


def test_associate_faces_list_limit(rekognition, collection):
    message = expect_error(
        rekognition.associate_faces,
        "AssociateFaces",
        "InvalidParameterException",
        CollectionId=collection,
        UserId="alice",
        FaceIds=[f"11111111-2222-4333-8444-{i:012d}" for i in range(101)],
    )
    # AWS validation wording: stable framing only; by analogy real Rekognition most likely answers
    # ValidationException and spells the member in lowerCamelCase (see README, row 36).
    assert message.startswith("1 validation error detected: Value '")
    assert message.endswith(
        "' failed to satisfy constraint: Member must have length less than or equal to 100"
    )


def test_associate_faces_token_replays_the_first_answer(rekognition, collection, faces):
    rekognition.create_user(CollectionId=collection, UserId="alice")
    params = {
        "CollectionId": collection,
        "UserId": "alice",
        "FaceIds": faces[:1],
        "ClientRequestToken": "assoc-1",
    }
    first = rekognition.associate_faces(**params)
    again = rekognition.associate_faces(**params)
    # Without the token the repeat would report nothing associated (the face is already alice's).
    assert again["AssociatedFaces"] == first["AssociatedFaces"] == [{"FaceId": faces[0]}]
    # Real wording (AWS error-handling guide), as in test_client_request_token_replays_...
    message = expect_error(
        rekognition.associate_faces,
        "AssociateFaces",
        "IdempotentParameterMismatchException",
        **{**params, "FaceIds": faces[1:2]},
    )
    assert message.removesuffix(".") == "The ClientRequestToken: assoc-1 you have supplied is already in use"


def test_list_users_token_from_another_collection(rekognition, collection):
    for user_id in ("a", "b"):
        rekognition.create_user(CollectionId=collection, UserId=user_id)
    token = rekognition.list_users(CollectionId=collection, MaxResults=1)["NextToken"]
    other = f"{collection}-other"
    rekognition.create_collection(CollectionId=other)
    # Real wording (AWS error-handling guide): "Invalid Token" or "Invalid Pagination Token".
    message = expect_error(
        rekognition.list_users,
        "ListUsers",
        "InvalidPaginationTokenException",
        CollectionId=other,
        NextToken=token,
    )
    assert message in ("Invalid Token", "Invalid Pagination Token")


def test_a_user_holds_at_most_100_faces(rekognition, collection, demo_photos):
    out = io.BytesIO()
    photo = Image.open(io.BytesIO(demo_photos[0]))
    photo.resize((640, round(photo.height * 640 / photo.width))).save(out, format="JPEG")
    face_ids: list[str] = []
    while len(face_ids) <= 100:
        response = rekognition.index_faces(CollectionId=collection, Image={"Bytes": out.getvalue()})
        face_ids += [record["Face"]["FaceId"] for record in response["FaceRecords"]]
    rekognition.create_user(CollectionId=collection, UserId="crowd")
    full = rekognition.associate_faces(
        CollectionId=collection, UserId="crowd", FaceIds=face_ids[:100], UserMatchThreshold=0
    )
    assert len(full["AssociatedFaces"]) == 100
    # The code is documented (AssociateFaces API reference: past 100 faces per UserID "a
    # ServiceQuotaExceededException will result"). wording: no evidence of the real message (see README).
    expect_error(
        rekognition.associate_faces,
        "AssociateFaces",
        "ServiceQuotaExceededException",
        CollectionId=collection,
        UserId="crowd",
        FaceIds=face_ids[100:101],
        UserMatchThreshold=0,
    )
