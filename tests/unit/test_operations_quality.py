"""QualityFilter rules on synthetic faces (each threshold yields its Rekognition reason), pixel measures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facesearch.domain import BoundingBox, ImageQuality, Pose
from facesearch.operations.quality import QUALITY_BARS, QUALITY_FILTERS, apply_quality_filter
from facesearch.vision.faces import DetectedFace
from facesearch.vision.quality import brightness_and_sharpness

GOOD = DetectedFace(
    bounding_box=BoundingBox(left=0.1, top=0.1, width=0.3, height=0.4),
    confidence=99.9,
    landmarks=(),
    pose=Pose(roll=0.0, yaw=5.0, pitch=-3.0),
    quality=ImageQuality(brightness=60.0, sharpness=80.0),
    embedding=None,
    size_ratio=0.4,
)


def face(**changes) -> DetectedFace:
    return replace(GOOD, **changes)


def test_the_filters_are_rekognitions_enum():
    import botocore.loaders

    model = botocore.loaders.Loader().load_service_model("rekognition", "service-2")
    assert list(QUALITY_FILTERS) == model["shapes"]["QualityFilter"]["enum"]


@pytest.mark.parametrize("level", ["AUTO", "LOW", "MEDIUM", "HIGH"])
@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"pose": Pose(roll=0.0, yaw=80.0, pitch=0.0)}, "EXTREME_POSE"),
        ({"pose": Pose(roll=0.0, yaw=0.0, pitch=-65.0)}, "EXTREME_POSE"),
        ({"quality": ImageQuality(brightness=2.0, sharpness=80.0)}, "LOW_BRIGHTNESS"),
        ({"quality": ImageQuality(brightness=60.0, sharpness=1.0)}, "LOW_SHARPNESS"),
        ({"confidence": 65.0}, "LOW_CONFIDENCE"),
        ({"size_ratio": 0.015}, "SMALL_BOUNDING_BOX"),
    ],
)
def test_each_threshold_gives_its_reason(level, changes, reason):
    bad = face(**changes)
    kept, unindexed = apply_quality_filter([GOOD, bad], level, None)
    assert kept == [GOOD]
    assert len(unindexed) == 1 and unindexed[0][0] is bad
    assert reason in unindexed[0][1]


def test_combined_low_quality_is_reported_even_when_each_measure_passes():
    # Each measure just above its MEDIUM bar, together well below the combined score's bar.
    bar = QUALITY_BARS["MEDIUM"]
    weak = face(
        confidence=bar.min_confidence + 1,
        pose=Pose(roll=0.0, yaw=bar.max_yaw - 1, pitch=bar.max_pitch - 1),
        quality=ImageQuality(brightness=bar.min_brightness + 1, sharpness=bar.min_sharpness + 1),
    )
    _, unindexed = apply_quality_filter([weak], "MEDIUM", None)
    assert unindexed == [(weak, ("LOW_FACE_QUALITY",))]


def test_levels_are_progressively_stricter():
    borderline = face(pose=Pose(roll=0.0, yaw=40.0, pitch=0.0), quality=ImageQuality(30.0, 15.0))
    kept = {level: len(apply_quality_filter([borderline], level, None)[0]) for level in QUALITY_FILTERS}
    assert kept == {"NONE": 1, "AUTO": 1, "LOW": 1, "MEDIUM": 1, "HIGH": 0}


def test_none_keeps_every_face_but_still_applies_max_faces():
    terrible = face(confidence=61.0, quality=ImageQuality(0.0, 0.0), size_ratio=0.001)
    kept, unindexed = apply_quality_filter([terrible], "NONE", None)
    assert kept == [terrible] and unindexed == []


def test_max_faces_drops_the_smallest_boxes_after_quality():
    sizes = [0.1, 0.4, 0.2, 0.3]
    faces = [face(bounding_box=BoundingBox(0.0, 0.0, s, s)) for s in sizes]
    blurry = face(bounding_box=BoundingBox(0.0, 0.0, 0.9, 0.9), quality=ImageQuality(60.0, 0.5))
    kept, unindexed = apply_quality_filter([*faces, blurry], "AUTO", 2)
    assert [f.bounding_box.width for f in kept] == [0.4, 0.3]
    assert [(f.bounding_box.width, why) for f, why in unindexed] == [
        (0.9, ("LOW_SHARPNESS", "LOW_FACE_QUALITY")),
        (0.2, ("EXCEEDS_MAX_FACES",)),
        (0.1, ("EXCEEDS_MAX_FACES",)),
    ]


def test_unknown_filter_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown quality filter 'SOMETIMES'"):
        apply_quality_filter([GOOD], "SOMETIMES", None)


def test_brightness_and_sharpness_measures():
    rng = np.random.default_rng(0)
    textured = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    flat_dark = np.full((112, 112, 3), 10, dtype=np.uint8)
    brightness, sharpness = brightness_and_sharpness(textured)
    assert 45 < brightness < 55 and sharpness > 99
    brightness, sharpness = brightness_and_sharpness(flat_dark)
    assert brightness == pytest.approx(10 / 255 * 100, abs=0.1) and sharpness == 0.0
