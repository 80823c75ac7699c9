"""Crash safety: a writer stopped at any write step leaves the collection reading exactly as before or after.

Each write of an operation (segment uploads, manifest swaps, deletes) is crashed in turn in-process; one
test also SIGKILLs a real writer process between its segment upload and its manifest swap. Readers are
fresh stores with empty caches, so they see only what is in the blob store. Orphans are then collected.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from facesearch.errors import ResourceNotFoundException
from facesearch.settings import REPO_ROOT
from facesearch.store import open_store
from tests.functional.store_fixtures import MODEL, InstrumentedBlobs, SimulatedCrash, make_faces, snapshot

DIM = 8


def _base(store, collection_id, rng):
    """A collection with two segments, a user with a face, and a tombstone."""
    store.create_collection(collection_id, face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(rng, 12, DIM)
    store.add_faces(collection_id, records[:6], vectors[:6])
    store.add_faces(collection_id, records[6:], vectors[6:])
    store.create_user(collection_id, "u1")
    store.associate_faces(collection_id, "u1", [records[0].face_id])
    store.delete_faces(collection_id, [records[11].face_id])
    return records, vectors


def _referenced_objects(store, collection_id):
    manifest = json.loads(store.blobs.get(f"collections/{collection_id}/manifest.json").body)
    return {
        f"collections/{collection_id}/segments/{s['id']}.{ext}"
        for s in manifest["segments"]
        for ext in ("bin", "json")
    }


def _operations(rng):
    extra, extra_vectors = make_faces(rng, 4, DIM)
    return {
        # With FAN_OUT patched to 3, this add fills the base's tier: two swaps and two segment uploads.
        "add_faces+compaction": lambda s, c, r: s.add_faces(c, extra, extra_vectors),
        # Crosses the tombstone bound: a delete swap, then a compaction.
        "delete_faces+compaction": lambda s, c, r: s.delete_faces(c, [x.face_id for x in r[1:6]]),
        "associate_faces": lambda s, c, r: s.associate_faces(c, "u1", [r[2].face_id, r[3].face_id]),
        "delete_user": lambda s, c, r: s.delete_user(c, "u1"),
        "compact": lambda s, c, r: s.compact(c, force=True),
        # With segments of 6 graph-sized, the job inserts the second's live faces into the first's graph.
        "job fold": lambda s, c, r: s.compact(c),
    }


@pytest.mark.parametrize("operation", list(_operations(np.random.default_rng(0))))
def test_crash_at_every_write_step(store_location, tmp_path, monkeypatch, operation):
    monkeypatch.setattr("facesearch.store.compaction.FAN_OUT", 3)
    if operation == "job fold":
        monkeypatch.setattr("facesearch.store.segment.BRUTE_FORCE_MAX_FACES", 5)
    rng = np.random.default_rng(99)
    op = _operations(rng)[operation]
    queries = rng.normal(size=(3, DIM)).astype(np.float32)
    step = 0
    while True:
        step += 1
        collection_id = f"c-{step}"
        # The same collection and operation, run to the end without a crash: what "after" reads as.
        reference = open_store(store_location, tmp_path / f"ref-{step}")
        ref_records, _ = _base(reference, f"ref-{step}", np.random.default_rng(step))
        segments_before = len(_referenced_objects(reference, f"ref-{step}"))
        op(reference, f"ref-{step}", ref_records)
        after = snapshot(open_store(store_location, tmp_path / f"ra-{step}"), f"ref-{step}", queries)
        writer = open_store(store_location, tmp_path / f"writer-{step}")
        records, _ = _base(writer, collection_id, np.random.default_rng(step))
        before = snapshot(open_store(store_location, tmp_path / f"r0-{step}"), collection_id, queries)
        writer.blobs = InstrumentedBlobs(writer.blobs, crash_at_write=step)
        try:
            op(writer, collection_id, records)
            crashed = False
        except SimulatedCrash:
            crashed = True
        manifest_key = f"collections/{collection_id}/manifest.json"
        swaps = [
            call
            for call in writer.blobs.calls[: -1 if crashed else None]
            if call == ("put_if_match", manifest_key)
        ]
        reader = open_store(store_location, tmp_path / f"r1-{step}")
        seen = snapshot(reader, collection_id, queries)
        # Before the first swap nothing changed; from it on the collection reads as the finished
        # operation: a compaction swap changes where faces are stored, never what a reader sees.
        expected = before if not swaps else after
        assert seen == expected, f"{operation}: crash at write {step} ({len(swaps)} swaps) reads wrong"
        # Orphans of the crashed writer are collected; the collection reads the same afterwards.
        reader.collect_garbage(collection_id, grace_seconds=0)
        remaining = {i.key for i in reader.blobs.list(f"collections/{collection_id}/segments/")}
        assert remaining == _referenced_objects(reader, collection_id)
        assert snapshot(open_store(store_location, tmp_path / f"r2-{step}"), collection_id, queries) == seen
        if not crashed:
            assert step > 1
            break
    if operation in ("compact", "job fold"):
        # Compaction changes no answer, and it did merge (fewer segment objects than before).
        assert after == before
        assert len(_referenced_objects(reference, f"ref-{step}")) < segments_before
    else:
        assert after != before
    if operation in ("add_faces+compaction", "delete_faces+compaction"):
        assert step >= 5  # segment json + bin + swap, then the compaction's json + bin + swap
        assert len(swaps) == 2  # the operation's swap, then the compaction's


def test_crash_while_creating_and_deleting_a_collection(store_location, tmp_path):
    store = open_store(store_location, tmp_path / "cache")
    store.blobs = InstrumentedBlobs(store.blobs, crash_at_write=1)
    with pytest.raises(SimulatedCrash):
        store.create_collection("new", face_model_version=MODEL, dim=DIM)
    with pytest.raises(ResourceNotFoundException):
        open_store(store_location, tmp_path / "c1").view("new")

    rng = np.random.default_rng(3)
    queries = rng.normal(size=(2, DIM)).astype(np.float32)
    writer = open_store(store_location, tmp_path / "w")
    _base(writer, "doomed", rng)
    before = snapshot(open_store(store_location, tmp_path / "c2"), "doomed", queries)
    writer.blobs = InstrumentedBlobs(writer.blobs, crash_at_write=1)  # the manifest delete
    with pytest.raises(SimulatedCrash):
        writer.delete_collection("doomed")
    assert snapshot(open_store(store_location, tmp_path / "c3"), "doomed", queries) == before
    writer.blobs = InstrumentedBlobs(writer.blobs.inner, crash_at_write=2)  # after the manifest delete
    with pytest.raises(SimulatedCrash):
        writer.delete_collection("doomed")
    reader = open_store(store_location, tmp_path / "c4")
    with pytest.raises(ResourceNotFoundException):
        reader.view("doomed")
    assert reader.list_collections(max_results=10).items == ()
    # Re-creating it works; the leftovers are unreferenced orphans that garbage collection removes.
    reader.create_collection("doomed", face_model_version=MODEL, dim=DIM)
    assert reader.view("doomed").info.face_count == 0
    assert reader.collect_garbage("doomed", grace_seconds=0)
    assert reader.blobs.list("collections/doomed/segments/") == []


_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from facesearch.store import open_store
    from tests.functional.store_fixtures import make_faces

    location, cache = sys.argv[1], sys.argv[2]
    store = open_store(location, cache)
    inner = store.blobs

    class KillBeforeSwap:
        def __init__(self, inner):
            self.inner, self.location = inner, inner.location
        def __getattr__(self, name):
            return getattr(self.inner, name)
        def put_if_match(self, key, body, etag):
            os.kill(os.getpid(), signal.SIGKILL)

    store.blobs = KillBeforeSwap(inner)
    records, vectors = make_faces(np.random.default_rng(42), 5, 8)
    store.add_faces("c", records, vectors)
    """
)


def test_writer_killed_between_segment_upload_and_manifest_swap(store_location, tmp_path):
    rng = np.random.default_rng(8)
    queries = rng.normal(size=(3, DIM)).astype(np.float32)
    store = open_store(store_location, tmp_path / "cache")
    _base(store, "c", rng)
    before = snapshot(open_store(store_location, tmp_path / "r0"), "c", queries)
    objects_before = {i.key for i in store.blobs.list("collections/c/segments/")}
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, store_location, str(tmp_path / "killed-cache")],
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    reader = open_store(store_location, tmp_path / "r1")
    assert snapshot(reader, "c", queries) == before
    orphans = {i.key for i in reader.blobs.list("collections/c/segments/")} - objects_before
    assert len(orphans) == 2 and {o.rsplit(".", 1)[1] for o in orphans} == {"bin", "json"}
    assert reader.collect_garbage("c", grace_seconds=3600) == []
    assert set(reader.collect_garbage("c", grace_seconds=0)) == orphans
    assert snapshot(open_store(store_location, tmp_path / "r2"), "c", queries) == before
