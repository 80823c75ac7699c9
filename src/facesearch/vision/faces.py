"""The pipeline's answer types: one detected face, and an image's analysis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facesearch.domain import BoundingBox, ImageQuality, Landmark, Pose


@dataclass(frozen=True)
class BinaryAttribute:
    """A yes/no attribute (EyesOpen...) and the model's confidence in it, 50..100."""

    value: bool
    confidence: float


@dataclass(frozen=True)
class FaceAttributes:
    """The attributes measured for a face beyond the DEFAULT set; None where not asked for.

    ``age_range`` is (low, high) in years; ``gender`` is (Rekognition GenderType, confidence 50..100).
    ``emotions`` is (Rekognition EmotionName, confidence 0..100) pairs, most confident first.
    """

    age_range: tuple[int, int] | None = None
    gender: tuple[str, float] | None = None
    eyes_open: BinaryAttribute | None = None
    mouth_open: BinaryAttribute | None = None
    emotions: tuple[tuple[str, float], ...] | None = None
    smile: BinaryAttribute | None = None


# Identity equality: a face holds a numpy array, which has no single truth value under ==.
@dataclass(frozen=True, eq=False)
class DetectedFace:
    """One face: box and landmarks as image ratios, pose, quality, and its embedding (if asked for)."""

    bounding_box: BoundingBox
    confidence: float  # 0..100
    landmarks: tuple[Landmark, ...]  # every Rekognition LandmarkType, in the enum's order
    pose: Pose
    quality: ImageQuality
    embedding: np.ndarray | None  # float32 (dim,), L2-normalised; None when embed=False
    size_ratio: float  # the box's longer side over the image's longer side (SMALL_BOUNDING_BOX)
    attributes: FaceAttributes | None = None  # measured only when a request asks for attributes

    @property
    def vector(self) -> np.ndarray:
        """The embedding; only faces analysed with ``embed=True`` have one."""
        if self.embedding is None:
            raise RuntimeError("this face was analysed without its embedding (embed=False)")
        return self.embedding


@dataclass(frozen=True)
class ImageAnalysis:
    """The orientation-corrected image size and its faces, largest box first."""

    width: int
    height: int
    faces: tuple[DetectedFace, ...]
