"""Benchmark the collections store: build, load-from-cache, query latency vs brute force, recall@10, memory.

    .venv/bin/python bench/store.py --n 10000 100000 --dim 512
    .venv/bin/python bench/store.py --capacity 250000      (capacity mode: bench/capacity.py)

Seeded unit vectors, two kinds (``--data``): ``uniform`` (i.i.d. Gaussian directions: the worst case
for any graph index, every neighbour is nearly equidistant) and ``identity`` (N/10 identities, faces =
centroid + noise with same-person cosine ~0.55, as face embeddings cluster). Queries are drawn the same
way (a new face of an enrolled identity, or a uniform direction). Per N and kind it prints build seconds
(add_faces as one segment: hnswlib build + upload), load-from-cache seconds (a new container whose disk
cache holds the segment), store.search p50/p99 ms on warm memory (each includes the manifest's
conditional GET), brute-force p50 ms (numpy matmul + argpartition, same vectors, same run), recall@10
against brute force, the blob calls of one warm read, resident memory; then recall/latency of the raw
index for a sweep of ef (the per-collection search parameter). The last line is one JSON object.

    .venv/bin/python bench/store.py --writes-of 1 --faces 100000 --dim 512 --root /dev/shm

Ingestion mode (``--writes-of W``): ``--faces`` faces written W at a time through ``add_faces`` (each
write compacts inline within its budget, as IndexFaces does), the scheduled maintenance job's
compaction every ``--maintenance-every`` faces (its seconds: "job s"). Every ``--report-every`` faces it
prints the segment count and search p50 ms (warm, k=10) before and after the job, write p50/max ms over
the interval and RSS; at the end (and at ``--compare-at`` sizes) the same faces are added in one write
to a second collection, both are searched alternately, and their p50s, ratio and recalls@10 against
brute force are printed.

    .venv/bin/python bench/store.py --concurrency 1 2 4 --faces 50000 --dim 512

Concurrency mode: a warm collection of ``--faces`` faces (added in one write), then ``--queries``
searches split over 1, 2, 4... threads sharing the store, as ``facesearch serve``'s threads do; prints
searches per second (median of alternating rounds) and the CPU seconds used per wall second (above 1:
searches ran in parallel) for each, and the same with every search taken under one lock (how the store
serialised queries before).
"""

from __future__ import annotations

import os

# One BLAS thread: brute force and an HNSW query then each use one core (as a 1-vCPU Lambda would), and
# the comparison is not skewed by thread contention on a shared machine. Must precede the numpy import.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from facesearch.domain import BoundingBox, FaceRecord
from facesearch.store import open_store
from facesearch.store.blobs import NOT_MODIFIED
from facesearch.store.core import DEFAULT_INDEX
from facesearch.store.manifest import IndexParams

MODEL = "bench-model"
K = 10
# Face search keeps only matches above a similarity threshold; neighbours this close are the ones that matter.
MATCH_COSINE = 0.3


class _Counting:
    """Counts the blob calls (and not-modified answers) of the wrapped store."""

    def __init__(self, inner) -> None:
        self.inner, self.location, self.calls, self.not_modified = inner, inner.location, [], 0

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def call(*args, **kwargs):
            self.calls.append(name)
            result = method(*args, **kwargs)
            self.not_modified += result is NOT_MODIFIED
            return result

        return call


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _unit(rng, n, dim):
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _records(rng, n):
    box = BoundingBox(0.1, 0.1, 0.2, 0.2)
    return [
        FaceRecord(str(uuid.UUID(bytes=rng.bytes(16), version=4)), "image", None, box, 99.0, MODEL)
        for _ in range(n)
    ]


def _percentile_ms(samples, q):
    return float(np.percentile(np.array(samples) * 1000, q))


def _data(kind: str, rng, n: int, dim: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "uniform":
        return _unit(rng, n, dim), _unit(rng, queries, dim)
    centroids = _unit(rng, max(n // 10, 1), dim)
    # Noise of norm 0.9 around a centroid: cosine ~0.74 to it and ~0.55 between two faces of one identity.
    vectors = centroids[rng.integers(0, len(centroids), n)] + 0.9 * _unit(rng, n, dim)
    query = centroids[rng.integers(0, len(centroids), queries)] + 0.9 * _unit(rng, queries, dim)
    return (
        vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
        query / np.linalg.norm(query, axis=1, keepdims=True),
    )


def run(
    kind: str, n: int, dim: int, queries: int, root: Path, seed: int, sweep: list[int], hnsw: dict
) -> dict:
    rng = np.random.default_rng(seed)
    vectors, query_set = _data(kind, rng, n, dim, queries)
    records = _records(rng, n)
    location, cache = root / f"store-{kind}-{n}", root / f"cache-{kind}-{n}"
    store = open_store(str(location), cache, cache_max_bytes=1 << 40)
    store.create_collection("bench", face_model_version=MODEL, dim=dim, index=IndexParams(dim=dim, **hnsw))
    start = time.perf_counter()
    store.add_faces("bench", records, vectors)
    build_s = time.perf_counter() - start
    del store

    fresh = open_store(str(location), cache, cache_max_bytes=1 << 40)
    rss_before = _rss_mb()
    start = time.perf_counter()
    fresh.view("bench").search(vectors[0], k=K)
    load_s = time.perf_counter() - start
    rss_loaded = _rss_mb()

    ids = [r.face_id for r in records]
    for query in query_set[:50]:  # warm-up: fault the graph's pages in before timing
        fresh.view("bench").search(query, k=K)
        np.argpartition(-(vectors @ query), K)
    # Two separate loops: interleaving them would let each brute-force pass flush the graph from the caches.
    latencies, answers = [], []
    for query in query_set:
        t = time.perf_counter()
        answers.append(fresh.view("bench").search(query, k=K))
        latencies.append(time.perf_counter() - t)
    brute, found, truths, matches, matches_found = [], 0, [], 0, 0
    for query, hits in zip(query_set, answers, strict=True):
        t = time.perf_counter()
        scores = vectors @ query
        top = np.argpartition(-scores, K)[:K]
        brute.append(time.perf_counter() - t)
        truths.append(set(top.tolist()))
        got = {r.face_id for r, _ in hits}
        found += len({ids[i] for i in top} & got)
        close = {ids[i] for i in top if scores[i] >= MATCH_COSINE}
        matches += len(close)
        matches_found += len(close & got)

    # The raw index at other ef values: the recall/latency trade-off a collection can be created with.
    (loaded,) = fresh.memory.loaded()
    ef_sweep = []
    for ef in sweep:
        loaded.index.set_ef(ef)
        lat, hit = [], 0
        for query, truth in zip(query_set, truths, strict=True):
            t = time.perf_counter()
            labels, _ = loaded.index.knn_query(query.reshape(1, -1), k=K)
            lat.append(time.perf_counter() - t)
            hit += len(truth & set(labels[0].tolist()))
        ef_sweep.append(
            {"ef": ef, "p50_ms": round(_percentile_ms(lat, 50), 3), "recall_at_10": hit / (K * queries)}
        )

    fresh.blobs = counting = _Counting(fresh.blobs)
    fresh.view("bench").search(query_set[0], k=K)
    row = {
        "data": kind,
        "n": n,
        "dim": dim,
        "build_s": round(build_s, 2),
        "load_from_cache_s": round(load_s, 3),
        "query_p50_ms": round(_percentile_ms(latencies, 50), 3),
        "query_p99_ms": round(_percentile_ms(latencies, 99), 3),
        "brute_p50_ms": round(_percentile_ms(brute, 50), 3),
        "speedup_p50": round(_percentile_ms(brute, 50) / _percentile_ms(latencies, 50), 1),
        "recall_at_10": round(found / (K * queries), 4),
        f"recall_at_10_above_cos_{MATCH_COSINE}": round(matches_found / matches, 4) if matches else None,
        "true_neighbours_above_cos": matches,
        "ef_sweep": ef_sweep,
        "index": hnsw,
        "warm_read_blob_calls": counting.calls,
        "warm_read_not_modified": counting.not_modified,
        "index_rss_mb": round(rss_loaded - rss_before, 1),
        "rss_mb": round(_rss_mb(), 1),
        "segment_mb": round(sum(p.stat().st_size for p in cache.iterdir()) / 2**20, 1),
    }
    shutil.rmtree(location, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    return row


def ingest(args, root: Path, hnsw: dict) -> dict:
    """N faces through the store API ``args.writes_of`` at a time, compared with the same faces in bulk."""
    rng = np.random.default_rng(args.seed)
    vectors, queries = _data("identity", rng, args.faces, args.dim, args.queries)
    records = _records(rng, args.faces)
    params = IndexParams(dim=args.dim, **hnsw)
    store = open_store(str(root / "ingest"), root / "ingest-cache", cache_max_bytes=1 << 40)
    store.create_collection("single", face_model_version=MODEL, dim=args.dim, index=params)
    ids = [r.face_id for r in records]

    def timed(collection_id: str, query) -> tuple[float, list]:
        t = time.perf_counter()
        hits = store.view(collection_id).search(query, k=K)
        return time.perf_counter() - t, hits

    def recall(n: int, answers) -> float:
        found = 0
        for query, hits in zip(queries, answers, strict=True):
            truth = {ids[i] for i in np.argpartition(-(vectors[:n] @ query), K)[:K]}
            found += len(truth & {r.face_id for r, _ in hits})
        return round(found / (K * len(queries)), 4)

    def search_p50(collection_id: str) -> float:
        for query in queries[:20]:  # warm-up: load what changed, fault pages in
            timed(collection_id, query)
        return _percentile_ms([timed(collection_id, query)[0] for query in queries], 50)

    def against_bulk(n: int) -> dict:
        """The first ``n`` faces added in one write to a second collection; both searched alternately
        (query by query, the order swapped every query) so that load from elsewhere hits both alike."""
        bulk_id = f"bulk-{n}"
        store.create_collection(bulk_id, face_model_version=MODEL, dim=args.dim, index=params)
        t = time.perf_counter()
        store.add_faces(bulk_id, records[:n], vectors[:n])
        build_s = time.perf_counter() - t
        for query in queries[:20]:
            timed("single", query)
            timed(bulk_id, query)
        lat: dict[str, list[float]] = {"single": [], bulk_id: []}
        answers: dict[str, list] = {"single": [], bulk_id: []}
        for i, query in enumerate(queries):
            for collection_id in ("single", bulk_id) if i % 2 == 0 else (bulk_id, "single"):
                seconds, hits = timed(collection_id, query)
                lat[collection_id].append(seconds)
                answers[collection_id].append(hits)
        store.delete_collection(bulk_id)
        single_p50, bulk_p50 = _percentile_ms(lat["single"], 50), _percentile_ms(lat[bulk_id], 50)
        return {
            "search_p50_ms": round(single_p50, 3),
            "bulk_search_p50_ms": round(bulk_p50, 3),
            "search_p50_ratio": round(single_p50 / bulk_p50, 2),
            "recall_at_10": recall(n, answers["single"]),
            "bulk_recall_at_10": recall(n, answers[bulk_id]),
            "bulk_build_s": round(build_s, 1),
        }

    print(
        f"{'faces':>8} {'segments':>8} {'search p50 ms':>13} {'after job':>9} {'job s':>6} "
        f"{'write p50 ms':>12} {'write max ms':>12} {'search p50 ms':>13} {'bulk p50 ms':>11} {'ratio':>5} "
        f"{'RSS MB':>7} {'loaded MB':>9}"
    )
    rows, writes, job_s = [], [], None
    compare_at = set(args.compare_at or []) | {args.faces}
    for start in range(0, args.faces, args.writes_of):
        end = min(start + args.writes_of, args.faces)
        t = time.perf_counter()
        store.add_faces("single", records[start:end], vectors[start:end])
        writes.append(time.perf_counter() - t)
        reporting = end % args.report_every == 0 or end == args.faces
        if end % args.maintenance_every == 0:
            segments_before_job = len(store.view("single").manifest.segments)
            # The worst a search sees: everything writes left for the job still unmerged.
            before_job_p50 = search_p50("single") if reporting else None
            t = time.perf_counter()
            store.compact("single")
            job_s = time.perf_counter() - t
        if reporting:
            job_ran = end % args.maintenance_every == 0
            row = {
                "faces": end,
                "segments": segments_before_job if job_ran else None,
                "search_p50_before_job_ms": round(before_job_p50, 3) if job_ran and before_job_p50 else None,
                "segments_after_job": len(store.view("single").manifest.segments),
                "job_s": round(job_s, 1) if job_ran and job_s is not None else None,
                "write_p50_ms": round(_percentile_ms(writes, 50), 2),
                "write_max_ms": round(max(writes) * 1000, 1),
            }
            if end in compare_at:
                row.update(against_bulk(end))
            else:
                row["search_p50_ms"] = round(search_p50("single"), 3)
            row["rss_mb"] = round(_rss_mb(), 1)
            row["loaded_mb"] = round(store.memory_report().loaded_bytes / 2**20, 1)
            rows.append(row)
            writes = []
            print(
                f"{row['faces']:>8} {row['segments'] or '':>8} {row['search_p50_before_job_ms'] or '':>13} "
                f"{row['segments_after_job']:>9} "
                f"{row['job_s'] or '':>6} {row['write_p50_ms']:>12} {row['write_max_ms']:>12} "
                f"{row['search_p50_ms']:>13} {row.get('bulk_search_p50_ms', ''):>11} "
                f"{row.get('search_p50_ratio', ''):>5} {row['rss_mb']:>7} {row['loaded_mb']:>9}",
                flush=True,
            )
    last = rows[-1]
    print(
        f"bulk (one write of {args.faces}): search p50 {last['bulk_search_p50_ms']} ms; "
        f"single writes: {last['search_p50_ms']} ms over {last['segments_after_job']} segments "
        f"(ratio {last['search_p50_ratio']}x, searched alternately); "
        f"recall@10 single {last['recall_at_10']}, bulk {last['bulk_recall_at_10']}; "
        f"load average {os.getloadavg()}"
    )
    return {"bench": "store-ingest", "writes_of": args.writes_of, "rows": rows}


def concurrency(args, root: Path, hnsw: dict) -> dict:
    """Search throughput of one warm store shared by 1, 2, 4... threads (and under one lock, as before)."""
    rng = np.random.default_rng(args.seed)
    vectors, queries = _data("identity", rng, args.faces, args.dim, args.queries)
    store = open_store(str(root / "concurrency"), root / "concurrency-cache", cache_max_bytes=1 << 40)
    store.create_collection(
        "c", face_model_version=MODEL, dim=args.dim, index=IndexParams(dim=args.dim, **hnsw)
    )
    store.add_faces("c", _records(rng, args.faces), vectors)
    for query in queries[:50]:
        store.view("c").search(query, k=K)
    one_lock = threading.Lock()

    def locked(query):
        with one_lock:
            return store.view("c").search(query, k=K)

    def measure(search, threads: int) -> tuple[float, float]:
        """Searches per second, and CPU seconds per wall second (above 1: searches ran in parallel)."""
        with ThreadPoolExecutor(threads) as pool:
            wall, cpu = time.perf_counter(), time.process_time()
            list(pool.map(search, queries))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return len(queries) / wall, cpu / wall

    rows = []
    print(f"{'threads':>7} {'searches/s':>10} {'cores used':>10} {'one lock':>9} {'cores used':>10}")
    for threads in args.concurrency:
        # Rounds alternate between the two so that load from elsewhere on the machine hits both alike.
        free, serial = [], []
        for _ in range(args.rounds):
            free.append(measure(lambda query: store.view("c").search(query, k=K), threads))
            serial.append(measure(locked, threads))
        (rate, cores), (lock_rate, lock_cores) = (np.median(np.array(r), axis=0) for r in (free, serial))
        row = {
            "threads": threads,
            "searches_per_s": round(float(rate), 1),
            "cores_used": round(float(cores), 2),
            "one_lock_searches_per_s": round(float(lock_rate), 1),
            "one_lock_cores_used": round(float(lock_cores), 2),
        }
        rows.append(row)
        print(
            f"{threads:>7} {row['searches_per_s']:>10} {row['cores_used']:>10} "
            f"{row['one_lock_searches_per_s']:>9} {row['one_lock_cores_used']:>10}",
            flush=True,
        )
    return {
        "bench": "store-concurrency",
        "faces": args.faces,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "rows": rows,
    }


def main() -> None:
    if "--capacity" in sys.argv[1:]:
        # Capacity mode (bench/capacity.py): one collection of N faces on an S3 endpoint, measured as
        # function instances see it. ``--capacity N [N ...]`` plus capacity.py's own options.
        import capacity

        rest = [arg for arg in sys.argv[1:] if arg != "--capacity"]
        capacity.main(["--n", *rest] if rest and not rest[0].startswith("-") else rest)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--data", nargs="+", choices=["identity", "uniform"], default=["identity", "uniform"])
    parser.add_argument("--ef-sweep", type=int, nargs="*", default=[64, 160, 400, 800])
    parser.add_argument("--m", type=int, default=DEFAULT_INDEX["m"], help="HNSW M")
    parser.add_argument("--ef-construction", type=int, default=DEFAULT_INDEX["ef_construction"])
    parser.add_argument(
        "--ef", type=int, default=DEFAULT_INDEX["ef"], help="search ef stored in the manifest"
    )
    parser.add_argument(
        "--root", type=Path, help="folder for the stores and caches (e.g. /dev/shm: no fsync cost)"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", help="concurrency mode: thread counts")
    parser.add_argument("--rounds", type=int, default=3, help="concurrency mode: alternating rounds")
    parser.add_argument("--writes-of", type=int, help="ingestion mode: faces per add_faces call")
    parser.add_argument("--faces", type=int, default=100_000, help="ingestion mode: faces in all")
    parser.add_argument("--report-every", type=int, default=10_000, help="ingestion mode: faces per row")
    parser.add_argument(
        "--maintenance-every", type=int, default=10_000, help="ingestion mode: faces between job runs"
    )
    parser.add_argument(
        "--compare-at",
        type=int,
        nargs="*",
        help="ingestion mode: report sizes (besides the last) at which to compare with a bulk-built copy",
    )
    args = parser.parse_args()
    hnsw = {
        "space": DEFAULT_INDEX["space"],
        "m": args.m,
        "ef_construction": args.ef_construction,
        "ef": args.ef,
    }
    print(f"index: {hnsw}")
    if args.concurrency:
        with tempfile.TemporaryDirectory(prefix="facesearch-bench-", dir=args.root) as folder:
            print(json.dumps(concurrency(args, Path(folder), hnsw)))
        return
    if args.writes_of:
        with tempfile.TemporaryDirectory(prefix="facesearch-bench-", dir=args.root) as folder:
            print(json.dumps(ingest(args, Path(folder), hnsw)))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="facesearch-bench-", dir=args.root) as folder:
        print(
            f"{'data':>8} {'N':>8} {'dim':>4} {'build s':>8} {'load s':>7} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'brute ms':>8} {'x':>6} {'recall':>7} {'RSS MB':>7}"
        )
        for n in args.n:
            for kind in args.data:
                row = run(kind, n, args.dim, args.queries, Path(folder), args.seed, args.ef_sweep, hnsw)
                rows.append(row)
                sweep = "  ".join(
                    f"ef={s['ef']}: {s['recall_at_10']:.4f}@{s['p50_ms']}ms" for s in row["ef_sweep"]
                )
                print(
                    f"{kind:>8} {row['n']:>8} {row['dim']:>4} {row['build_s']:>8} "
                    f"{row['load_from_cache_s']:>7} "
                    f"{row['query_p50_ms']:>7} {row['query_p99_ms']:>7} {row['brute_p50_ms']:>8} "
                    f"{row['speedup_p50']:>6} {row['recall_at_10']:>7} {row['rss_mb']:>7}\n"
                    f"{'':>10}recall@10 of true neighbours with cosine >= {MATCH_COSINE}: "
                    f"{row[f'recall_at_10_above_cos_{MATCH_COSINE}']} "
                    f"(of {row['true_neighbours_above_cos']})\n"
                    f"{'':>10}raw index: {sweep}\n"
                    f"{'':>10}warm read, no change: blob calls {row['warm_read_blob_calls']}, "
                    f"not modified: {row['warm_read_not_modified']}",
                    flush=True,
                )
    print(json.dumps({"bench": "store", "rows": rows}))


if __name__ == "__main__":
    main()
