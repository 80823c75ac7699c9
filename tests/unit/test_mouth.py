"""MouthOpen geometry on synthetic 68-point sets: inner-lip gap over mouth width, and its confidence."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.operations.common import requested_attributes
from facesearch.vision.attributes import MEASURED, MOUTH_OPEN
from facesearch.vision.mouth import MOUTH_OPEN_THRESHOLD, mouth_gap_ratio, mouth_open


def mouth(gap: float, width: float = 60.0, centre=(200.0, 300.0), angle: float = 0.0) -> np.ndarray:
    """68 points whose mouth (iBUG 48-67) is ``width`` px wide with its inner lips ``gap`` px apart, turned
    by ``angle`` radians about its centre; the other points are irrelevant and left at the centre."""
    half = width / 2
    points = np.zeros((68, 2))
    outer_x = np.linspace(-half, half, 7)
    points[48:55] = np.column_stack([outer_x, [0, -8, -10, -9, -10, -8, 0]])  # corners and upper lip
    points[55:60] = np.column_stack([outer_x[5:0:-1], [8, 11, 12, 11, 8]])  # lower lip, right to left
    inner_x = np.array([-0.8, -0.35, 0.0, 0.35, 0.8]) * half
    points[60] = (inner_x[0], 0.0)
    points[61:64] = np.column_stack([inner_x[1:4], [-gap / 2] * 3])
    points[64] = (inner_x[4], 0.0)
    points[65:68] = np.column_stack([inner_x[3:0:-1], [gap / 2] * 3])
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ turn.T + np.asarray(centre)


def test_the_ratio_is_the_inner_gap_over_the_mouth_width():
    assert mouth_gap_ratio(mouth(gap=0.0)) == pytest.approx(0.0)
    assert mouth_gap_ratio(mouth(gap=12.0, width=60.0)) == pytest.approx(0.2)


def test_the_ratio_does_not_depend_on_face_size_position_or_roll():
    reference = mouth_gap_ratio(mouth(gap=9.0, width=60.0))
    assert mouth_gap_ratio(mouth(gap=27.0, width=180.0, centre=(900.0, 40.0))) == pytest.approx(reference)
    assert mouth_gap_ratio(mouth(gap=9.0, width=60.0, angle=0.6)) == pytest.approx(reference)


def test_open_and_closed_mouths():
    closed, talking, wide = mouth(gap=0.5), mouth(gap=9.0), mouth(gap=25.0)
    assert mouth_open(closed).value is False
    assert mouth_open(talking).value is True
    assert mouth_open(wide).value is True


def test_confidence_is_50_at_the_threshold_and_100_one_threshold_away():
    width = 60.0
    at = mouth(gap=MOUTH_OPEN_THRESHOLD * width, width=width)
    assert mouth_open(at).confidence == pytest.approx(50.0)
    assert mouth_open(mouth(gap=0.0, width=width)).confidence == pytest.approx(100.0)
    assert mouth_open(mouth(gap=2 * MOUTH_OPEN_THRESHOLD * width, width=width)).confidence == pytest.approx(
        100.0
    )
    assert mouth_open(mouth(gap=10 * MOUTH_OPEN_THRESHOLD * width, width=width)).confidence == 100.0
    halfway = mouth_open(mouth(gap=1.5 * MOUTH_OPEN_THRESHOLD * width, width=width))
    assert halfway.value is True and halfway.confidence == pytest.approx(75.0)


def test_mouth_open_is_a_measured_attribute_of_rekognition_requests():
    assert MOUTH_OPEN in MEASURED
    assert requested_attributes(("MOUTH_OPEN",)) == frozenset({MOUTH_OPEN})
    assert MOUTH_OPEN in requested_attributes(("ALL",))
