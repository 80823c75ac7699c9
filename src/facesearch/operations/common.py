"""Helpers the operations share: a collection's model pack, its image analysed, face details, attributes."""

from __future__ import annotations

from facesearch.operations.images import load_image
from facesearch.protocol.responses import (
    AgeRange,
    BooleanValue,
    Emotion,
    FaceDetail,
    GenderValue,
)
from facesearch.protocol.shapes import ImageRef
from facesearch.store import CollectionView, get_store
from facesearch.telemetry import stage
from facesearch.vision.attributes import MEASURED
from facesearch.vision.faces import BinaryAttribute, DetectedFace, ImageAnalysis
from facesearch.vision.pack import ModelPack, get_pack
from facesearch.vision.pipeline import analyze

NO_FACE_MESSAGE = "There are no faces in the image. Should be at least 1."
FACE_NOT_FOUND_MESSAGE = "faceId was not found in the collection."
# The Attribute value that asks for everything; DEFAULT asks for nothing beyond the default set, and every
# other value names one attribute.
ALL_ATTRIBUTES = "ALL"


def collection_pack(collection_id: str) -> tuple[CollectionView, ModelPack]:
    """The collection as one read sees it (ResourceNotFoundException if absent) and its pinned model pack.

    The request's later reads go through the view, so they cost no further manifest GET.
    """
    view = get_store().view(collection_id)
    return view, get_pack(view.info.face_model_version)


def analyze_image(
    image: ImageRef,
    pack: ModelPack,
    *,
    max_faces: int | None = None,
    attributes: frozenset[str] = frozenset(),
) -> ImageAnalysis:
    """Load the request's image (Bytes or S3Object) and analyse it with the collection's model pack."""
    with stage("LoadImage"):
        data = load_image(image)
    with stage("Analyze"):
        return analyze(
            data, max_faces=max_faces, face_model_version=pack.face_model_version, attributes=attributes
        )


def requested_attributes(attributes: tuple[str, ...]) -> frozenset[str]:
    """The attributes beyond the DEFAULT set to measure, by Rekognition's rules for Attributes lists.

    None or ["DEFAULT"]: the DEFAULT set only; "ALL" anywhere: every attribute; otherwise the DEFAULT set
    plus the named ones. Names this service does not measure (BEARD, MOUTH_OPEN...) are valid requests
    answered without their member: every FaceDetail member is optional.
    """
    if ALL_ATTRIBUTES in attributes:
        return MEASURED
    return MEASURED.intersection(attributes)


def face_detail(face: DetectedFace) -> FaceDetail:
    measured = face.attributes
    age = measured.age_range if measured else None
    gender = measured.gender if measured else None
    eyes = measured.eyes_open if measured else None
    moods = measured.emotions if measured else None
    smile = measured.smile if measured else None
    return FaceDetail(
        bounding_box=face.bounding_box,
        confidence=face.confidence,
        landmarks=face.landmarks,
        pose=face.pose,
        quality=face.quality,
        age_range=AgeRange(low=age[0], high=age[1]) if age else None,
        gender=GenderValue(value=gender[0], confidence=gender[1]) if gender else None,
        eyes_open=BooleanValue(value=eyes.value, confidence=eyes.confidence) if eyes else None,
        mouth_open=_boolean(measured.mouth_open if measured else None),
        emotions=tuple(Emotion(type=t, confidence=c) for t, c in moods) if moods else None,
        smile=_boolean(smile),
    )


def _boolean(attribute: BinaryAttribute | None) -> BooleanValue | None:
    return BooleanValue(value=attribute.value, confidence=attribute.confidence) if attribute else None
