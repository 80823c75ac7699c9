"""The in-function (hnsw) engine at user sizes: build, segment bytes, memory, cold/warm load, latency, recall.

    nice -n 19 .venv/bin/python bench/store.py --capacity 1000000 [--ef-construction 64]

One collection of N seeded identity-clustered 512-D unit vectors (N/10 identities, same-person cosine ~0.55,
as ``bench/store.py --data identity``) on an S3 store served over HTTP by a moto server in its own process.
Every stage runs in its own process so each one's peak RSS is its own and no two big ones overlap: the
parent writes the vectors to a ``.npy`` file (in chunks) and holds none of them; a build process loads them
and times ``add_faces`` as one segment (a fully compacted collection; hnswlib adds with every core); then two
fresh processes, as two new function instances, open the collection: the first with an empty /tmp cache
(cold load over HTTP from the S3 endpoint), the second with the warm /tmp cache the first left (load from
local disk); the second also times warm searches. The segment is written once and read by both. The parent
computes recall@10 against brute force (numpy over the memory-mapped vectors, in chunks) and the share of
true matches at FaceMatchThreshold 80 found by a search with MaxFaces 100. ``--ef-sweep``: the warm process
also searches the loaded graph directly at each of these ``ef`` (the per-collection search breadth), and the
same recall, share and latency (raw graph search: no manifest read) are printed per ef. Last line: JSON.

Guard rails for a shared machine: each child runs under an address-space limit (``--child-max-gb``; the
moto server under ``--server-max-gb``), and a watchdog kills this run's children when the machine's
MemAvailable falls below ``--min-available-gb``, reporting the stage it stopped.
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
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from facesearch.store.core import DEFAULT_INDEX

MODEL = "bench-model"
COLLECTION = "capacity"
K = 10
# SearchFaces' MaxFaces for the threshold measurement (its default in the Rekognition model is 80; 100 is
# S3 Vectors' topK ceiling, so both engines are compared at the same width).
MATCH_K = 100
# Similarity 80 in the shipped pack's calibration: faceplugin-fr-int8-1.0 manifest, similarity.fit
# .at_similarity_80.cosine (logistic c50=0.2466, k=7.5956). Runs before 2026-12-02 used 0.3873 (the
# previous calibration, c50=0.2404, k=9.437).
MATCH_COSINE_AT_80 = 0.4291
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Rows generated (and brute-forced) at a time: bounds the parent's memory whatever N is.
CHUNK = 50_000
GIB = 1 << 30


def _unit(rng, n, dim):
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def write_identity_data(seed: int, n: int, dim: int, queries: int, folder: Path) -> None:
    """N faces of N/10 identities (``vectors.npy``) and ``queries`` new faces of enrolled identities
    (``queries.npy``), as unit rows; written chunk by chunk, never all in memory."""
    rng = np.random.default_rng(seed)
    centroids = _unit(rng, max(n // 10, 1), dim)
    vectors = np.lib.format.open_memmap(folder / "vectors.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, CHUNK):
        end = min(n, start + CHUNK)
        rows = centroids[rng.integers(0, len(centroids), end - start)] + 0.9 * _unit(rng, end - start, dim)
        vectors[start:end] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    vectors.flush()
    del vectors
    query = centroids[rng.integers(0, len(centroids), queries)] + 0.9 * _unit(rng, queries, dim)
    np.save(folder / "queries.npy", query / np.linalg.norm(query, axis=1, keepdims=True))


def face_ids(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed + 1)
    return [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]


def _peak_rss_mb() -> float:
    """This process's own peak (VmHWM). Not ru_maxrss: Linux carries the parent's resident set at fork
    into the child's ru_maxrss across exec, which once made these probes report their parent's memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / (1 << 20)
    return float("inf")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Guard:
    """This run's children: each under an address-space limit, all killed if the machine runs short."""

    def __init__(self, min_available_gb: float) -> None:
        self.min_available_gb = min_available_gb
        self.children: list[subprocess.Popen] = []
        self.tripped: str | None = None
        self.lowest_available_gb = _available_gb()
        self._stage = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="memory-guard", daemon=True)
        self._thread.start()

    def stage(self, name: str) -> None:
        self._stage = name

    def popen(self, command: list[str], max_gb: float, **kwargs) -> subprocess.Popen:
        limit = int(max_gb * GIB)

        def limit_address_space() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        child = subprocess.Popen(command, preexec_fn=limit_address_space, **kwargs)
        self.children.append(child)
        return child

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            available = _available_gb()
            self.lowest_available_gb = min(self.lowest_available_gb, available)
            if available < self.min_available_gb and self.tripped is None:
                self.tripped = (
                    f"stopped during {self._stage}: MemAvailable {available:.1f} GiB"
                    f" < {self.min_available_gb} GiB"
                )
                for child in self.children:
                    if child.poll() is None:
                        child.kill()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _moto_server(guard: Guard, max_gb: float) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    server = guard.popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        max_gb,
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


def build(location: str, folder: Path, seed: int, ef_construction: int) -> dict:
    """In a fresh process: create the collection and add every face as one segment (timed: wall and CPU)."""
    from facesearch.domain import BoundingBox, FaceRecord
    from facesearch.store import open_store
    from facesearch.store.manifest import IndexParams

    vectors = np.load(folder / "vectors.npy")
    box = BoundingBox(0.1, 0.1, 0.2, 0.2)
    records = [
        FaceRecord(face_id, "image", None, box, 99.0, MODEL) for face_id in face_ids(seed, len(vectors))
    ]
    cache = folder / "build-cache"
    store = open_store(location, cache, cache_max_bytes=1 << 40)
    params = IndexParams(dim=vectors.shape[1], **{**DEFAULT_INDEX, "ef_construction": ef_construction})
    store.create_collection(COLLECTION, face_model_version=MODEL, dim=vectors.shape[1], index=params)
    rss_before = _rss_mb()
    start, cpu_start = time.perf_counter(), _cpu_s()
    store.add_faces(COLLECTION, records, vectors)
    build_s, build_cpu_s = time.perf_counter() - start, _cpu_s() - cpu_start
    return {
        "build_s": round(build_s, 1),
        "build_cpu_s": round(build_cpu_s, 1),
        "build_rss_growth_mb": round(_rss_mb() - rss_before),
        "build_peak_rss_mb": round(_peak_rss_mb()),
        "segment_bytes": sum(path.stat().st_size for path in cache.iterdir()),
    }


def probe(
    location: str, cache: Path, queries_file: Path, answers_file: Path | None, sweep: list[int]
) -> dict:
    """In a fresh process: open the collection (timed), then optionally time warm searches (and ``sweep``)."""
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

        def store_search(query: np.ndarray, k: int) -> list[tuple[str, float]]:
            return [(r.face_id, cosine) for r, cosine in store.view(COLLECTION).search(query, k=k)]

        answers = {"store": _answers(queries, store_search)}
        for ef in sweep:
            answers[f"ef {ef}"] = _answers(queries, _graph_search(store, ef))
        answers_file.write_text(json.dumps(answers))
        result.update(p50_ms=answers["store"]["p50_ms"], p99_ms=answers["store"]["p99_ms"])
    result["peak_rss_mb"] = round(_peak_rss_mb())
    return result


def _graph_search(store, ef: int):
    """Search the collection's one graph segment directly at ``ef`` (what the collection's ef would give)."""
    from facesearch.store import segment as seg

    manifest = store.view(COLLECTION).manifest
    (ref,) = manifest.segments
    loaded = store.segment(manifest, ref, graph=True)

    def search(query: np.ndarray, k: int) -> list[tuple[str, float]]:
        hits = seg.search(loaded, query, k, frozenset(), max(ef, k))
        return [(loaded.records[row].face_id, cosine) for row, cosine in hits]

    return search


def _answers(queries: np.ndarray, search) -> dict:
    """Top K (timed) and the matches at Similarity 80 among the top MATCH_K, for every query."""
    latencies, top10, matched = [], [], []
    for query in queries:
        t = time.perf_counter()
        hits = search(query, K)
        latencies.append(time.perf_counter() - t)
        top10.append([face_id for face_id, _ in hits])
        matched.append(
            [face_id for face_id, cosine in search(query, MATCH_K) if cosine >= MATCH_COSINE_AT_80]
        )
    ms = np.array(latencies) * 1000
    return {
        "top10": top10,
        "matched": matched,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def _child(guard: Guard, max_gb: float, env: dict, *args: str) -> dict:
    """Run ``capacity.py *args`` in a fresh process under the guard; its last stdout line (JSON)."""
    with tempfile.TemporaryFile("w+") as err:
        child = guard.popen(
            [sys.executable, __file__, *args], max_gb, env=env, stdout=subprocess.PIPE, stderr=err, text=True
        )
        out, _ = child.communicate()
        if child.returncode != 0:
            err.seek(0)
            stopped = f" ({guard.tripped})" if guard.tripped else ""
            raise RuntimeError(f"{args[0]} failed ({child.returncode}){stopped}:\n{err.read()[-4000:]}")
    return json.loads(out.strip().splitlines()[-1])


def brute_force(vectors_file: Path, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top MATCH_K (rows, cosines) of every query, nearest first, scanning the vectors in chunks."""
    vectors = np.load(vectors_file, mmap_mode="r")
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    best_scores = np.zeros((len(queries), 0), dtype=np.float32)
    for start in range(0, len(vectors), CHUNK):
        scores = (np.asarray(vectors[start : start + CHUNK]) @ queries.T).T  # (queries, chunk)
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        scores = np.concatenate([best_scores, scores], axis=1)
        rows = np.concatenate([best_rows, rows], axis=1)
        keep = np.argpartition(-scores, min(MATCH_K, scores.shape[1] - 1), axis=1)[:, :MATCH_K]
        best_scores = np.take_along_axis(scores, keep, axis=1)
        best_rows = np.take_along_axis(rows, keep, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_rows, order, axis=1), np.take_along_axis(best_scores, order, axis=1)


def run(n: int, args: argparse.Namespace, endpoint: str, guard: Guard) -> dict:
    import boto3

    env = {**os.environ, **DUMMY_AWS, "AWS_ENDPOINT_URL_S3": endpoint}
    bucket = f"capacity-{n}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    location = f"s3://{bucket}/store"
    with tempfile.TemporaryDirectory(prefix="facesearch-capacity-", dir=args.work) as work:
        root = Path(work)
        guard.stage(f"{n}: writing vectors")
        write_identity_data(args.seed, n, args.dim, args.queries, root)
        guard.stage(f"{n}: build")
        built = _child(
            guard,
            args.child_max_gb,
            env,
            "--build",
            location,
            str(root),
            str(args.seed),
            str(args.ef_construction),
        )
        print(f"n={n} built: {json.dumps(built)}", flush=True)
        queries_file = root / "queries.npy"
        parent_rss_mb = round(_rss_mb())  # what a child's ru_maxrss would inherit (see _peak_rss_mb)
        guard.stage(f"{n}: cold load over HTTP")
        cold = _child(
            guard, args.child_max_gb, env, "--probe", location, str(root / "cache"), str(queries_file)
        )
        print(f"n={n} cold: {json.dumps(cold)}", flush=True)
        answers_file = root / "answers.json"
        guard.stage(f"{n}: warm /tmp load and searches")
        warm = _child(
            guard,
            args.child_max_gb,
            env,
            "--probe",
            location,
            str(root / "cache"),
            str(queries_file),
            str(answers_file),
            *map(str, args.ef_sweep),
        )
        print(f"n={n} warm: {json.dumps(warm)}", flush=True)
        answers = json.loads(answers_file.read_text())
        guard.stage(f"{n}: brute force")
        query_set = np.load(queries_file)
        true_rows, true_scores = brute_force(root / "vectors.npy", query_set)
    ids = face_ids(args.seed, n)
    scored = {name: _score(ids, true_rows, true_scores, got) for name, got in answers.items()}
    for name, score in scored.items():
        if name != "store":
            print(f"n={n} {name}: {json.dumps(score)}", flush=True)
    segment_bytes = built["segment_bytes"]
    return {
        "n": n,
        "dim": args.dim,
        "queries": args.queries,
        "ef_construction": args.ef_construction,
        "build_s": built["build_s"],
        "build_cpu_s": built["build_cpu_s"],
        "build_rss_growth_mb": built["build_rss_growth_mb"],
        "build_peak_rss_mb": built["build_peak_rss_mb"],
        "segment_mb": round(segment_bytes / 2**20, 1),
        "segment_bytes_per_face": round(segment_bytes / n),
        "cold_load_s3_http_s": cold["load_s"],
        "cold_peak_rss_mb": cold["peak_rss_mb"],
        "warm_tmp_load_s": warm["load_s"],
        "warm_peak_rss_mb": warm["peak_rss_mb"],
        "index_rss_mb": warm["index_rss_mb"],
        "search_p50_ms": warm["p50_ms"],
        "search_p99_ms": warm["p99_ms"],
        "recall_at_10": scored["store"]["recall_at_10"],
        "true_matches_at_similarity_80": scored["store"]["true_matches"],
        "share_of_matches_found": scored["store"]["share_of_matches_found"],
        "ef_sweep": {name: score for name, score in scored.items() if name != "store"},
        "lowest_mem_available_gib": round(guard.lowest_available_gb, 1),
        "parent_rss_mb": parent_rss_mb,
    }


def _score(ids: list[str], true_rows: np.ndarray, true_scores: np.ndarray, got: dict) -> dict:
    found, truths, found_matches = 0, 0, 0
    for rows, scores, top10, matched in zip(
        true_rows, true_scores, got["top10"], got["matched"], strict=True
    ):
        found += len({ids[i] for i in rows[:K]} & set(top10))
        true_matches = {ids[i] for i, score in zip(rows, scores, strict=True) if score >= MATCH_COSINE_AT_80}
        truths += len(true_matches)
        found_matches += len(true_matches & set(matched))
    return {
        "recall_at_10": round(found / (K * len(true_rows)), 4),
        "true_matches": truths,
        "share_of_matches_found": round(found_matches / truths, 4) if truths else None,
        "p50_ms": got["p50_ms"],
        "p99_ms": got["p99_ms"],
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--build":
        print(json.dumps(build(argv[1], Path(argv[2]), int(argv[3]), int(argv[4]))))
        return
    if argv and argv[0] == "--probe":
        location, cache, queries_file, *answers = argv[1:]
        answers_file = Path(answers[0]) if answers else None
        print(
            json.dumps(
                probe(location, Path(cache), Path(queries_file), answers_file, [int(a) for a in answers[1:]])
            )
        )
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[250_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--ef-construction",
        type=int,
        default=DEFAULT_INDEX["ef_construction"],
        help="the graph's build breadth (default: the engine's); memory and bytes do not depend on it",
    )
    parser.add_argument(
        "--ef-sweep", type=int, nargs="*", default=[], help="also search the graph directly at these ef"
    )
    parser.add_argument("--work", default=None, help="folder for the vectors and the /tmp caches")
    parser.add_argument("--child-max-gb", type=float, default=16.0, help="address-space limit of each child")
    parser.add_argument("--server-max-gb", type=float, default=10.0, help="address-space limit of moto")
    parser.add_argument(
        "--min-available-gb", type=float, default=2.5, help="kill the run's children below this MemAvailable"
    )
    args = parser.parse_args(argv)
    rows = []
    guard = Guard(args.min_available_gb)
    server, endpoint = _moto_server(guard, args.server_max_gb)  # one S3 endpoint for every N
    os.environ.update({**DUMMY_AWS, "AWS_ENDPOINT_URL_S3": endpoint})
    try:
        for n in args.n:
            row = run(n, args, endpoint, guard)
            rows.append(row)
            print(" ".join(f"{key}={value}" for key, value in row.items()), flush=True)
    finally:
        server.terminate()
        server.wait()
        guard.close()
    print(json.dumps({"bench": "capacity", "rows": rows}))


if __name__ == "__main__":
    main()
