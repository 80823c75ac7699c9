"""Attribute request rules, AgeRange from an age distribution, and dlib's chip geometry (no models needed)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facesearch.operations.common import requested_attributes
from facesearch.vision import align
from facesearch.vision.attributes import (
    AGE_RANGE,
    DLIB_CHIP_TEMPLATE,
    DLIB_FIVE_FROM_68,
    EMOTIONS,
    EYES_OPEN,
    GENDER,
    MEASURED,
    SMILE,
    age_range,
    dlib_chip,
)

AGES = np.array([0.25, *range(1, 81)], dtype=np.float64)


@pytest.mark.parametrize(
    ("asked", "measured"),
    [
        ((), frozenset()),
        (("DEFAULT",), frozenset()),
        (("ALL",), MEASURED),
        (("ALL", "DEFAULT"), MEASURED),
        (("DEFAULT", "ALL"), MEASURED),
        (("GENDER",), frozenset({GENDER})),
        (("AGE_RANGE", "DEFAULT", "EYES_OPEN"), frozenset({AGE_RANGE, EYES_OPEN})),
        (("BEARD", "FACE_OCCLUDED"), frozenset()),  # valid names this service does not measure
        (("EMOTIONS",), frozenset({EMOTIONS})),
        (("SMILE", "DEFAULT"), frozenset({SMILE})),
    ],
)
def test_requested_attributes_follow_rekognition_rules(asked, measured):
    assert requested_attributes(asked) == measured


def test_a_sharp_age_distribution_still_gets_the_minimum_width():
    probabilities = np.zeros(81)
    probabilities[30] = 1.0
    assert age_range(probabilities, AGES, 0.8, 5.0) == (25, 35)


def test_a_broad_age_distribution_gets_the_run_holding_the_mass():
    probabilities = np.clip(20.0 - np.abs(AGES - 40.0), 0.0, None)  # triangular over 20..60
    low, high = age_range(probabilities / probabilities.sum(), AGES, 0.8, 5.0)
    # 80 % of a triangle of half-width 20 lies within 20 (1 - sqrt(0.2)) = 11.1 years of its peak.
    assert 27 <= low <= 30 and 50 <= high <= 53 and abs(low + high - 80) <= 2
    assert age_range(np.eye(81)[0], AGES, 0.8, 5.0)[0] == 0  # never below zero


def _gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, (x + y) / 2], axis=2).astype(np.uint8))


def test_chip_of_a_large_face_matches_the_unshrunk_warp():
    """The crop-and-box-shrink before the bilinear warp keeps the geometry: on a linear gradient the
    chip equals a direct warp of the whole image."""
    image = _gradient(1600, 1200)
    padding, size = 0.2, 32
    template = (np.asarray(DLIB_CHIP_TEMPLATE) + padding) / (2 * padding + 1) * size
    points = np.zeros((68, 2))
    # A face about 600 px wide, so the chip shrinks it about 19x.
    points[list(DLIB_FIVE_FROM_68)] = template * 19.0 + np.array([400.0, 300.0])
    direct = align.warp(image, align.similarity_transform(points[list(DLIB_FIVE_FROM_68)], template), size)
    chip = dlib_chip(image, points, size, padding)
    assert chip.shape == (size, size, 3)
    assert np.abs(chip.astype(int) - direct.astype(int)).max() <= 3
