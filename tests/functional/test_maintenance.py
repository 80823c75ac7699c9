"""The scheduled maintenance job on both backends: deferred compactions, orphan collection, the deadline."""

from __future__ import annotations

import itertools
import json
import time
import types

import numpy as np
import pytest

from facesearch import maintenance
from facesearch.devtools.server import LocalLambdaContext
from facesearch.handler import MAINTENANCE_SAFETY_MARGIN_MS, maintenance_handler
from facesearch.store import open_store
from facesearch.store.compaction import FAN_OUT
from tests.functional.store_fixtures import MODEL, make_faces

DIM = 8
FACES = 5


def _manifest(store, collection_id: str) -> dict:
    return json.loads(store.blobs.get(f"collections/{collection_id}/manifest.json").body)


@pytest.fixture
def store(store_location, tmp_path, monkeypatch):
    """Three collections whose writes left their compactions to the job (an inline budget of 1 face,
    segments over 8 faces have a graph): ``a`` has FAN_OUT small segments (merged whole), ``b`` a graph and
    a segment under FOLD_SHARE of it (not due), ``c`` one with 30% tombstones."""
    monkeypatch.setattr("facesearch.store.compaction.INLINE_COMPACTION_MAX_FACES", 1)
    monkeypatch.setattr("facesearch.store.segment.BRUTE_FORCE_MAX_FACES", 8)
    monkeypatch.setattr(maintenance, "PAGE_SIZE", 2)  # three collections span two pages
    rng = np.random.default_rng(31)
    store = open_store(store_location, tmp_path / "cache")
    for collection_id, sizes in (("a", [FACES] * FAN_OUT), ("b", [8 * FACES, FACES - 1]), ("c", [2 * FACES])):
        store.create_collection(collection_id, face_model_version=MODEL, dim=DIM)
        for size in sizes:
            store.add_faces(collection_id, *make_faces(rng, size, DIM))
    doomed = [face.face_id for face in store.view("c").list_faces(max_results=3).items]
    assert store.delete_faces("c", doomed).deleted == tuple(doomed)
    assert len(_manifest(store, "a")["segments"]) == FAN_OUT
    assert len(_manifest(store, "c")["tombstones"]) == 3
    return store


def test_run_compacts_what_writes_left_and_collects_orphans_after_their_grace(store):
    counts = {c: store.view(c).info.face_count for c in "abc"}
    b_before = _manifest(store, "b")

    report = maintenance.run(store, deadline=time.monotonic() + 600)

    assert report == maintenance.MaintenanceReport(
        collections_visited=3, collections_compacted=2, segments_collected=0, stopped_early=False
    )
    assert len(_manifest(store, "a")["segments"]) == 1
    assert _manifest(store, "b") == b_before
    assert _manifest(store, "c")["tombstones"] == []
    assert [s["count"] for s in _manifest(store, "c")["segments"]] == [2 * FACES - 3]
    assert {c: store.view(c).info.face_count for c in "abc"} == counts

    # The replaced segments are orphans still in their grace period; once it has passed they go.
    again = maintenance.run(store, deadline=time.monotonic() + 600, grace_seconds=0)

    merged_in_a = FAN_OUT
    assert again == maintenance.MaintenanceReport(
        collections_visited=3,
        collections_compacted=0,
        segments_collected=merged_in_a + 1,
        stopped_early=False,
    )
    for collection_id in "abc":
        stored = {info.key for info in store.blobs.list(f"collections/{collection_id}/segments/")}
        assert stored == {
            f"collections/{collection_id}/segments/{s['id']}.{ext}"
            for s in _manifest(store, collection_id)["segments"]
            for ext in ("bin", "json")
        }
    assert {c: store.view(c).info.face_count for c in "abc"} == counts


def test_run_starts_no_collection_once_the_deadline_has_passed(store, monkeypatch):
    # A clock that advances one second per reading: the deadline passes before the third collection.
    ticks = itertools.count()
    monkeypatch.setattr(maintenance, "time", types.SimpleNamespace(monotonic=lambda: next(ticks)))

    report = maintenance.run(store, deadline=2)

    assert report == maintenance.MaintenanceReport(
        collections_visited=2, collections_compacted=1, segments_collected=0, stopped_early=True
    )
    assert len(_manifest(store, "a")["segments"]) == 1
    assert len(_manifest(store, "c")["tombstones"]) == 3


def test_run_skips_a_collection_deleted_after_it_was_listed(store, monkeypatch):
    listed = store.list_collections

    def list_then_delete_b(**kwargs):
        page = listed(**kwargs)
        if any(info.collection_id == "b" for info in page.items):
            store.delete_collection("b")
        return page

    monkeypatch.setattr(store, "list_collections", list_then_delete_b)

    report = maintenance.run(store, deadline=time.monotonic() + 600)

    assert report == maintenance.MaintenanceReport(
        collections_visited=2, collections_compacted=2, segments_collected=0, stopped_early=False
    )
    assert [info.collection_id for info in listed(max_results=10).items] == ["a", "c"]


def test_run_on_an_empty_store_visits_nothing(store_location, tmp_path):
    report = maintenance.run(open_store(store_location, tmp_path / "cache"), deadline=time.monotonic() + 600)

    assert report == maintenance.MaintenanceReport(0, 0, 0, stopped_early=False)


@pytest.fixture
def function_env(store_location, tmp_path, monkeypatch, store):
    monkeypatch.setenv("FACESEARCH_STORE", store_location)
    monkeypatch.setenv("FACESEARCH_CACHE_DIR", str(tmp_path / "function-cache"))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    return store


def test_maintenance_handler_runs_the_job_on_the_containers_store(function_env):
    result = maintenance_handler({"detail-type": "Scheduled Event"}, LocalLambdaContext())

    assert result == {
        "collections_visited": 3,
        "collections_compacted": 2,
        "segments_collected": 0,
        "stopped_early": False,
    }
    assert len(_manifest(function_env, "a")["segments"]) == 1
    assert json.loads(json.dumps(result)) == result


def test_maintenance_handler_keeps_its_safety_margin_before_the_timeout(function_env):
    context = LocalLambdaContext(remaining_millis=MAINTENANCE_SAFETY_MARGIN_MS)

    result = maintenance_handler({}, context)

    assert result["collections_visited"] == 0 and result["stopped_early"] is True
    assert len(_manifest(function_env, "a")["segments"]) == FAN_OUT
