"""Alignment maths: the least-squares similarity transform, the warp, and the 5 points from 68."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from facesearch.vision import align, landmarks

TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


def similarity_matrix(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array(
        [
            [scale * math.cos(a), -scale * math.sin(a), tx],
            [scale * math.sin(a), scale * math.cos(a), ty],
        ]
    )


def test_exact_similarity_is_recovered():
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = similarity_matrix(rng.uniform(0.2, 5), rng.uniform(-180, 180), *rng.uniform(-500, 500, 2))
        src = rng.uniform(0, 1000, (5, 2))
        estimated = align.similarity_transform(src, align.apply_transform(truth, src))
        assert np.allclose(estimated, truth, atol=1e-8)


def test_identity_on_the_template():
    assert np.allclose(align.similarity_transform(TEMPLATE, TEMPLATE), [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def test_least_squares_uses_all_five_points():
    # Noise on the mouth corners moves the fit: an exact 3-point (eyes + nose) affine would ignore them.
    rng = np.random.default_rng(1)
    truth = similarity_matrix(2.0, 10.0, 30.0, -20.0)
    src = TEMPLATE.copy()
    dst = align.apply_transform(truth, src)
    dst[3:] += rng.normal(0, 3, (2, 2))
    fitted = align.similarity_transform(src, dst)
    residual = np.linalg.norm(align.apply_transform(fitted, src) - dst, axis=1)
    assert residual[:3].max() > 1e-3  # the eyes and nose absorb part of the mouth's error
    # ... and the least-squares fit beats the exact transform on the sum of squared errors.
    exact = np.linalg.norm(align.apply_transform(truth, src) - dst, axis=1)
    assert (residual**2).sum() < (exact**2).sum()


def test_a_mirrored_face_is_never_fitted_with_a_reflection():
    mirrored = TEMPLATE * np.array([-1.0, 1.0])
    matrix = align.similarity_transform(mirrored, TEMPLATE)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_warp_puts_source_points_where_the_transform_says():
    source = np.zeros((400, 600, 3), dtype=np.uint8)
    points = np.array([[150.0, 120.0], [260.0, 140.0], [200.0, 250.0]])
    for x, y in points.astype(int):
        source[y - 1 : y + 2, x - 1 : x + 2] = 255
    matrix = similarity_matrix(0.4, 25.0, 0, 0)
    matrix[:, 2] = 56 - matrix[:, :2] @ points.mean(axis=0)  # centre the points in the 112 crop
    warped = align.warp(Image.fromarray(source), matrix, 112)
    assert warped.shape == (112, 112, 3)
    for target in align.apply_transform(matrix, points):
        x, y = np.round(target).astype(int)
        window = warped[y - 2 : y + 3, x - 2 : x + 3, 0].astype(float)
        assert window.max() > 60
        ys, xs = np.nonzero(warped[:, :, 0] > 0)
        near = (np.abs(xs - target[0]) < 4) & (np.abs(ys - target[1]) < 4)
        weights = warped[ys[near], xs[near], 0].astype(float)
        centroid = np.array([(xs[near] * weights).sum(), (ys[near] * weights).sum()]) / weights.sum()
        assert np.linalg.norm(centroid - target) < 0.75


def test_warp_border_is_zero():
    white = Image.new("RGB", (50, 50), (255, 255, 255))
    warped = align.warp(white, similarity_matrix(1.0, 0.0, 31.0, 31.0), 112)
    assert warped[0, 0].tolist() == [0, 0, 0]
    assert warped[56, 56].tolist() == [255, 255, 255]


def test_five_points_follow_the_documented_68_point_indices():
    points68 = np.arange(136, dtype=float).reshape(68, 2)
    five = landmarks.five_points(points68)
    expected = [
        points68[[37, 38, 40, 41]].mean(axis=0),
        points68[[43, 44, 46, 47]].mean(axis=0),
        points68[30],
        points68[[48, 60]].mean(axis=0),
        points68[[54, 64]].mean(axis=0),
    ]
    assert np.allclose(five, expected)


def test_head_pose_of_the_template_is_frontal_and_rotations_show_as_roll():
    roll, yaw, pitch = landmarks.head_pose(TEMPLATE)
    assert abs(roll) < 1 and abs(yaw) < 3 and abs(pitch) < 10
    rotated = align.apply_transform(similarity_matrix(1.7, 30.0, 5.0, 9.0), TEMPLATE)
    roll2, yaw2, pitch2 = landmarks.head_pose(rotated)
    assert abs(roll2 - (roll + 30.0)) < 1e-6
    assert abs(yaw2 - yaw) < 1e-6 and abs(pitch2 - pitch) < 1e-6


def test_head_pose_yaw_follows_the_nose():
    turned = TEMPLATE.copy()
    turned[2, 0] += 15  # nose tip towards the viewer's right
    assert landmarks.head_pose(turned)[1] > 20
    turned[2, 0] -= 30
    assert landmarks.head_pose(turned)[1] < -20


def test_rekognition_landmark_types_come_from_the_service_model_and_are_all_mapped():
    types = landmarks.landmark_types()
    assert len(types) == 30
    assert set(types) == set(landmarks.REKOGNITION_LANDMARKS)
    points68 = np.random.default_rng(3).uniform(0, 100, (68, 2))
    named = landmarks.rekognition_landmarks(points68)
    assert [name for name, _, _ in named] == list(types)
    chin = dict((name, (x, y)) for name, x, y in named)["chinBottom"]
    assert chin == tuple(points68[8])
