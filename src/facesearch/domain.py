"""Frozen snake_case value types shared by the pipeline, the store and the protocol layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BoundingBox:
    """A box as ratios of the (orientation-corrected) image width and height, as Rekognition reports it."""

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class FaceRecord:
    """One indexed face as the store keeps it (its vector is stored beside it, not in it)."""

    face_id: str
    image_id: str
    external_image_id: str | None
    bounding_box: BoundingBox
    confidence: float
    index_faces_model_version: str
    user_id: str | None = None
