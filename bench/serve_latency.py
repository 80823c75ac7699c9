"""End-to-end SearchFacesByImage latency through `facesearch serve` with an unchanged boto3 client.

Starts `python -m facesearch serve` as a subprocess on a fresh folder store, creates a collection of
``--faces`` faces (the real faces of the face-api demo photos indexed through IndexFaces, topped up with
seeded random unit vectors written through the store API, since only the count matters to search cost),
then times ``--calls`` SearchFacesByImage calls per query photo: the 1920-wide demo photo as it is and
downscaled to 640 px wide. For comparison it also times the face pipeline alone in this process on the
same photo (decode -> largest face -> embedding): the rest of the end-to-end time is HTTP, the handler,
validation and the collection search. Prints a table, and as its last line one JSON object.

    .venv/bin/python bench/serve_latency.py [--faces 1000] [--calls 100]
"""

from __future__ import annotations

import os

# As the server (devtools/cli.py): one BLAS thread, so the in-process pipeline column is comparable.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import numpy as np
from botocore.config import Config
from PIL import Image

from facesearch.devtools.registry import FACE_API, extract
from facesearch.domain import BoundingBox, FaceRecord
from facesearch.settings import ENV_STORE, REPO_ROOT
from facesearch.store import open_store
from facesearch.vision.pipeline import analyze

COLLECTION = "bench"
SEED = 0
DEMO = [f"package/demo/sample{i}.jpg" for i in range(1, 7)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_client(url: str, connections: int = 10):
    """An unchanged boto3 Rekognition client for the local server: any credentials, one attempt per call."""
    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=connections),
    )


def wait_ready(client, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"facesearch serve exited with {server.returncode}")
        try:
            client.list_collections()
            return
        except Exception:  # not listening yet
            time.sleep(0.2)
    raise RuntimeError("facesearch serve did not answer in time")


def top_up(store_dir: Path, count: int, rng: np.random.Generator) -> None:
    """Add ``count`` faces with seeded random unit vectors, in segments as several IndexFaces calls would."""
    store = open_store(str(store_dir), store_dir / ".bench-cache")
    info = store.view(COLLECTION).info
    for start in range(0, count, 200):
        size = min(200, count - start)
        vectors = rng.normal(size=(size, info.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        records = [
            FaceRecord(
                face_id=str(uuid.UUID(bytes=rng.bytes(16), version=4)),
                image_id=str(uuid.UUID(bytes=rng.bytes(16), version=4)),
                external_image_id=f"synthetic-{start + i}",
                bounding_box=BoundingBox(0.4, 0.4, 0.2, 0.2),
                confidence=99.0,
                index_faces_model_version=info.face_model_version,
            )
            for i in range(size)
        ]
        store.add_faces(COLLECTION, records, vectors)


def downscale(data: bytes, width: int) -> bytes:
    image = Image.open(io.BytesIO(data))
    small = image.resize((width, round(image.height * width / image.width)))
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=90)
    return out.getvalue()


def time_calls(client, image: bytes, calls: int) -> list[float]:
    client.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": image})  # warm-up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        response = client.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": image})
        times.append((time.perf_counter() - start) * 1000)
        assert response["FaceMatches"], "the indexed face must be found"
    return times


def time_pipeline(image: bytes, calls: int) -> list[float]:
    analyze(image, max_faces=1)  # warm-up: sessions load once
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        analyze(image, max_faces=1)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = [path.read_bytes() for path in extract(FACE_API, DEMO, root / "photos")]
        store_dir = root / "store"
        port = free_port()
        env = {**os.environ, ENV_STORE: str(store_dir)}
        server = subprocess.Popen(
            [sys.executable, "-m", "facesearch", "serve", "--store", str(store_dir), "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            client = local_client(f"http://127.0.0.1:{port}")
            wait_ready(client, server)
            client.create_collection(CollectionId=COLLECTION)
            real = sum(
                len(client.index_faces(CollectionId=COLLECTION, Image={"Bytes": photo})["FaceRecords"])
                for photo in photos
            )
            top_up(store_dir, max(0, args.faces - real), rng)
            total = client.describe_collection(CollectionId=COLLECTION)["FaceCount"]
            queries = {"1920w": photos[0], "640w": downscale(photos[0], 640)}
            results = {}
            print(
                f"collection: {total} faces ({real} real, {total - real} synthetic); "
                f"{args.calls} calls per query"
            )
            print(f"{'query':>6} {'p50 ms':>8} {'p90 ms':>8} {'mean ms':>8} {'pipeline p50 ms':>16}")
            for name, image in queries.items():
                times = time_calls(client, image, args.calls)
                pipeline = statistics.median(time_pipeline(image, args.calls))
                p50 = statistics.median(times)
                p90 = statistics.quantiles(times, n=10)[-1]
                results[name] = {
                    "p50_ms": round(p50, 1),
                    "p90_ms": round(p90, 1),
                    "mean_ms": round(statistics.fmean(times), 1),
                    "pipeline_p50_ms": round(pipeline, 1),
                }
                print(f"{name:>6} {p50:8.1f} {p90:8.1f} {statistics.fmean(times):8.1f} {pipeline:16.1f}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        json.dumps(
            {"bench": "serve_latency", "faces": total, "calls": args.calls, "search_faces_by_image": results}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
