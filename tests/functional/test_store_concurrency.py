"""Concurrent writers: 8 processes x 200 faces into one collection -> exactly 1 600, none lost or doubled.

Runs on the folder backend and on a moto server over real HTTP (ThreadedMotoServer enforces If-Match /
If-None-Match on PutObject). Writers start together on a barrier file, so manifest swaps really collide;
automatic compaction runs inside the writes as it does in production.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

from facesearch.settings import REPO_ROOT
from facesearch.store import open_store
from tests.functional.store_fixtures import MODEL, make_faces

PROCESSES = 8
FACES_PER_PROCESS = 200
BATCH = 10
DIM = 8

_WRITER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import numpy as np
    from facesearch.store import open_store
    from facesearch.store.errors import PreconditionFailed
    from tests.functional.store_fixtures import make_faces

    location, cache, seed, count, batch, go = sys.argv[1:7]
    store = open_store(location, cache)
    inner = store.blobs
    lost = []

    class CountingLostRaces:
        def __init__(self, inner):
            self.inner, self.location = inner, inner.location
        def __getattr__(self, name):
            return getattr(self.inner, name)
        def put_if_match(self, key, body, etag):
            try:
                return self.inner.put_if_match(key, body, etag)
            except PreconditionFailed:
                lost.append(key)
                raise

    store.blobs = CountingLostRaces(inner)
    records, vectors = make_faces(np.random.default_rng(int(seed)), int(count), 8)
    while not Path(go).exists():
        time.sleep(0.005)
    for start in range(0, int(count), int(batch)):
        store.add_faces("shared", records[start : start + int(batch)], vectors[start : start + int(batch)])
    print(json.dumps({"lost_races": len(lost)}))
    """
)


def _run_writers(location, tmp_path):
    go = tmp_path / "go"
    args = [str(FACES_PER_PROCESS), str(BATCH), str(go)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, location, str(tmp_path / f"cache-{p}"), str(1000 + p), *args],
            cwd=REPO_ROOT,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(PROCESSES)
    ]
    time.sleep(0.5)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_eight_writers_lose_nothing(store_location, tmp_path):
    setup = open_store(store_location, tmp_path / "setup")
    setup.create_collection("shared", face_model_version=MODEL, dim=DIM)
    results = _run_writers(store_location, tmp_path)
    assert sum(r["lost_races"] for r in results) > 0  # the swaps really collided

    expected = {}
    for p in range(PROCESSES):
        records, vectors = make_faces(np.random.default_rng(1000 + p), FACES_PER_PROCESS, DIM)
        expected.update({r.face_id: v for r, v in zip(records, vectors, strict=True)})
    reader = open_store(store_location, tmp_path / "reader")
    assert reader.view("shared").info.face_count == PROCESSES * FACES_PER_PROCESS
    listed, token = [], None
    while True:
        page = reader.view("shared").list_faces(max_results=4096, next_token=token)
        listed += [r.face_id for r in page.items]
        token = page.next_token
        if token is None:
            break
    assert len(listed) == len(set(listed)) == PROCESSES * FACES_PER_PROCESS
    assert set(listed) == set(expected)
    manifest = json.loads(reader.blobs.get("collections/shared/manifest.json").body)
    assert sum(s["count"] for s in manifest["segments"]) == PROCESSES * FACES_PER_PROCESS
    assert manifest["tombstones"] == []
    sample = list(expected)[::97]
    for face_id in sample:
        assert reader.view("shared").search(expected[face_id], k=1)[0][0].face_id == face_id
