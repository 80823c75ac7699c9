"""Amazon S3 Vectors, as the s3vectors engine uses it: one index per collection, batched calls, retries.

Limits are the service's (Amazon S3 User Guide, "S3 Vectors limitations and restrictions"): PutVectors
and DeleteVectors take up to 500 vectors, GetVectors up to 100 keys, QueryVectors returns up to 100
results (topK), ListVectors up to 1000 keys a page. Throttling (429 TooManyRequestsException, the
per-index write rate) and 503 ServiceUnavailableException are retried here with exponential backoff and
jitter; after ``MAX_ATTEMPTS`` the request fails with ProvisionedThroughputExceededException, the
Rekognition error a caller retries. A missing index (its collection was deleted while a request was in
flight) is ``IndexGone``.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from facesearch.errors import ProvisionedThroughputExceededException

PUT_BATCH = 500
DELETE_BATCH = 500
GET_BATCH = 100
QUERY_TOP_K_MAX = 100
LIST_PAGE = 1000
# Retries of throttled calls: 8 attempts from 50 ms doubling, capped at 2 s (about 6 s in all).
MAX_ATTEMPTS = 8
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 2.0
_RETRYABLE = {"TooManyRequestsException", "ServiceUnavailableException", "ThrottlingException"}
_RETRYABLE_STATUS = {429, 503}


class IndexGone(Exception):
    """The vector index does not exist (any more): its collection was deleted."""


@dataclass(frozen=True)
class StoredVector:
    """One vector as S3 Vectors returned it (``data`` only when asked for)."""

    key: str
    metadata: dict[str, Any]
    data: np.ndarray | None = None


@dataclass(frozen=True)
class Neighbour:
    """One QueryVectors result: its key, S3 Vectors' cosine distance (1 - cosine) and metadata."""

    key: str
    distance: float
    metadata: dict[str, Any]


class VectorIndexes:
    """The indexes of one vector bucket, through one s3vectors client."""

    def __init__(self, client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    # ---------------------------------------------------------------------------------------- indexes

    def create(self, name: str, dim: int, non_filterable: Sequence[str]) -> None:
        self._call(
            "create_index",
            indexName=name,
            dataType="float32",
            dimension=dim,
            distanceMetric="cosine",
            metadataConfiguration={"nonFilterableMetadataKeys": list(non_filterable)},
        )

    def delete(self, name: str) -> None:
        """Delete the index; nothing if it is already gone."""
        with contextlib.suppress(IndexGone):
            self._call("delete_index", indexName=name)

    # ---------------------------------------------------------------------------------------- vectors

    def put(self, name: str, keys: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict]) -> None:
        """Write (or overwrite) vectors in batches of PUT_BATCH; each batch retried until accepted."""
        for start in range(0, len(keys), PUT_BATCH):
            end = start + PUT_BATCH
            self._call(
                "put_vectors",
                indexName=name,
                vectors=[
                    {"key": key, "data": {"float32": row.tolist()}, "metadata": meta}
                    for key, row, meta in zip(
                        keys[start:end], vectors[start:end], metadata[start:end], strict=True
                    )
                ],
            )

    def get(self, name: str, keys: Sequence[str], *, data: bool = False) -> dict[str, StoredVector]:
        """The stored vectors among ``keys`` (absent keys are simply missing), with metadata."""
        found: dict[str, StoredVector] = {}
        for start in range(0, len(keys), GET_BATCH):
            answer = self._call(
                "get_vectors",
                indexName=name,
                keys=list(keys[start : start + GET_BATCH]),
                returnData=data,
                returnMetadata=True,
            )
            for item in answer.get("vectors", []):
                vector = item.get("data", {}).get("float32") if data else None
                found[item["key"]] = StoredVector(
                    key=item["key"],
                    metadata=item.get("metadata") or {},
                    data=None if vector is None else np.asarray(vector, dtype=np.float32),
                )
        return found

    def remove(self, name: str, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            self._call("delete_vectors", indexName=name, keys=list(keys[start : start + DELETE_BATCH]))

    def keys(self, name: str) -> Iterator[str]:
        """Every key of the index, page by page (in the service's order)."""
        yield from (item.key for item in self.scan(name, data=False, metadata=False))

    def scan(self, name: str, *, data: bool, metadata: bool) -> Iterator[StoredVector]:
        """Every vector of the index, page by page (ListVectors), optionally with data and metadata."""
        token = None
        while True:
            params: dict[str, Any] = {
                "indexName": name,
                "maxResults": LIST_PAGE,
                "returnData": data,
                "returnMetadata": metadata,
            }
            if token:
                params["nextToken"] = token
            answer = self._call("list_vectors", **params)
            for item in answer.get("vectors", []):
                vector = (item.get("data") or {}).get("float32") if data else None
                yield StoredVector(
                    key=item["key"],
                    metadata=item.get("metadata") or {},
                    data=None if vector is None else np.asarray(vector, dtype=np.float32),
                )
            token = answer.get("nextToken")
            if not token:
                return

    def query(self, name: str, vector: np.ndarray, top_k: int, filter: dict | None = None) -> list[Neighbour]:
        """The ``top_k`` (<= QUERY_TOP_K_MAX) nearest vectors, nearest first, with distance and metadata."""
        if not 1 <= top_k <= QUERY_TOP_K_MAX:
            raise ValueError(f"topK must be within 1..{QUERY_TOP_K_MAX}, got {top_k}")
        params: dict[str, Any] = {
            "indexName": name,
            "topK": top_k,
            "queryVector": {"float32": np.asarray(vector, dtype=np.float32).tolist()},
            "returnMetadata": True,
            "returnDistance": True,
        }
        if filter is not None:
            params["filter"] = filter
        answer = self._call("query_vectors", **params)
        return [
            Neighbour(key=item["key"], distance=float(item["distance"]), metadata=item.get("metadata") or {})
            for item in answer.get("vectors", [])
        ]

    # ----------------------------------------------------------------------------------------- inside

    def _call(self, method: str, **params: Any) -> dict:
        for attempt in range(MAX_ATTEMPTS):
            try:
                return getattr(self.client, method)(vectorBucketName=self.bucket, **params)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if code == "NotFoundException":
                    raise IndexGone(params.get("indexName", "")) from error
                if code not in _RETRYABLE and status not in _RETRYABLE_STATUS:
                    raise
                if attempt == MAX_ATTEMPTS - 1:
                    raise ProvisionedThroughputExceededException(
                        "Amazon S3 Vectors is throttling writes to this collection; retry the request."
                    ) from error
                time.sleep(min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")
