"""MouthOpen from the 68 landmarks the pipeline already locates: the inner-lip gap over the mouth's width."""

from __future__ import annotations

import numpy as np

from facesearch.vision.faces import BinaryAttribute

# iBUG 68-point indices: facing upper and lower inner-lip points, and the mouth's outer corners.
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
MOUTH_CORNERS = (48, 54)
# Open when the mean inner-lip gap exceeds this share of the mouth's corner-to-corner width: 0.0686 fitted on
# a seeded half (random.Random(0)) of the 184 decidable by-eye labels of bench/labels/dev_mouth.json (largest
# face of each dev photo), 90 % right on the other half; printed by
# `.venv/bin/python bench/attributes.py --manifest ../shared/facedata/dev/manifest.json` (docs/attributes.md).
MOUTH_OPEN_THRESHOLD = 0.0686


def mouth_gap_ratio(points68: np.ndarray) -> float:
    """The mean distance between facing inner-lip points over the distance between the mouth's corners."""
    points = np.asarray(points68, dtype=np.float64)
    gap = np.mean([np.linalg.norm(points[upper] - points[lower]) for upper, lower in INNER_LIP_PAIRS])
    width = float(np.linalg.norm(points[MOUTH_CORNERS[1]] - points[MOUTH_CORNERS[0]]))
    return float(gap) / max(width, 1e-6)


def mouth_open(points68: np.ndarray, threshold: float = MOUTH_OPEN_THRESHOLD) -> BinaryAttribute:
    """Value: the gap ratio exceeds ``threshold``. Confidence: 50 at the threshold, rising linearly with the
    ratio's distance from it to 100 at a distance of one threshold (a closed mouth's ratio 0, or twice the
    threshold): a geometric margin, not a calibrated probability."""
    ratio = mouth_gap_ratio(points68)
    margin = min(1.0, abs(ratio - threshold) / threshold)
    return BinaryAttribute(value=ratio > threshold, confidence=50.0 + 50.0 * margin)
