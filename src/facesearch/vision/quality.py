"""Pixel measures of a face: brightness and sharpness of the aligned face, the smallest face size."""

from __future__ import annotations

import math

import numpy as np

# Sharpness = 100 * (1 - exp(-var(Laplacian) / SHARPNESS_SCALE)) on the aligned 112x112 grey face, so it
# does not depend on the face's size in the photo. The scale puts the median dev-set face at 80 (its
# Laplacian variance is 789; the 5th percentile, 112, maps to 20; a Gaussian blur of sigma 2 gives ~2).
SHARPNESS_SCALE = 490.0
# Brightness and sharpness are measured inside the template's face oval, away from the zero border.
_INNER = (slice(16, 104), slice(20, 92))


# Rekognition documents the smallest face it finds as 40x40 px in a 1920x1080 image.
REKOGNITION_MIN_FACE_RATIO = 40 / 1920


def brightness_and_sharpness(aligned: np.ndarray) -> tuple[float, float]:
    """Brightness (mean luma) and sharpness (Laplacian energy) of an aligned RGB face, each 0..100."""
    grey = aligned[_INNER].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    brightness = float(grey.mean()) / 255.0 * 100.0
    laplacian = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    sharpness = 100.0 * (1.0 - math.exp(-float(laplacian.var()) / SHARPNESS_SCALE))
    return brightness, sharpness
