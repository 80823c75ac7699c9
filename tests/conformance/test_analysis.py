"""DetectFaces and CompareFaces, and identity on real faces: the same person is found, another is not."""

from __future__ import annotations

import pytest

from tests.conformance.conftest import IMAGE_BUCKET, expect_error

DEFAULT_ATTRIBUTES = {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}


def test_detect_faces(rekognition, demo_photos):
    response = rekognition.detect_faces(Image={"Bytes": demo_photos[1]})
    details = response["FaceDetails"]
    assert len(details) >= 3
    for detail in details:
        assert set(detail) == DEFAULT_ATTRIBUTES
        assert -180 <= detail["Pose"]["Yaw"] <= 180
        assert 0 <= detail["Quality"]["Sharpness"] <= 100


def test_detect_faces_from_s3(rekognition, s3, demo_photos):
    s3.put_object(Bucket=IMAGE_BUCKET, Key="two.jpg", Body=demo_photos[1])
    by_s3 = rekognition.detect_faces(Image={"S3Object": {"Bucket": IMAGE_BUCKET, "Name": "two.jpg"}})
    by_bytes = rekognition.detect_faces(Image={"Bytes": demo_photos[1]})
    assert by_s3["FaceDetails"] == by_bytes["FaceDetails"]


@pytest.mark.facesearch_only
def test_detect_faces_refuses_other_attributes(rekognition, demo_photos):
    # wording: no evidence of the real message (see README): real Rekognition returns these
    # attributes; refusing them is FaceSearch's own choice.
    expect_error(
        rekognition.detect_faces,
        "DetectFaces",
        "InvalidParameterException",
        Image={"Bytes": demo_photos[1]},
        Attributes=["EMOTIONS", "DEFAULT", "AGE_RANGE"],
    )


def test_detect_faces_without_faces(rekognition, blank_jpeg):
    assert rekognition.detect_faces(Image={"Bytes": blank_jpeg})["FaceDetails"] == []


def test_compare_faces_same_photo(rekognition, demo_photos):
    response = rekognition.compare_faces(
        SourceImage={"Bytes": demo_photos[0]}, TargetImage={"Bytes": demo_photos[0]}
    )
    assert len(response["FaceMatches"]) == 1
    match = response["FaceMatches"][0]
    assert match["Similarity"] > 99
    assert match["Face"]["BoundingBox"] == response["SourceImageFace"]["BoundingBox"]
    assert len(response["UnmatchedFaces"]) >= 2
    assert set(response["UnmatchedFaces"][0]) == DEFAULT_ATTRIBUTES


def test_compare_faces_threshold(rekognition, demo_photos):
    response = rekognition.compare_faces(
        SourceImage={"Bytes": demo_photos[0]}, TargetImage={"Bytes": demo_photos[0]}, SimilarityThreshold=0
    )
    similarities = [match["Similarity"] for match in response["FaceMatches"]]
    assert similarities == sorted(similarities, reverse=True)
    assert response["UnmatchedFaces"] == []
    assert len(similarities) >= 3


def test_compare_faces_needs_faces_on_both_sides(rekognition, demo_photos, blank_jpeg):
    # The code is documented (CompareFaces API reference: no face in the source or target image is an
    # InvalidParameterException).
    # wording: no evidence of the real message (see README): the only quote, from 2017
    # (aws/aws-sdk-java#971), is the generic "Request has Invalid Parameters".
    expect_error(
        rekognition.compare_faces,
        "CompareFaces",
        "InvalidParameterException",
        SourceImage={"Bytes": blank_jpeg},
        TargetImage={"Bytes": demo_photos[0]},
    )
    expect_error(
        rekognition.compare_faces,
        "CompareFaces",
        "InvalidParameterException",
        SourceImage={"Bytes": demo_photos[0]},
        TargetImage={"Bytes": blank_jpeg},
    )


def test_compare_faces_image_errors(rekognition, demo_photos):
    # Real wording: "Request has invalid image format" (aws/aws-sdk-js#2315,
    # DemocracyClub/yournextrepresentative#2589, AWS error-handling guide); anything after it is ours.
    message = expect_error(
        rekognition.compare_faces,
        "CompareFaces",
        "InvalidImageFormatException",
        SourceImage={"Bytes": demo_photos[0]},
        TargetImage={"Bytes": b"not an image"},
    )
    assert message.startswith("Request has invalid image format")


# --- identity on the labelled face set (skips when ../shared/facedata is absent) ------------------------


@pytest.fixture
def person_collection(rekognition, collection, people):
    """One photo of each person indexed, tagged with the person's name."""
    for name, photos in people.items():
        rekognition.index_faces(
            CollectionId=collection, Image={"Bytes": photos[0]}, ExternalImageId=name, MaxFaces=1
        )
    return collection


def test_another_photo_finds_the_same_person_only(rekognition, person_collection, people):
    for name, photos in people.items():
        response = rekognition.search_faces_by_image(
            CollectionId=person_collection, Image={"Bytes": photos[1]}
        )
        found = [match["Face"]["ExternalImageId"] for match in response["FaceMatches"]]
        assert found == [name], f"{name}: {response['FaceMatches']}"
        assert response["FaceMatches"][0]["Similarity"] >= 80


def test_compare_faces_same_and_different_people(rekognition, people):
    (name_a, photos_a), (_, photos_b), *_ = people.items()
    same = rekognition.compare_faces(SourceImage={"Bytes": photos_a[0]}, TargetImage={"Bytes": photos_a[1]})
    assert len(same["FaceMatches"]) == 1, name_a
    different = rekognition.compare_faces(
        SourceImage={"Bytes": photos_a[0]}, TargetImage={"Bytes": photos_b[0]}
    )
    assert different["FaceMatches"] == []
    assert len(different["UnmatchedFaces"]) >= 1


def test_search_users_by_image_finds_the_person(rekognition, person_collection, people):
    names = list(people)
    for name in names:
        face_id = rekognition.list_faces(CollectionId=person_collection)["Faces"]
        face = next(f for f in face_id if f["ExternalImageId"] == name)
        rekognition.create_user(CollectionId=person_collection, UserId=name)
        rekognition.associate_faces(CollectionId=person_collection, UserId=name, FaceIds=[face["FaceId"]])
    response = rekognition.search_users_by_image(
        CollectionId=person_collection, Image={"Bytes": people[names[0]][1]}
    )
    assert [match["User"]["UserId"] for match in response["UserMatches"]] == [names[0]]


def test_detect_faces_default_attributes_are_the_default(rekognition, demo_photos):
    plain = rekognition.detect_faces(Image={"Bytes": demo_photos[1]})["FaceDetails"]
    explicit = rekognition.detect_faces(Image={"Bytes": demo_photos[1]}, Attributes=["DEFAULT"])[
        "FaceDetails"
    ]
    assert plain == explicit
