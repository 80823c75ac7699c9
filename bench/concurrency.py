"""Searches per second through `facesearch serve` with 1, 2 and 4 concurrent boto3 clients.

Starts `python -m facesearch serve` as a subprocess on a fresh folder store with one collection of
``--faces`` faces (the real faces of the face-api demo photos indexed through IndexFaces, topped up with
seeded random unit vectors through the store API, as ``bench/serve_latency.py`` does). Then, for each
operation (SearchFaces by FaceId, SearchFacesByImage with the demo photo downscaled to 640 px wide) and each
client count, that many threads, each with its own unchanged boto3 client, call the operation back to back
for ``--seconds``; it prints calls per second (and the ratio to one client), p50 latency, and the server
process's CPU seconds per wall second (above 1: requests ran in parallel). One warm-up round first. On a
2-core machine 4 clients cannot beat 2. Last line: JSON.

    .venv/bin/python bench/concurrency.py [--faces 3000] [--seconds 6] [--clients 1 2 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from serve_latency import COLLECTION, DEMO, downscale, free_port, local_client, top_up, wait_ready

from facesearch.devtools.registry import FACE_API, extract
from facesearch.settings import ENV_STORE, REPO_ROOT

SEED = 0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _round(url: str, call, clients: int, seconds: float, server_pid: int) -> dict:
    """``clients`` threads calling ``call(client, i)`` back to back for ``seconds``."""
    boto_clients = [local_client(url, connections=1) for _ in range(clients)]
    for client in boto_clients:  # connect and warm each client before the clock starts
        call(client, 0)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start_line = threading.Barrier(clients + 1)
    stop = threading.Event()

    def work(index: int) -> None:
        client, mine = boto_clients[index], latencies[index]
        start_line.wait()
        i = index
        while not stop.is_set():
            t = time.perf_counter()
            call(client, i)
            mine.append(time.perf_counter() - t)
            i += clients

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    cpu_before = _cpu_seconds(server_pid)
    start_line.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    cpu = _cpu_seconds(server_pid) - cpu_before
    every = [latency for mine in latencies for latency in mine]
    return {
        "clients": clients,
        "calls": len(every),
        "per_s": round(len(every) / wall, 1),
        "p50_ms": round(statistics.median(every) * 1000, 1),
        "server_cpu_per_wall_s": round(cpu / wall, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = [path.read_bytes() for path in extract(FACE_API, DEMO, root / "photos")]
        store_dir = root / "store"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "facesearch",
                "serve",
                "--store",
                str(store_dir),
                "--port",
                str(port),
                "--quiet",
            ],
            cwd=REPO_ROOT,
            env={**os.environ, ENV_STORE: str(store_dir)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            client = local_client(url, connections=1)
            wait_ready(client, server)
            client.create_collection(CollectionId=COLLECTION)
            real = [
                record["Face"]["FaceId"]
                for photo in photos
                for record in client.index_faces(CollectionId=COLLECTION, Image={"Bytes": photo})[
                    "FaceRecords"
                ]
            ]
            top_up(store_dir, max(0, args.faces - len(real)), rng)
            total = client.describe_collection(CollectionId=COLLECTION)["FaceCount"]
            face_ids = real + [
                face["FaceId"] for face in client.list_faces(CollectionId=COLLECTION, MaxResults=200)["Faces"]
            ]
            image = downscale(photos[0], 640)

            def by_face_id(client, i: int) -> None:
                answer = client.search_faces(
                    CollectionId=COLLECTION, FaceId=face_ids[i % len(face_ids)], MaxFaces=10
                )
                assert "FaceMatches" in answer

            def by_image(client, i: int) -> None:
                answer = client.search_faces_by_image(
                    CollectionId=COLLECTION, Image={"Bytes": image}, MaxFaces=10
                )
                assert answer["FaceMatches"], "the indexed face must be found"

            print(f"collection: {total} faces ({len(real)} real); {args.seconds:g} s per round", flush=True)
            print(
                f"{'operation':>18} {'clients':>7} {'calls/s':>7} {'x 1':>5} {'p50 ms':>7} "
                f"{'server CPU/s':>12}"
            )
            for name, call in (("SearchFaces", by_face_id), ("SearchFacesByImage", by_image)):
                _round(url, call, 1, 1.0, server.pid)  # warm-up: sessions, segments, connections
                rows = results[name] = []
                for clients in args.clients:
                    row = _round(url, call, clients, args.seconds, server.pid)
                    row["x_one_client"] = round(row["per_s"] / rows[0]["per_s"], 2) if rows else 1.0
                    rows.append(row)
                    print(
                        f"{name:>18} {clients:>7} {row['per_s']:>7} {row['x_one_client']:>5} "
                        f"{row['p50_ms']:>7} {row['server_cpu_per_wall_s']:>12}",
                        flush=True,
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps({"bench": "concurrency", "faces": total, "seconds": args.seconds, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
