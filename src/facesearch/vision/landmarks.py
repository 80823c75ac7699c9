"""The 68-point landmark scheme: the 5 alignment points, Rekognition's landmark types, head pose."""

from __future__ import annotations

import math

import botocore.loaders
import numpy as np

from facesearch.lazy import once

# iBUG 68-point indices (0-based). "Left" is the viewer's left, as in Rekognition's responses
# (eyeLeft has the smaller x), which is the subject's right eye, iBUG points 36-41.
_LEFT_EYE_LIDS = (37, 38, 40, 41)
_RIGHT_EYE_LIDS = (43, 44, 46, 47)
_NOSE_TIP = 30
_MOUTH_LEFT = (48, 60)
_MOUTH_RIGHT = (54, 64)

# Rekognition LandmarkType -> the iBUG points whose mean gives it.
REKOGNITION_LANDMARKS: dict[str, tuple[int, ...]] = {
    "eyeLeft": tuple(range(36, 42)),
    "eyeRight": tuple(range(42, 48)),
    "nose": (_NOSE_TIP,),
    "mouthLeft": _MOUTH_LEFT,
    "mouthRight": _MOUTH_RIGHT,
    "leftEyeBrowLeft": (17,),
    "leftEyeBrowRight": (21,),
    "leftEyeBrowUp": (19,),
    "rightEyeBrowLeft": (22,),
    "rightEyeBrowRight": (26,),
    "rightEyeBrowUp": (24,),
    "leftEyeLeft": (36,),
    "leftEyeRight": (39,),
    "leftEyeUp": (37, 38),
    "leftEyeDown": (40, 41),
    "rightEyeLeft": (42,),
    "rightEyeRight": (45,),
    "rightEyeUp": (43, 44),
    "rightEyeDown": (46, 47),
    "noseLeft": (31,),
    "noseRight": (35,),
    "mouthUp": (51,),
    "mouthDown": (57,),
    "leftPupil": _LEFT_EYE_LIDS,
    "rightPupil": _RIGHT_EYE_LIDS,
    "upperJawlineLeft": (1,),
    "midJawlineLeft": (4,),
    "chinBottom": (8,),
    "midJawlineRight": (12,),
    "upperJawlineRight": (15,),
}

# Head geometry for pose from 2-D points. The nose tip stands this far in front of the eye plane, in
# units of half the inter-ocular distance (anthropometric average: ~35 mm over ~32 mm).
NOSE_DEPTH_PER_HALF_EYE_DISTANCE = 1.1
# A level frontal face, from the standard 112x112 5-point template: the nose tip sits this fraction of the
# way from the eye line down to the mouth line, and eye-to-mouth is this many half eye distances.
FRONTAL_NOSE_DROP = 0.495
EYE_TO_MOUTH_PER_HALF_EYE_DISTANCE = 2.31


@once
def landmark_types() -> tuple[str, ...]:
    """Rekognition's LandmarkType enum, in the service model's order."""
    model = botocore.loaders.Loader().load_service_model("rekognition", "service-2")
    return tuple(model["shapes"]["LandmarkType"]["enum"])


def five_points(points68: np.ndarray) -> np.ndarray:
    """Eyes (lid means), nose tip and mouth corners (means of outer and inner corner): (5, 2)."""
    p = points68
    return np.stack(
        [
            p[list(_LEFT_EYE_LIDS)].mean(axis=0),
            p[list(_RIGHT_EYE_LIDS)].mean(axis=0),
            p[_NOSE_TIP],
            p[list(_MOUTH_LEFT)].mean(axis=0),
            p[list(_MOUTH_RIGHT)].mean(axis=0),
        ]
    )


def rekognition_landmarks(points68: np.ndarray) -> list[tuple[str, float, float]]:
    """(type, x, y) in pixels for every Rekognition LandmarkType, in the enum's order."""
    out = []
    for name in landmark_types():
        x, y = points68[list(REKOGNITION_LANDMARKS[name])].mean(axis=0)
        out.append((name, float(x), float(y)))
    return out


def head_pose(five: np.ndarray) -> tuple[float, float, float]:
    """(roll, yaw, pitch) in degrees from the 5 points; positive yaw turns toward the viewer's right.

    Roll is the angle of the eye line. Yaw and pitch come from where the nose tip sits relative to the
    eyes and mouth once roll is undone, with a weak-perspective head model (constants above).
    """
    left_eye, right_eye, nose, mouth_left, mouth_right = five
    dx, dy = right_eye - left_eye
    roll = math.degrees(math.atan2(dy, dx))
    half_eye = max(math.hypot(dx, dy) / 2, 1e-6)
    cos_r, sin_r = dx / (2 * half_eye), dy / (2 * half_eye)
    derotate = np.array([[cos_r, sin_r], [-sin_r, cos_r]])
    eye_mid = (left_eye + right_eye) / 2
    nose_x, nose_y = derotate @ (nose - eye_mid)
    mouth_y = (derotate @ ((mouth_left + mouth_right) / 2 - eye_mid))[1]
    yaw_ratio = nose_x / (half_eye * NOSE_DEPTH_PER_HALF_EYE_DISTANCE)
    yaw = math.degrees(math.atan(yaw_ratio))
    drop = nose_y / max(mouth_y, 1e-6)
    pitch_ratio = (
        (FRONTAL_NOSE_DROP - drop) * EYE_TO_MOUTH_PER_HALF_EYE_DISTANCE / NOSE_DEPTH_PER_HALF_EYE_DISTANCE
    )
    pitch = math.degrees(math.atan(pitch_ratio))
    return roll, yaw, pitch
