"""QueryVectors for moto's S3 Vectors backend, in tests only (moto 5.2.5 implements every other call we use).

``install()`` adds the operation to moto's s3vectors routes and response class: an exact search over
the vectors moto stores, as the service model documents QueryVectors: ``topK`` nearest first (the
service's per-request limit of 100 is enforced, so code that asks for more fails here as it would on
AWS), ``filter`` (the metadata filter language: implicit equality, ``$eq $ne $gt $gte $lt $lte $in
$nin $exists $and $or``), ``returnMetadata`` and ``returnDistance`` (cosine distance = 1 - cosine;
euclidean = L2 distance), ``distanceMetric`` in the answer. ``TOP_K_SEEN`` records each request's topK.
"""

from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np

# The documented "Top-K results per QueryVectors request: Up to 100" (S3 Vectors limitations).
TOP_K_LIMIT = 100
TOP_K_SEEN: collections.deque[int] = collections.deque(maxlen=10_000)
_COMPARE = {
    "$eq": lambda value, arg: value == arg,
    "$ne": lambda value, arg: value != arg,
    "$gt": lambda value, arg: value is not None and value > arg,
    "$gte": lambda value, arg: value is not None and value >= arg,
    "$lt": lambda value, arg: value is not None and value < arg,
    "$lte": lambda value, arg: value is not None and value <= arg,
    "$in": lambda value, arg: value in arg,
    "$nin": lambda value, arg: value not in arg,
}
_MISSING = object()


def matches(metadata: dict[str, Any], condition: dict[str, Any]) -> bool:
    """True if ``metadata`` satisfies the S3 Vectors metadata filter ``condition``."""
    for key, arg in condition.items():
        if key == "$and":
            if not all(matches(metadata, part) for part in arg):
                return False
        elif key == "$or":
            if not any(matches(metadata, part) for part in arg):
                return False
        elif key.startswith("$"):
            raise ValueError(f"Invalid operator at top level: {key}")
        elif not _field_matches(metadata.get(key, _MISSING), arg):
            return False
    return True


def _field_matches(value: Any, arg: Any) -> bool:
    if not isinstance(arg, dict):
        return value is not _MISSING and value == arg
    for operator, operand in arg.items():
        if operator == "$exists":
            if (value is not _MISSING) != bool(operand):
                return False
        elif operator in _COMPARE:
            if value is _MISSING:
                if operator not in ("$ne", "$nin"):
                    return False
            elif not _COMPARE[operator](value, operand):
                return False
        else:
            raise ValueError(f"Unknown filter operator {operator}")
    return True


def _distance(metric: str, stored: np.ndarray, query: np.ndarray) -> np.ndarray:
    if metric == "cosine":
        norms = np.linalg.norm(stored, axis=1) * np.linalg.norm(query)
        return 1.0 - (stored @ query) / np.where(norms == 0, 1.0, norms)
    return np.linalg.norm(stored - query, axis=1)


def query_vectors(self) -> Any:
    """moto ``S3VectorsResponse.query_vectors``: exact nearest neighbours of the stored vectors."""
    from moto.core.responses import ActionResult
    from moto.s3vectors.exceptions import ValidationError

    top_k = self._get_param("topK")
    if not isinstance(top_k, int) or not 1 <= top_k <= TOP_K_LIMIT:
        raise ValidationError(f"Invalid topK value: {top_k}. topK must be between 1 and {TOP_K_LIMIT}.")
    TOP_K_SEEN.append(top_k)
    index = self.s3vectors_backend.get_index(
        self._get_param("vectorBucketName"), self._get_param("indexName"), self._get_param("indexArn")
    )
    vector = (self._get_param("queryVector") or {}).get("float32") or []
    if len(vector) != index.dimension:
        raise ValidationError(
            f"Query vector contains invalid dimension: expected {index.dimension}, got {len(vector)}"
        )
    condition = self._get_param("filter")
    try:
        candidates = [
            v for v in index.vectors.values() if condition is None or matches(v.metadata or {}, condition)
        ]
    except ValueError as error:
        raise ValidationError(f"Invalid filter: {error}") from error
    answer: list[dict[str, Any]] = []
    if candidates:
        stored = np.array([v.data["float32"] for v in candidates], dtype=np.float32)
        distances = _distance(index.distance_metric, stored, np.asarray(vector, dtype=np.float32))
        order = np.argsort(distances, kind="stable")[:top_k]
        for i in order:
            item: dict[str, Any] = {"key": candidates[i].key}
            if self._get_bool_param("returnDistance", False):
                distance = float(distances[i])
                item["distance"] = 0.0 if math.isclose(distance, 0.0, abs_tol=1e-7) else distance
            if self._get_bool_param("returnMetadata", False):
                item["metadata"] = candidates[i].metadata or {}
            answer.append(item)
    return ActionResult({"vectors": answer, "distanceMetric": index.distance_metric})


def install() -> None:
    """Route QueryVectors to ``query_vectors`` in moto (idempotent; before a moto server builds its app)."""
    from moto.s3vectors import responses, urls

    urls.url_paths.setdefault("{0}/QueryVectors$", responses.S3VectorsResponse.dispatch)
    responses.S3VectorsResponse.query_vectors = query_vectors  # type: ignore[attr-defined]
