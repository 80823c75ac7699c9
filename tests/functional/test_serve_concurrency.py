"""``facesearch serve`` runs concurrent requests at once: no lock serialises a warm container's searches.

Each search records when it enters and leaves the collection's search and waits, inside it, for the other
request at a barrier. Serialised requests never meet there: the barrier's timeout is only a bound on how
long a failing run takes, never a measure of speed.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from botocore.config import Config

from facesearch.devtools.registry import FACE_API, extract
from facesearch.devtools.server import LocalServer
from facesearch.domain import BoundingBox, FaceRecord
from facesearch.settings import ENV_MODELS_DIR
from facesearch.store import get_store
from facesearch.store.view import CollectionView
from tests.support.transport import rekognition_client

BARRIER_SECONDS = 30.0
COLLECTION = "concurrent"
DEMO_PHOTO = "package/demo/sample1.jpg"


def _client(url: str):
    # One attempt: a failed request must fail the test, not be retried after the other finished.
    config = Config(retries={"mode": "standard", "max_attempts": 1}, read_timeout=2 * BARRIER_SECONDS)
    return rekognition_client(url, config=config)


def _meeting_searches(monkeypatch) -> list[tuple[str, int]]:
    """Make every collection search wait for a second one inside it; returns the (event, thread) log."""
    log: list[tuple[str, int]] = []
    barrier = threading.Barrier(2, timeout=BARRIER_SECONDS)
    search = CollectionView.search

    def meeting(self, *args, **kwargs):
        log.append(("enter", threading.get_ident()))
        barrier.wait()
        try:
            return search(self, *args, **kwargs)
        finally:
            log.append(("exit", threading.get_ident()))

    monkeypatch.setattr(CollectionView, "search", meeting)
    return log


def _both_at_once(call) -> list:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda _: call(), range(2)))


def _assert_overlapped(log: list[tuple[str, int]]) -> None:
    assert [event for event, _ in log] == ["enter", "enter", "exit", "exit"], log
    assert len({thread for _, thread in log}) == 2


def test_two_searches_by_face_id_run_at_once(tmp_path, monkeypatch):
    with LocalServer(str(tmp_path / "store")) as server:
        client = _client(server.url)
        client.create_collection(CollectionId=COLLECTION)
        rng = np.random.default_rng(5)
        vectors = rng.normal(size=(40, 512)).astype(np.float32)
        box = BoundingBox(0.1, 0.1, 0.2, 0.2)
        store = get_store()
        model = store.view(COLLECTION).manifest.face_model_version
        records = [
            FaceRecord(
                f"{i:08d}-0000-4000-8000-000000000000",
                "00000000-0000-4000-8000-0000000000aa",
                None,
                box,
                99.0,
                model,
            )
            for i in range(40)
        ]
        store.add_faces(COLLECTION, records, vectors)
        log = _meeting_searches(monkeypatch)
        answers = _both_at_once(
            lambda: client.search_faces(
                CollectionId=COLLECTION, FaceId=records[3].face_id, MaxFaces=5, FaceMatchThreshold=0
            )
        )
    _assert_overlapped(log)
    for answer in answers:
        assert answer["SearchedFaceId"] == records[3].face_id
        assert len(answer["FaceMatches"]) >= 1


def test_two_searches_by_image_run_at_once(tmp_path, monkeypatch, model_pack):
    monkeypatch.setenv(ENV_MODELS_DIR, str(model_pack))
    (photo,) = extract(FACE_API, [DEMO_PHOTO], tmp_path / "photos")
    image = {"Bytes": photo.read_bytes()}
    with LocalServer(str(tmp_path / "store")) as server:
        client = _client(server.url)
        client.create_collection(CollectionId=COLLECTION)
        indexed = client.index_faces(CollectionId=COLLECTION, Image=image)["FaceRecords"]
        assert indexed
        log = _meeting_searches(monkeypatch)
        answers = _both_at_once(lambda: client.search_faces_by_image(CollectionId=COLLECTION, Image=image))
    _assert_overlapped(log)
    face_ids = {record["Face"]["FaceId"] for record in indexed}
    for answer in answers:
        assert answer["FaceMatches"][0]["Face"]["FaceId"] in face_ids
