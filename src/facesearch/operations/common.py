"""Helpers the operations share: a collection's pinned model pack, face details, attribute checks."""

from __future__ import annotations

from facesearch.errors import InvalidParameterException
from facesearch.protocol.shapes import FaceDetail
from facesearch.store import CollectionView, get_store
from facesearch.vision.faces import DetectedFace
from facesearch.vision.pack import ModelPack, get_pack

# The attributes this service detects are Rekognition's DEFAULT set (BoundingBox, Confidence, Pose,
# Quality, Landmarks); requesting others (ALL, AGE_RANGE, EMOTIONS...) is refused rather than ignored.
SUPPORTED_ATTRIBUTES = ("DEFAULT",)
NO_FACE_MESSAGE = "There are no faces in the image. Should be at least 1."
FACE_NOT_FOUND_MESSAGE = "faceId was not found in the collection."


def collection_pack(collection_id: str) -> tuple[CollectionView, ModelPack]:
    """The collection as one read sees it (ResourceNotFoundException if absent) and its pinned model pack.

    The request's later reads go through the view, so they cost no further manifest GET.
    """
    view = get_store().view(collection_id)
    return view, get_pack(view.info.face_model_version)


def check_attributes(member: str, attributes: tuple[str, ...]) -> None:
    unsupported = [a for a in attributes if a not in SUPPORTED_ATTRIBUTES]
    if unsupported:
        raise InvalidParameterException(
            f"{member} {', '.join(unsupported)} not supported: this service detects the DEFAULT attributes "
            "only (BoundingBox, Confidence, Landmarks, Pose, Quality)"
        )


def face_detail(face: DetectedFace) -> FaceDetail:
    return FaceDetail(
        bounding_box=face.bounding_box,
        confidence=face.confidence,
        landmarks=face.landmarks,
        pose=face.pose,
        quality=face.quality,
    )
