"""Helpers for the store tests: seeded faces, a brute-force oracle, and blob stores that count or crash."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from facesearch.domain import BoundingBox, FaceRecord
from facesearch.store import CollectionStore, open_store
from facesearch.store.blobs import NOT_MODIFIED

MODEL = "test-model-1"


def make_faces(
    rng: np.random.Generator, n: int, dim: int, model: str = MODEL
) -> tuple[list[FaceRecord], np.ndarray]:
    """``n`` records with random UUIDs (from ``rng``) and random unit vectors."""
    records = [
        FaceRecord(
            face_id=str(uuid.UUID(bytes=rng.bytes(16), version=4)),
            image_id=str(uuid.UUID(bytes=rng.bytes(16), version=4)),
            external_image_id=f"img-{i}.jpg",
            bounding_box=BoundingBox(left=0.1, top=0.2, width=0.3, height=0.4),
            confidence=99.5,
            index_faces_model_version=model,
        )
        for i in range(n)
    ]
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return records, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def brute_force(ids: list[str], vectors: np.ndarray, query: np.ndarray, k: int) -> list[str]:
    """The exact top-k ids by cosine."""
    order = np.argsort(-(vectors @ query))[:k]
    return [ids[i] for i in order]


def recall_at_k(
    store: CollectionStore, collection_id: str, live: dict[str, np.ndarray], queries, k=10
) -> float:
    """Mean recall@k of ``store.search`` against brute force over the ``live`` faces."""
    ids = list(live)
    matrix = np.stack([live[i] for i in ids])
    found = 0
    for query in queries:
        truth = set(brute_force(ids, matrix, query, k))
        got = {record.face_id for record, _ in store.view(collection_id).search(query, k=k)}
        found += len(truth & got)
    return found / (k * len(queries))


def fresh_store(location: str, cache_dir: Path) -> CollectionStore:
    """A store as a new container sees it: nothing in memory; the disk cache is what ``cache_dir`` holds."""
    return open_store(location, cache_dir)


def snapshot(store: CollectionStore, collection_id: str, queries) -> dict:
    """Everything a reader can observe of a collection, for before/after comparisons."""
    faces = []
    token = None
    while True:
        page = store.view(collection_id).list_faces(max_results=1000, next_token=token)
        faces.extend(page.items)
        token = page.next_token
        if token is None:
            break
    info = store.view(collection_id).info
    users = store.view(collection_id).list_users(max_results=500).items
    return {
        "count": info.face_count,
        "faces": sorted(faces, key=lambda r: r.face_id),
        "users": users,
        "search": [
            [(r.face_id, round(c, 5)) for r, c in store.view(collection_id).search(q, k=5)] for q in queries
        ],
    }


class SimulatedCrash(BaseException):
    """Raised in place of a blob write to stop a writer dead there (a BaseException: nothing catches it)."""


class InstrumentedBlobs:
    """Wraps a blob store: counts every call and can crash at the n-th write (put or delete)."""

    WRITES = ("put_if_absent", "put_if_match", "delete")

    def __init__(self, inner, crash_at_write: int | None = None) -> None:
        self.inner = inner
        self.location = inner.location
        self.crash_at_write = crash_at_write
        self.calls: list[tuple[str, str]] = []
        self.writes = 0
        self.not_modified = 0

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def call(key, *args, **kwargs):
            self.calls.append((name, key))
            if name in self.WRITES:
                self.writes += 1
                if self.crash_at_write == self.writes:
                    raise SimulatedCrash(f"crash at write {self.writes}: {name} {key}")
            result = method(key, *args, **kwargs)
            if result is NOT_MODIFIED:
                self.not_modified += 1
            return result

        return call

    def count(self, name: str) -> int:
        return sum(1 for called, _ in self.calls if called == name)
