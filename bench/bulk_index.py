"""`facesearch index` throughput (photos/s) on the labelled dev set with 1, 2 and 4 workers.

Each run indexes the same photos (the first ``--photos`` of ../shared/facedata/dev, or all) into a fresh
folder store served in-process, exactly as the command runs; then one run more on the first store shows
the resume (every photo skipped). Prints photos/s per worker count and the ratio to one worker, and as
its last line one JSON object. The local server runs requests concurrently (one thread each), so extra
workers overlap whatever releases the GIL (model inference, hnswlib, I/O) on the machine's cores; against a
deployed endpoint they run on as many Lambda containers.

    .venv/bin/python bench/bulk_index.py [--photos 60] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from facesearch.devtools import cli
from facesearch.settings import ENV_FACEDATA_DIR, REPO_ROOT

FACEDATA = Path(os.environ.get(ENV_FACEDATA_DIR) or REPO_ROOT.parent / "shared" / "facedata" / "dev")


def _run(source: Path, store: Path, workers: int) -> float:
    started = time.monotonic()
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        cli.main(
            ["index", str(source), "--collection", "bench", "--store", str(store), "--workers", str(workers)]
        )
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=0, help="index only the first N photos (default all)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    photos = sorted(
        path for path in (FACEDATA / "images").rglob("*") if path.suffix.lower() in (".jpg", ".png")
    )
    if not photos:
        print(f"no photos under {FACEDATA}/images (set {ENV_FACEDATA_DIR})", file=sys.stderr)
        return 1
    photos = photos[: args.photos or None]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as scratch:
        source = Path(scratch) / "photos"
        for path in photos:
            target = source / path.relative_to(FACEDATA / "images")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        for workers in args.workers:
            elapsed = _run(source, Path(scratch) / f"store-{workers}", workers)
            results[workers] = len(photos) / elapsed
        resume = _run(source, Path(scratch) / f"store-{args.workers[0]}", args.workers[0])
    base = results[args.workers[0]]
    print(f"{len(photos)} photos from {FACEDATA}")
    for workers, rate in results.items():
        print(f"  {workers} worker(s): {rate:6.2f} photos/s  ({rate / base:.2f}x)")
    print(f"  resume (all skipped): {resume:.1f} s")
    print(json.dumps({"photos": len(photos), "photos_per_s": results, "resume_s": round(resume, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
