"""Soak: a bounded mixed load on `facesearch serve` and on the handler in-process; one line a minute.

    .venv/bin/python bench/soak.py [--minutes 3] [--target serve|handler|both] [--max-faces 40] [--seed 7]

The load is IndexFaces, SearchFacesByImage, ListFaces and DeleteFaces (weights 3:3:2:2) from one client on a
folder store, with the demo photos of @vladmandic/face-api. Once the collection holds ``--max-faces`` faces,
every IndexFaces is followed by deleting as many of the oldest faces, so the data stops growing and memory
should stay flat. Each minute prints requests, throughput, p50/p99 latency, error rate and the resident memory
of the process serving (the `facesearch serve` child, or this process for the handler). The last line is one
JSON object: per-minute rows for each target, and the memory change over the minutes that ended with the
data at ``--max-faces`` (``rss_growth_mb_while_data_flat``).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEMO_PHOTOS = [f"package/demo/sample{i}.jpg" for i in range(1, 7)]
WEIGHTS = {"IndexFaces": 3, "SearchFacesByImage": 3, "ListFaces": 2, "DeleteFaces": 2}
COLLECTION = "soak"
PHOTO_MAX_SIDE = 512


def photos() -> list[bytes]:
    from facesearch.devtools.registry import FACE_API, extract

    out = []
    with tempfile.TemporaryDirectory() as folder:
        for path in extract(FACE_API, DEMO_PHOTOS, Path(folder)):
            image = Image.open(path).convert("RGB")
            image.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            out.append(buffer.getvalue())
    return out


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


Call = Callable[[str, dict], dict]


def serve_target(store: Path) -> tuple[Call, int, Callable[[], None]]:
    """`facesearch serve` as a child process, and a boto3 client's call function."""
    process = subprocess.Popen(
        [sys.executable, "-m", "facesearch", "serve", "--store", str(store), "--port", "0"],
        cwd=REPO,
        env={**os.environ, "AWS_REGION": "us-east-1", "POWERTOOLS_LOG_LEVEL": "CRITICAL"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    banner = process.stdout.readline() if process.stdout else ""
    url = re.search(r"http://127\.0\.0\.1:\d+", banner)
    if not url:
        process.kill()
        raise RuntimeError(f"facesearch serve did not start: {banner!r}")
    client = boto3.client(
        "rekognition",
        endpoint_url=url.group(0),
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, read_timeout=120),
    )
    methods = {
        "IndexFaces": client.index_faces,
        "SearchFacesByImage": client.search_faces_by_image,
        "ListFaces": client.list_faces,
        "DeleteFaces": client.delete_faces,
        "CreateCollection": client.create_collection,
    }

    def call(operation: str, params: dict) -> dict:
        try:
            return methods[operation](**params)
        except ClientError as error:
            return {"Error": error.response["Error"]["Code"]}

    def stop() -> None:
        process.terminate()
        process.wait(timeout=30)

    return call, process.pid, stop


def handler_target(store: Path) -> tuple[Call, int, Callable[[], None]]:
    """The Lambda handler in this process, fed API Gateway REST events as `facesearch serve` builds them."""
    os.environ["FACESEARCH_STORE"] = str(store)
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    from facesearch import lazy
    from facesearch.devtools.server import LocalLambdaContext, to_gateway_event
    from facesearch.handler import lambda_handler

    lazy.reset_all()

    def call(operation: str, params: dict) -> dict:
        wire = {
            k: ({"Bytes": base64.b64encode(v["Bytes"]).decode()} if k == "Image" else v)
            for k, v in params.items()
        }
        headers = {
            "X-Amz-Target": f"RekognitionService.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
        }
        event = to_gateway_event("POST", "/", headers, json.dumps(wire).encode(), "127.0.0.1")
        answer = lambda_handler(event, LocalLambdaContext())
        body = json.loads(answer["body"])
        return body if answer["statusCode"] == 200 else {"Error": body.get("__type")}

    return call, os.getpid(), lambda: None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def soak(
    name: str, call: Call, pid: int, images: list[bytes], minutes: float, max_faces: int, seed: int
) -> dict:
    rng = random.Random(seed)
    call("CreateCollection", {"CollectionId": COLLECTION})
    faces: list[str] = []
    rows = []
    operations = list(WEIGHTS)
    weights = list(WEIGHTS.values())
    end = time.monotonic() + minutes * 60
    while time.monotonic() < end:
        minute_end = min(end, time.monotonic() + 60)
        latencies: list[float] = []
        errors = 0
        started = time.monotonic()
        while time.monotonic() < minute_end:
            operation = rng.choices(operations, weights)[0]
            image = {"Bytes": images[rng.randrange(len(images))]}
            if operation == "IndexFaces":
                params = {"CollectionId": COLLECTION, "Image": image, "MaxFaces": 4}
            elif operation == "SearchFacesByImage":
                params = {"CollectionId": COLLECTION, "Image": image, "MaxFaces": 10}
            elif operation == "ListFaces":
                params = {"CollectionId": COLLECTION, "MaxResults": 100}
            else:
                if not faces:
                    continue
                doomed = faces[: rng.randint(1, 3)]
                params = {"CollectionId": COLLECTION, "FaceIds": doomed}
            t0 = time.perf_counter()
            answer = call(operation, params)
            latencies.append((time.perf_counter() - t0) * 1000)
            if "Error" in answer:
                errors += 1  # SearchFacesByImage on an empty collection, etc. are still errors: counted
                continue
            if operation == "IndexFaces":
                faces.extend(record["Face"]["FaceId"] for record in answer["FaceRecords"])
                if len(faces) > max_faces:  # data stops growing: delete as many of the oldest
                    extra, faces = faces[: len(faces) - max_faces], faces[len(faces) - max_faces :]
                    for chunk in range(0, len(extra), 100):
                        call(
                            "DeleteFaces", {"CollectionId": COLLECTION, "FaceIds": extra[chunk : chunk + 100]}
                        )
            elif operation == "DeleteFaces":
                faces = faces[len(params["FaceIds"]) :]
        seconds = time.monotonic() - started
        row = {
            "target": name,
            "minute": len(rows) + 1,
            "requests": len(latencies),
            "per_second": round(len(latencies) / seconds, 2),
            "p50_ms": round(percentile(latencies, 0.50), 1),
            "p99_ms": round(percentile(latencies, 0.99), 1),
            "error_rate": round(errors / max(1, len(latencies)), 4),
            "rss_mb": round(rss_mb(pid), 1),
            "faces": len(faces),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    # Memory once the data stopped growing: from the end of the first minute that ended at --max-faces.
    steady = [row for row in rows if row["faces"] >= max_faces]
    return {
        "rows": rows,
        "requests": sum(row["requests"] for row in rows),
        "rss_growth_mb_first_to_last_minute": round(rows[-1]["rss_mb"] - rows[0]["rss_mb"], 1)
        if rows
        else 0.0,
        "steady_minutes": len(steady),
        "rss_growth_mb_while_data_flat": round(steady[-1]["rss_mb"] - steady[0]["rss_mb"], 1)
        if steady
        else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes per target (default 3)")
    parser.add_argument("--target", choices=["serve", "handler", "both"], default="both")
    parser.add_argument("--max-faces", type=int, default=40, help="faces kept once the data stops growing")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    images = photos()
    results = {}
    targets = ["serve", "handler"] if args.target == "both" else [args.target]
    for name in targets:
        with tempfile.TemporaryDirectory() as folder:
            make = serve_target if name == "serve" else handler_target
            call, pid, stop = make(Path(folder) / "store")
            try:
                results[name] = soak(name, call, pid, images, args.minutes, args.max_faces, args.seed)
            finally:
                stop()
    print(json.dumps({"minutes": args.minutes, "max_faces": args.max_faces, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
