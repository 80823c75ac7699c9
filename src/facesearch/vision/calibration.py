"""Similarity calibration: cosine cuts at two FAR targets, and the logistic map through them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Rekognition's scale: Similarity 50 and 80 (the default FaceMatchThreshold) sit at these false accept rates.
FAR_AT_50 = 1e-2
FAR_AT_80 = 1e-3
# One-sided 95 % normal quantile: a fit's cuts keep the upper confidence bound of FAR at its target.
Z_95 = 1.645


def quantile_cut(impostor: np.ndarray, far: float) -> float:
    """The cosine at or above which a fraction ``far`` of the impostor scores lie (the plain estimate)."""
    ordered = np.sort(impostor)[::-1]
    return float(ordered[max(0, math.ceil(far * len(ordered)) - 1)])


def bounded_cut(impostor: np.ndarray, far: float) -> float:
    """The lowest cosine whose impostor count at or above it keeps FAR's 95 % upper bound at ``far``.

    With n impostor pairs, at most m = floor(far n - 1.645 sqrt(far n)) (never negative) may reach the
    cut, which sits just above the (m+1)-th highest score. On small sets this is stricter than
    ``quantile_cut``: on ~4 000 pairs, FAR 1e-3 allows none where the quantile allows 4.
    """
    ordered = np.sort(impostor)[::-1]
    expected = far * len(ordered)
    allowed = min(len(ordered) - 1, max(0, math.floor(expected - Z_95 * math.sqrt(expected))))
    return float(np.nextafter(ordered[allowed], np.inf))


@dataclass(frozen=True)
class SimilarityMap:
    """Similarity = 100 / (1 + exp(-k (cosine - c50))): 50 at ``c50``, 80 at the FAR_AT_80 cut."""

    c50: float
    k: float

    @classmethod
    def fit(cls, impostor: np.ndarray) -> SimilarityMap:
        c50, c80 = bounded_cut(impostor, FAR_AT_50), bounded_cut(impostor, FAR_AT_80)
        return cls(c50=c50, k=math.log(4) / (c80 - c50))

    def cut(self, similarity: float) -> float:
        """The cosine at which Similarity reaches ``similarity`` (0 < similarity < 100)."""
        return self.c50 - math.log(100.0 / similarity - 1.0) / self.k
