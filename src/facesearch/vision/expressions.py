"""Emotions and Smile from face-api's expression net (converted to ONNX in the attribute pack).

The net's input is face-api's own (src/globalApi/extractFacesAndComputeResults.ts, dom/extractFaceTensors.ts,
dom/NetInput.ts toBatchTensor): the box around the 68 landmarks, grown by a fifth of its width and height,
clipped at the image's borders and floored, padded with black to a centred square, resized to 112x112 by
TensorFlow's bilinear resize (no half-pixel centres, no corner alignment). Mean and scale are in the graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from facesearch.vision.models import create_session

# face-api's net classes -> Rekognition's EmotionName (neutral is Rekognition's CALM). CONFUSED and
# UNKNOWN have no class in the net, so they are never answered.
EMOTION_OF_CLASS = {
    "neutral": "CALM",
    "happy": "HAPPY",
    "sad": "SAD",
    "angry": "ANGRY",
    "fearful": "FEAR",
    "disgusted": "DISGUSTED",
    "surprised": "SURPRISED",
}
# src/classes/FaceLandmarks.ts alignMinBbox: the landmarks' box padded by this share of its size in all.
BOX_PADDING = 0.2


def square_resize(crop: np.ndarray, size: int) -> np.ndarray:
    """face-api's padToSquare (centred) + tf.image.resizeBilinear(alignCorners=false, halfPixelCenters=false)
    of an HxWx3 uint8 crop, as float32 (size, size, 3); the padding is black."""
    height, width = crop.shape[:2]
    side = max(height, width)
    diff = side - min(height, width)
    # padToSquare appends Math.round(diff / 2) (halves round up, unlike Python's round) and prepends the rest.
    before = diff - int(np.floor(diff * 0.5 + 0.5))
    top, left = (before, 0) if height < width else (0, before)
    scale = side / size
    coords = np.arange(size) * scale
    low = np.floor(coords).astype(np.int64)
    high = np.minimum(low + 1, side - 1)
    frac = (coords - low).astype(np.float32)

    def taps(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        r, c = rows - top, cols - left
        inside = ((r >= 0) & (r < height))[:, None] & ((c >= 0) & (c < width))[None, :]
        values = crop[np.clip(r, 0, height - 1)][:, np.clip(c, 0, width - 1)].astype(np.float32)
        return np.where(inside[..., None], values, np.float32(0.0))

    top_row = taps(low, low) + (taps(low, high) - taps(low, low)) * frac[None, :, None]
    bottom_row = taps(high, low) + (taps(high, high) - taps(high, low)) * frac[None, :, None]
    return top_row + (bottom_row - top_row) * frac[:, None, None]


def face_box(points68: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): face-api's aligned rect of the landmarks, clipped to the image, then floored
    (src/classes/Box.ts clipAtImageBorders)."""
    low, high = points68.min(axis=0), points68.max(axis=0)
    size = high - low
    x, y = low - size * BOX_PADDING / 2
    right, bottom = high + size * BOX_PADDING / 2
    x, y = max(float(x), 0.0), max(float(y), 0.0)
    w, h = min(float(right) - x, width - x), min(float(bottom) - y, height - y)
    x0, y0, w0, h0 = (int(np.floor(v)) for v in (x, y, w, h))
    return x0, y0, x0 + max(w0, 1), y0 + max(h0, 1)


class ExpressionModel:
    """face-api's FaceExpressionNet: probabilities of its 7 classes for one face."""

    def __init__(self, path: Path, config: dict[str, Any], threads: int) -> None:
        self.session = create_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.size = int(config["input_size"])
        self.labels: list[str] = list(config["labels"])

    def probabilities_of(self, face: np.ndarray) -> np.ndarray:
        """The 7 probabilities of an HxWx3 uint8 RGB face crop (face-api's own crop: see face_box)."""
        x = square_resize(face, self.size)[np.newaxis]
        (out,) = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(x)})
        return np.asarray(out[0], dtype=np.float64)

    def probabilities(self, image: Image.Image, points68: np.ndarray) -> np.ndarray:
        crop = np.asarray(image.crop(face_box(points68, image.width, image.height)).convert("RGB"))
        return self.probabilities_of(crop)


def emotions(probabilities: np.ndarray, labels: list[str]) -> tuple[tuple[str, float], ...]:
    """(EmotionName, Confidence 0..100) of every class, most confident first."""
    pairs = [
        (EMOTION_OF_CLASS[label], 100.0 * float(p)) for label, p in zip(labels, probabilities, strict=True)
    ]
    return tuple(sorted(pairs, key=lambda pair: -pair[1]))


def smile(p_happy: float, threshold: float) -> tuple[bool, float]:
    """Smile = P(happy) >= threshold; Confidence 50 at the threshold rising linearly to 100 at 0 or 1."""
    if p_happy >= threshold:
        return True, 50.0 + 50.0 * (p_happy - threshold) / (1.0 - threshold)
    return False, 50.0 + 50.0 * (threshold - p_happy) / threshold
