"""kill -9 of `facesearch serve` at seeded random moments during IndexFaces on a folder store, restart on the
same store: every acknowledged FaceId is still listed and searchable; faces nobody acknowledged (phantoms)
come only from the requests in flight at a kill."""

from __future__ import annotations

import contextlib
import io
import os
import random
import threading
import time
from dataclasses import dataclass, field

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image

from tests.reliability.conftest import rekognition, start_serve

pytestmark = pytest.mark.reliability

SEED = 20261202
KILLS = int(os.environ.get("FACESEARCH_RELIABILITY_KILLS", "16"))
# Kill moments after the (warmed-up) server starts taking writes: from "mid first write" to "several in".
KILL_AFTER_SECONDS = (0.05, 4.0)
COLLECTION = "crash"
WARM_UP = "warm-up"


@pytest.fixture(scope="module")
def photos(demo_photos) -> list[bytes]:
    """The demo photos at most 512 px wide: several faces each, indexed in well under a second."""
    out = []
    for data in demo_photos:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        image.thumbnail((512, 512))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


@dataclass
class Ledger:
    """What the client knows: acknowledged faces per request, and requests that got no answer."""

    acked: dict[str, list[str]] = field(default_factory=dict)
    photo_of: dict[str, int] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    ack_seconds: list[float] = field(default_factory=list)
    next_request: int = 0


def index_until_killed(url: str, photos: list[bytes], ledger: Ledger, stop: threading.Event) -> None:
    client = rekognition(url, attempts=1)
    while not stop.is_set():
        request = f"req-{ledger.next_request:05d}"
        photo = ledger.next_request % len(photos)
        ledger.next_request += 1
        ledger.photo_of[request] = photo
        sent = time.monotonic()
        try:
            answer = client.index_faces(
                CollectionId=COLLECTION, Image={"Bytes": photos[photo]}, ExternalImageId=request, MaxFaces=10
            )
        except ClientError as error:  # an answered refusal: nothing acknowledged
            ledger.refused.append(f"{request}:{error.response['Error']['Code']}")
            continue
        except BotoCoreError:  # no answer: the server died under this request
            ledger.in_flight.add(request)
            return
        if "FaceRecords" not in answer:
            ledger.incomplete.append(f"{request}:{answer['ResponseMetadata']}")
            ledger.in_flight.add(request)
            return
        ledger.acked[request] = [record["Face"]["FaceId"] for record in answer["FaceRecords"]]
        ledger.ack_seconds.append(time.monotonic() - sent)


def warm_serve(store, photo: bytes):
    """A started server that has loaded its models (an IndexFaces into another collection), so kills land
    in the IndexFaces writes under test rather than in model loading."""
    server = start_serve(store)
    client = rekognition(server.url)
    with contextlib.suppress(ClientError):
        client.create_collection(CollectionId=WARM_UP)
    client.index_faces(CollectionId=WARM_UP, Image={"Bytes": photo}, MaxFaces=1)
    return server


def all_faces(client) -> list[dict]:
    faces, token = [], None
    while True:
        page = client.list_faces(
            CollectionId=COLLECTION, MaxResults=4096, **({"NextToken": token} if token else {})
        )
        faces += page["Faces"]
        token = page.get("NextToken")
        if not token:
            return faces


def test_kill_9_during_index_faces(tmp_path, photos, report):
    store = tmp_path / "store"
    rng = random.Random(SEED)
    ledger = Ledger()
    started = time.monotonic()
    server = warm_serve(store, photos[0])
    rekognition(server.url).create_collection(CollectionId=COLLECTION)
    kills = 0
    try:
        for _ in range(KILLS):
            stop = threading.Event()
            worker = threading.Thread(target=index_until_killed, args=(server.url, photos, ledger, stop))
            worker.start()
            threading.Event().wait(rng.uniform(*KILL_AFTER_SECONDS))
            server.kill()
            kills += 1
            stop.set()
            worker.join(timeout=120)
            assert not worker.is_alive()
            server = warm_serve(store, photos[0])
        client = rekognition(server.url, attempts=3)
        listed = all_faces(client)
        listed_ids = {face["FaceId"] for face in listed}
        acked_ids = {face for faces in ledger.acked.values() for face in faces}
        lost = acked_ids - listed_ids
        phantoms = [face for face in listed if face["FaceId"] not in acked_ids]
        assert lost == set(), f"{len(lost)} acknowledged faces lost"
        assert {face["ExternalImageId"] for face in phantoms} <= ledger.in_flight
        assert ledger.refused == []
        assert ledger.incomplete == []
        # Searchable: every acknowledged face is found by its own FaceId, and a face of a photo indexed more
        # than once finds its twins.
        acked_photos = [ledger.photo_of[request] for request in ledger.acked]
        indexed_twice = {photo for photo in acked_photos if acked_photos.count(photo) > 1}
        searched = 0
        for request, faces in ledger.acked.items():
            for face_id in faces:
                matches = client.search_faces(
                    CollectionId=COLLECTION, FaceId=face_id, MaxFaces=4096, FaceMatchThreshold=90
                )["FaceMatches"]
                searched += 1
                if ledger.photo_of[request] in indexed_twice:
                    assert matches, f"{face_id} of {request} finds no twin"
    finally:
        server.stop()
    report(
        "crash_loop",
        kills_survived=kills,
        seed=SEED,
        requests_acknowledged=len(ledger.acked),
        faces_acknowledged=len(acked_ids),
        faces_lost=len(lost),
        requests_in_flight_at_kills=len(ledger.in_flight),
        phantom_faces_from_in_flight_requests=len(phantoms),
        faces_searched=searched,
        seconds=round(time.monotonic() - started, 1),
        index_faces_median_seconds=round(sorted(ledger.ack_seconds)[len(ledger.ack_seconds) // 2], 2),
    )
