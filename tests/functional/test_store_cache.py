"""Warm paths: cold (downloads), warm-disk (cache folder, no download), warm-memory (one conditional GET)."""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

from facesearch.store import open_store
from facesearch.store.blobs import FolderBlobStore
from facesearch.store.cache import DiskCache
from tests.functional.store_fixtures import MODEL, InstrumentedBlobs, make_faces

DIM = 16


def _instrumented(location, cache_dir):
    store = open_store(location, cache_dir)
    store.blobs = InstrumentedBlobs(store.blobs)
    return store


def _populate(location, tmp_path):
    rng = np.random.default_rng(5)
    writer = open_store(location, tmp_path / "writer-cache")
    writer.create_collection("c", face_model_version=MODEL, dim=DIM)
    records, vectors = make_faces(rng, 30, DIM)
    writer.add_faces("c", records[:10], vectors[:10])
    writer.add_faces("c", records[10:], vectors[10:])
    return writer, records, vectors


def test_cold_then_warm_disk_then_warm_memory(store_location, tmp_path):
    _, records, vectors = _populate(store_location, tmp_path)
    cache = tmp_path / "reader-cache"

    cold = _instrumented(store_location, cache)
    assert cold.view("c").search(vectors[3], k=1)[0][0] == records[3]
    assert cold.blobs.count("get") == 1
    assert cold.blobs.count("download") == 4  # two segments x (graph + records)

    warm_disk = _instrumented(store_location, cache)  # a new container on the same /tmp
    assert warm_disk.view("c").search(vectors[12], k=1)[0][0] == records[12]
    assert warm_disk.blobs.calls == [("get", "collections/c/manifest.json")]

    warm_disk.blobs.calls.clear()
    assert warm_disk.view("c").search(vectors[20], k=1)[0][0] == records[20]
    assert warm_disk.blobs.calls == [("get", "collections/c/manifest.json")]
    assert warm_disk.blobs.not_modified == 1


def test_warm_reader_downloads_only_new_segments(store_location, tmp_path):
    writer, _, vectors = _populate(store_location, tmp_path)
    reader = _instrumented(store_location, tmp_path / "reader-cache")
    reader.view("c").search(vectors[0], k=1)
    more, more_vectors = make_faces(np.random.default_rng(6), 5, DIM)
    writer.add_faces("c", more, more_vectors)
    reader.blobs.calls.clear()
    assert reader.view("c").search(more_vectors[2], k=1)[0][0] == more[2]
    downloads = [key for name, key in reader.blobs.calls if name == "download"]
    assert len(downloads) == 2 and all(writer_key.endswith((".bin", ".json")) for writer_key in downloads)
    assert reader.blobs.not_modified == 0
    writer.delete_faces("c", [more[2].face_id])
    reader.blobs.calls.clear()
    assert more[2].face_id not in {r.face_id for r, _ in reader.view("c").search(more_vectors[2], k=5)}
    assert reader.blobs.calls == [("get", "collections/c/manifest.json")]  # tombstones live in the manifest


def test_warm_read_is_one_conditional_http_request_on_s3(s3_bucket, tmp_path):
    location = f"s3://{s3_bucket}/p"
    _, records, vectors = _populate(location, tmp_path)
    reader = open_store(location, tmp_path / "reader-cache")
    reader.view("c").search(vectors[0], k=1)
    sent = []
    reader.blobs.client.meta.events.register(
        "before-send.s3",
        lambda request, **_: sent.append((request.method, request.url, dict(request.headers))),
    )
    assert reader.view("c").search(vectors[5], k=1)[0][0] == records[5]
    assert len(sent) == 1
    method, url, headers = sent[0]
    assert method == "GET" and url.endswith("/p/collections/c/manifest.json")
    etag = headers["If-None-Match"]
    assert (etag.decode() if isinstance(etag, bytes) else etag).strip('"')


def test_disk_cache_evicts_least_recently_used(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    blobs = FolderBlobStore(source)
    shas = {}
    for name in ("a", "b", "c"):
        body = name.encode() * 400
        blobs.put_if_absent(name, body)
        shas[name] = hashlib.sha256(body).hexdigest()
    cache = DiskCache(tmp_path / "cache", max_bytes=900)
    cache.fetch(blobs, "a", "a", shas["a"])
    cache.fetch(blobs, "b", "b", shas["b"])
    past = time.time() - 100
    os.utime(cache.path("a"), (past, past))
    os.utime(cache.path("b"), (past + 1, past + 1))
    cache.fetch(blobs, "a", "a", shas["a"])  # a hit: a becomes most recent
    assert cache.downloads == 2
    cache.fetch(blobs, "c", "c", shas["c"])
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["a", "c"]
    assert cache.downloads == 3


def test_a_view_serves_a_requests_reads_from_one_manifest_get(store_location, tmp_path):
    writer, records, vectors = _populate(store_location, tmp_path)
    writer.create_user("c", "u")
    writer.associate_faces("c", "u", [records[1].face_id])
    reader = _instrumented(store_location, tmp_path / "reader-cache")
    reader.view("c").search(vectors[0], k=1)  # warm: segments loaded
    reader.blobs.calls.clear()

    view = reader.view("c")
    assert view.info.face_count == 30
    stored = view.get_vectors([records[2].face_id])[0]
    assert view.search(stored, k=1)[0][0] == records[2]
    assert view.get_user("u").face_ids == (records[1].face_id,)
    assert [m.user.user_id for m in view.search_users(vectors[1], k=1)] == ["u"]
    assert set(view.get_faces([records[4].face_id])) == {records[4].face_id}
    assert len(view.list_faces(max_results=100).items) == 30
    assert [u.user_id for u in view.list_users(max_results=10).items] == ["u"]

    assert reader.blobs.calls == [("get", "collections/c/manifest.json")]


def _one_blob(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    blobs = FolderBlobStore(source)
    body = b"segment bytes" * 50
    blobs.put_if_absent("k", body)
    return blobs, body, hashlib.sha256(body).hexdigest()


def test_a_pinned_file_survives_discard_and_eviction(tmp_path):
    blobs, body, sha = _one_blob(tmp_path)
    cache = DiskCache(tmp_path / "cache", max_bytes=10)
    with cache.pinned(blobs, "k", "k", sha) as path:
        cache.discard("k")
        cache.evict(keep=tmp_path / "none")
        assert not cache.path("k").exists()
        assert path.read_bytes() == body
    assert not path.exists()  # the private link goes with the block


def test_a_file_evicted_between_fetch_and_pin_is_downloaded_privately(tmp_path, monkeypatch):
    blobs, body, sha = _one_blob(tmp_path)
    cache = DiskCache(tmp_path / "cache", max_bytes=10_000)
    fetch = cache.fetch

    def fetch_then_lose_it(*args):
        path = fetch(*args)
        path.unlink()  # another thread's discard, or another process's eviction
        return path

    monkeypatch.setattr(cache, "fetch", fetch_then_lose_it)
    with cache.pinned(blobs, "k", "k", sha) as path:
        assert path.read_bytes() == body
    assert cache.downloads == 2


def test_a_cached_file_damaged_on_disk_is_fetched_again(tmp_path):
    blobs, body, sha = _one_blob(tmp_path)
    cache = DiskCache(tmp_path / "cache", max_bytes=10_000)
    cache.fetch(blobs, "k", "k", sha)
    cache.path("k").write_bytes(b"bit rot")
    assert cache.read(blobs, "k", "k", sha) == body
    assert cache.downloads == 2


def test_a_search_survives_its_segment_leaving_the_cache_mid_load(store_location, tmp_path, monkeypatch):
    """The race CI met: a compaction's forget_cached ran between a search's cache lookup and its read."""
    _, records, vectors = _populate(store_location, tmp_path)
    reader = open_store(store_location, tmp_path / "reader-cache")
    fetch = reader.cache.fetch

    def fetch_then_forget(blobs, key, name, sha256):
        path = fetch(blobs, key, name, sha256)
        segment_id = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        reader.forget_cached("c", segment_id)
        return path

    monkeypatch.setattr(reader.cache, "fetch", fetch_then_forget)
    assert reader.view("c").search(vectors[7], k=1)[0][0] == records[7]
