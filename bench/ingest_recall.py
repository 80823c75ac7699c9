"""Recall against latency of a single-write segment layout vs one bulk graph, at equal data.

    .venv/bin/python bench/ingest_recall.py --sizes 90000 10000 --root /dev/shm

``--sizes``: the segments (in write order) that ``bench/store.py --writes-of 1`` leaves after the job
at 100 000 faces with the job every 10 000 (the pure policy gives the same: test_store_tiers.py). The same
seeded identity data as bench/store.py; one collection is written with those segments (no merge is due
among them), one in bulk. Both are searched per query alternately, the raw graphs and the exact block as
``CollectionView._search`` does, under several per-segment ef rules and several bulk ef values, so the
speed ratio can be read at equal recall@10 (against brute force).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from store import MODEL, _data, _records

from facesearch.store import open_store
from facesearch.store import segment as seg
from facesearch.store.core import DEFAULT_INDEX
from facesearch.store.manifest import IndexParams

K = 10
EF = DEFAULT_INDEX["ef"]
# Per-segment ef as a function of the segment's share of the faces (the shipped rule marked).
RULES: dict[str, Callable[[float], int]] = {
    "segments, ef share": lambda p: min(EF, max(32, math.ceil(EF * p))),
    "segments, 1.5 x ef share": lambda p: min(2 * EF, max(32, math.ceil(1.5 * EF * p))),
    "segments, 2 x ef share": lambda p: min(2 * EF, max(32, math.ceil(2 * EF * p))),
    "segments, ef sqrt(share) (shipped)": lambda p: min(EF, max(32, math.ceil(EF * math.sqrt(p)))),
}
BULK_EFS = (64, 96, 128, 160, 240)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", required=True)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--root", type=Path, help="folder for the store (e.g. /dev/shm)")
    args = parser.parse_args()
    n = sum(args.sizes)
    rng = np.random.default_rng(args.seed)
    vectors, queries = _data("identity", rng, n, args.dim, args.queries)
    records = _records(rng, n)
    root = Path(tempfile.mkdtemp(prefix="facesearch-ingest-recall-", dir=args.root))
    try:
        store = open_store(str(root / "store"), root / "cache", cache_max_bytes=1 << 40)
        params = IndexParams(dim=args.dim, **DEFAULT_INDEX)
        for collection_id in ("layout", "bulk"):
            store.create_collection(collection_id, face_model_version=MODEL, dim=args.dim, index=params)
        start = 0
        for size in args.sizes:
            store.add_faces("layout", records[start : start + size], vectors[start : start + size])
            start += size
        store.add_faces("bulk", records, vectors)
        layout, bulk = store.view("layout"), store.view("bulk")
        for query in queries[:20]:
            layout.search(query, k=K)
            bulk.search(query, k=K)
        manifest = layout.manifest
        print(f"layout: {[ref.count for ref in manifest.segments]}")
        graphs = [layout._segment(ref, graph=True) for ref in manifest.segments]
        graphs = [segment for segment in graphs if segment.index is not None]
        block = layout.snapshot.exact["small"]
        (whole,) = [bulk._segment(ref, graph=True) for ref in bulk.manifest.segments]

        def segmented(query: np.ndarray, rule: Callable[[float], int]) -> set[str]:
            hits = [(block.records[row].face_id, c) for row, c in seg.search_block(block, query, K)]
            for segment in graphs:
                segment.graph().set_ef(rule(segment.ref.count / manifest.stored_count))
                labels, distances = segment.graph().knn_query(query.reshape(1, -1), k=K)
                hits += [
                    (segment.records[int(row)].face_id, 1.0 - float(d))
                    for row, d in zip(labels[0], distances[0], strict=True)
                ]
            return {face_id for face_id, _ in sorted(hits, key=lambda hit: -hit[1])[:K]}

        def one_graph(query: np.ndarray, ef: int) -> set[str]:
            whole.graph().set_ef(ef)
            labels, _ = whole.graph().knn_query(query.reshape(1, -1), k=K)
            return {whole.records[int(row)].face_id for row in labels[0]}

        configs: list[tuple[str, Callable[[np.ndarray], set[str]]]] = [
            (name, lambda q, rule=rule: segmented(q, rule)) for name, rule in RULES.items()
        ]
        configs += [(f"bulk, ef {ef}", lambda q, ef=ef: one_graph(q, ef)) for ef in BULK_EFS]
        ids = [record.face_id for record in records]
        latencies: dict[str, list[float]] = {name: [] for name, _ in configs}
        found = dict.fromkeys(latencies, 0)
        for i, query in enumerate(queries):
            truth = {ids[row] for row in np.argpartition(-(vectors @ query), K)[:K]}
            for name, search in configs if i % 2 == 0 else configs[::-1]:
                t = time.perf_counter()
                got = search(query)
                latencies[name].append(time.perf_counter() - t)
                found[name] += len(got & truth)
        for name, _ in configs:
            print(
                f"{name:30} recall@10 {found[name] / (K * len(queries)):.4f}  "
                f"p50 {np.median(latencies[name]) * 1000:.3f} ms"
            )
        print(f"load average {os.getloadavg()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
