"""The in-function (hnsw) engine at user sizes: build, segment bytes, memory, cold/warm load, latency, recall.

    .venv/bin/python bench/store.py --capacity 250000        (or: .venv/bin/python bench/capacity.py --n ...)

One collection of N seeded identity-clustered 512-D unit vectors (N/10 identities, same-person cosine ~0.55,
as ``bench/store.py --data identity``) is built with ``add_faces`` as one segment (a fully compacted
collection) on an S3 store served over HTTP by a moto server in its own process. Then two fresh
processes, as two new function instances, open it: the first with an empty /tmp cache (cold load over
HTTP from the S3 endpoint), the second with the warm /tmp cache the first left (load from local disk);
the second also times warm searches. Each reports its own peak RSS, which is what one instance holding
the collection needs. The parent computes recall@10 against brute force (numpy, same vectors) and the
share of true matches at FaceMatchThreshold 80 found by a search with MaxFaces 100. Last line: JSON.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

MODEL = "bench-model"
COLLECTION = "capacity"
K = 10
# SearchFaces' MaxFaces for the threshold measurement (its default in the Rekognition model is 80; 100 is
# S3 Vectors' topK ceiling, so both engines are compared at the same width).
MATCH_K = 100
# Similarity 80 in the shipped pack's calibration: faceplugin-fr-int8-1.0 manifest, similarity.fit
# .at_similarity_80.cosine (logistic c50=0.2404, k=9.437).
MATCH_COSINE_AT_80 = 0.3873
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _unit(rng, n, dim):
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def identity_data(seed: int, n: int, dim: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """N faces of N/10 identities and ``queries`` new faces of enrolled identities, as unit rows."""
    rng = np.random.default_rng(seed)
    centroids = _unit(rng, max(n // 10, 1), dim)
    vectors = np.empty((n, dim), dtype=np.float32)
    chunk = 50_000
    for start in range(0, n, chunk):  # in chunks: the noise of all N at once would double peak memory
        end = min(n, start + chunk)
        rows = centroids[rng.integers(0, len(centroids), end - start)] + 0.9 * _unit(rng, end - start, dim)
        vectors[start:end] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    query = centroids[rng.integers(0, len(centroids), queries)] + 0.9 * _unit(rng, queries, dim)
    return vectors, query / np.linalg.norm(query, axis=1, keepdims=True)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return _peak_rss_mb()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _moto_server() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, endpoint
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto server did not start")


def probe(location: str, cache: Path, queries_file: Path, answers_file: Path | None) -> dict:
    """In a fresh process: open the collection (timed), then optionally time warm searches."""
    from facesearch.store import open_store

    store = open_store(location, cache, cache_max_bytes=1 << 40)
    queries = np.load(queries_file)
    rss_before = _rss_mb()
    start = time.perf_counter()
    store.view(COLLECTION).search(queries[0], k=K)
    result = {"load_s": round(time.perf_counter() - start, 2), "index_rss_mb": round(_rss_mb() - rss_before)}
    if answers_file is not None:
        for query in queries[:50]:  # warm-up: fault the graph's pages in before timing
            store.view(COLLECTION).search(query, k=K)
        latencies, top10, matched = [], [], []
        for query in queries:
            t = time.perf_counter()
            hits = store.view(COLLECTION).search(query, k=K)
            latencies.append(time.perf_counter() - t)
            top10.append([record.face_id for record, _ in hits])
            hits = store.view(COLLECTION).search(query, k=MATCH_K, min_cosine=MATCH_COSINE_AT_80)
            matched.append([record.face_id for record, _ in hits])
        answers_file.write_text(json.dumps({"top10": top10, "matched": matched}))
        ms = np.array(latencies) * 1000
        result.update(
            p50_ms=round(float(np.percentile(ms, 50)), 2), p99_ms=round(float(np.percentile(ms, 99)), 2)
        )
    result["peak_rss_mb"] = round(_peak_rss_mb())
    return result


def _run_probe(env: dict, location: str, cache: Path, queries_file: Path, answers: Path | None) -> dict:
    command = [sys.executable, __file__, "--probe", location, str(cache), str(queries_file)]
    if answers is not None:
        command.append(str(answers))
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"probe failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(n: int, dim: int, queries: int, seed: int, endpoint: str) -> dict:
    import boto3

    from facesearch.domain import BoundingBox, FaceRecord
    from facesearch.store import open_store

    vectors, query_set = identity_data(seed, n, dim, queries)
    rng = np.random.default_rng(seed + 1)
    box = BoundingBox(0.1, 0.1, 0.2, 0.2)
    ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]
    records = [FaceRecord(face_id, "image", None, box, 99.0, MODEL) for face_id in ids]
    env = {**os.environ, **DUMMY_AWS, "AWS_ENDPOINT_URL_S3": endpoint}
    bucket = f"capacity-{n}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    location = f"s3://{bucket}/store"
    with tempfile.TemporaryDirectory(prefix="facesearch-capacity-") as folder:
        root = Path(folder)
        store = open_store(location, root / "build-cache", cache_max_bytes=1 << 40)
        store.create_collection(COLLECTION, face_model_version=MODEL, dim=dim)
        rss_before = _rss_mb()
        start = time.perf_counter()
        store.add_faces(COLLECTION, records, vectors)
        build_s = time.perf_counter() - start
        build_rss = _rss_mb() - rss_before
        segment_bytes = sum(p.stat().st_size for p in (root / "build-cache").iterdir())
        del store
        np.save(root / "queries.npy", query_set)
        cold = _run_probe(env, location, root / "cache", root / "queries.npy", None)
        answers_file = root / "answers.json"
        warm = _run_probe(env, location, root / "cache", root / "queries.npy", answers_file)
        answers = json.loads(answers_file.read_text())
    found, truths, found_matches = 0, 0, 0
    for query, top10, matched in zip(query_set, answers["top10"], answers["matched"], strict=True):
        scores = vectors @ query
        order = np.argpartition(-scores, MATCH_K)[:MATCH_K]
        order = order[np.argsort(-scores[order])]
        found += len({ids[i] for i in order[:K]} & set(top10))
        true_matches = {ids[i] for i in order if scores[i] >= MATCH_COSINE_AT_80}
        truths += len(true_matches)
        found_matches += len(true_matches & set(matched))
    return {
        "n": n,
        "dim": dim,
        "queries": queries,
        "build_s": round(build_s, 1),
        "build_rss_growth_mb": round(build_rss),
        "segment_mb": round(segment_bytes / 2**20, 1),
        "segment_bytes_per_face": round(segment_bytes / n),
        "cold_load_s3_http_s": cold["load_s"],
        "cold_peak_rss_mb": cold["peak_rss_mb"],
        "warm_tmp_load_s": warm["load_s"],
        "warm_peak_rss_mb": warm["peak_rss_mb"],
        "index_rss_mb": warm["index_rss_mb"],
        "search_p50_ms": warm["p50_ms"],
        "search_p99_ms": warm["p99_ms"],
        "recall_at_10": round(found / (K * queries), 4),
        "true_matches_at_similarity_80": truths,
        "share_of_matches_found": round(found_matches / truths, 4) if truths else None,
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--probe":
        location, cache, queries_file, *answers = argv[1:]
        print(
            json.dumps(
                probe(location, Path(cache), Path(queries_file), Path(answers[0]) if answers else None)
            )
        )
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[250_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rows = []
    server, endpoint = _moto_server()  # one S3 endpoint (its own process) for every N
    os.environ.update({**DUMMY_AWS, "AWS_ENDPOINT_URL_S3": endpoint})
    try:
        for n in args.n:
            row = run(n, args.dim, args.queries, args.seed, endpoint)
            rows.append(row)
            print(" ".join(f"{key}={value}" for key, value in row.items()), flush=True)
    finally:
        server.terminate()
        server.wait()
    print(json.dumps({"bench": "capacity", "rows": rows}))


if __name__ == "__main__":
    main()
