"""Rekognition's QualityFilter (NONE/AUTO/LOW/MEDIUM/HIGH): thresholds and UnindexedFaces reasons."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from facesearch.vision.faces import DetectedFace
from facesearch.vision.quality import REKOGNITION_MIN_FACE_RATIO

QUALITY_FILTERS = ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH")


@dataclass(frozen=True)
class QualityBar:
    """The thresholds one QualityFilter level applies; a face failing one gets that reason."""

    min_confidence: float  # LOW_CONFIDENCE, 0..100
    min_size_ratio: float  # SMALL_BOUNDING_BOX: longer box side over the image's longer side
    max_yaw: float  # EXTREME_POSE, degrees
    max_pitch: float  # EXTREME_POSE, degrees
    min_brightness: float  # LOW_BRIGHTNESS, 0..100
    min_sharpness: float  # LOW_SHARPNESS, 0..100
    min_face_quality: float  # LOW_FACE_QUALITY: the combined score of ``face_quality``, 0..100


# LOW is lenient (only faces the embedder cannot use), HIGH keeps frontal, sharp, well-lit faces only.
# Rekognition leaves the levels' values unpublished; these were set by looking at the dev set's
# distributions (largest faces, 1st-99th percentile: confidence >= 99.3, brightness >= 35, sharpness >= 7,
# |yaw| <= 45, |pitch| <= 31; every one passes LOW) and are the product's documented contract.
QUALITY_BARS = {
    "LOW": QualityBar(70.0, REKOGNITION_MIN_FACE_RATIO, 75.0, 60.0, 5.0, 3.0, 5.0),
    "MEDIUM": QualityBar(85.0, 1.5 * REKOGNITION_MIN_FACE_RATIO, 55.0, 45.0, 12.0, 10.0, 20.0),
    "HIGH": QualityBar(95.0, 2.5 * REKOGNITION_MIN_FACE_RATIO, 35.0, 30.0, 20.0, 25.0, 40.0),
}
# Rekognition's IndexFaces default; "Amazon Rekognition chooses the quality bar": ours is LOW.
QUALITY_BARS["AUTO"] = QUALITY_BARS["LOW"]


def face_quality(face: DetectedFace) -> float:
    """One 0..100 score: confidence, times how frontal, sharp and well lit the face is."""
    frontal = math.cos(math.radians(min(abs(face.pose.yaw), 90))) * math.cos(
        math.radians(min(abs(face.pose.pitch), 90))
    )
    lit = min(1.0, face.quality.brightness / 30.0)
    sharp = min(1.0, face.quality.sharpness / 50.0)
    return face.confidence * frontal * lit * sharp


def reasons(face: DetectedFace, bar: QualityBar) -> tuple[str, ...]:
    """Rekognition reason codes for every threshold of ``bar`` the face misses."""
    found = []
    if abs(face.pose.yaw) > bar.max_yaw or abs(face.pose.pitch) > bar.max_pitch:
        found.append("EXTREME_POSE")
    if face.quality.brightness < bar.min_brightness:
        found.append("LOW_BRIGHTNESS")
    if face.quality.sharpness < bar.min_sharpness:
        found.append("LOW_SHARPNESS")
    if face.confidence < bar.min_confidence:
        found.append("LOW_CONFIDENCE")
    if face.size_ratio < bar.min_size_ratio:
        found.append("SMALL_BOUNDING_BOX")
    if face_quality(face) < bar.min_face_quality:
        found.append("LOW_FACE_QUALITY")
    return tuple(found)


def apply_quality_filter(
    faces: Iterable[DetectedFace], quality_filter: str, max_faces: int | None
) -> tuple[list[DetectedFace], list[tuple[DetectedFace, tuple[str, ...]]]]:
    """Split faces into (kept, unindexed with reasons), as IndexFaces does.

    Faces missing the ``quality_filter`` bar are dropped first; if more than ``max_faces`` remain, the
    smallest boxes go with EXCEEDS_MAX_FACES. Kept faces come largest first.
    """
    if quality_filter not in QUALITY_FILTERS:
        raise ValueError(f"unknown quality filter {quality_filter!r}")
    bar = QUALITY_BARS.get(quality_filter)
    passed, unindexed = [], []
    for face in faces:
        why = reasons(face, bar) if bar is not None else ()
        if why:
            unindexed.append((face, why))
        else:
            passed.append(face)
    passed.sort(key=lambda f: f.bounding_box.width * f.bounding_box.height, reverse=True)
    if max_faces is not None and len(passed) > max_faces:
        unindexed.extend((face, ("EXCEEDS_MAX_FACES",)) for face in passed[max_faces:])
        passed = passed[:max_faces]
    return passed, unindexed
