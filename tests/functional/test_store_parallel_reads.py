"""Searches of one warm store run in parallel (no store-wide lock) and stay right while writers delete."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from facesearch.store import open_store
from facesearch.store import segment as seg
from tests.functional.store_fixtures import MODEL, make_faces

DIM = 16
THREADS = 4


@pytest.fixture
def warm(tmp_path, monkeypatch):
    """A folder store with two graph segments and one exact one, loaded in memory."""
    monkeypatch.setattr("facesearch.store.segment.BRUTE_FORCE_MAX_FACES", 50)
    store = open_store(str(tmp_path / "store"), tmp_path / "cache")
    store.create_collection("c", face_model_version=MODEL, dim=DIM)
    rng = np.random.default_rng(41)
    faces = {}
    for size in (300, 200, 30):
        records, vectors = make_faces(rng, size, DIM)
        store.add_faces("c", records, vectors)
        faces.update({r.face_id: v for r, v in zip(records, vectors, strict=True)})
    return store, faces


def test_two_searches_are_inside_segment_search_at_once(warm, monkeypatch):
    store, faces = warm
    both_inside = threading.Barrier(2, timeout=30)
    search = seg.search

    def meet_then_search(*args, **kwargs):
        # Under a store-wide lock the second search could not get here while the first waits: broken.
        both_inside.wait()
        return search(*args, **kwargs)

    monkeypatch.setattr("facesearch.store.segment.search", meet_then_search)
    query = next(iter(faces.values()))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: store.view("c").search(query, k=5), range(2)))
    assert results[0] == results[1] and len(results[0]) == 5


def test_parallel_searches_answer_as_sequential_ones(warm):
    store, faces = warm
    queries = list(faces.values())[::13]
    expected = [store.view("c").search(query, k=10) for query in queries]
    with ThreadPoolExecutor(THREADS) as pool:
        got = list(pool.map(lambda query: store.view("c").search(query, k=10), queries * 3))
    assert got == expected * 3


def test_searches_never_return_a_face_their_view_sees_deleted(warm):
    store, faces = warm
    ids = list(faces)
    doomed = ids[::3]
    queries = [faces[face_id] for face_id in doomed[:40]]
    violations = []
    done = threading.Event()

    def delete_in_batches():
        for start in range(0, len(doomed), 10):
            store.delete_faces("c", doomed[start : start + 10])
        done.set()

    def search_until_done():
        while not done.is_set():
            for query in queries:
                view = store.view("c")
                hits = {record.face_id for record, _ in view.search(query, k=5)}
                violations.extend(hits & view.manifest.tombstones)

    with ThreadPoolExecutor(THREADS) as pool:
        searchers = [pool.submit(search_until_done) for _ in range(THREADS - 1)]
        pool.submit(delete_in_batches).result()
        for searcher in searchers:
            searcher.result()
    assert violations == []
    remaining = store.view("c")
    assert remaining.info.face_count == len(ids) - len(doomed)
    for query in queries:
        assert not {record.face_id for record, _ in remaining.search(query, k=20)} & set(doomed)
