"""Store internals: pagination tokens, manifest round trip and versioning, segment encode/decode."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from facesearch.domain import BoundingBox, FaceRecord
from facesearch.errors import InvalidPaginationTokenException
from facesearch.store import segment, tokens
from facesearch.store.errors import CorruptSegmentError, ManifestFormatError
from facesearch.store.manifest import FORMAT_VERSION, IndexParams, Manifest, SegmentRef

PARAMS = IndexParams(space="cosine", dim=8, m=16, ef_construction=100, ef=50)


def test_tokens_round_trip_and_refuse_foreign_or_garbled():
    scope = tokens.scope_of("faces", "loc", "c1")
    token = tokens.encode("f", scope, "abc")
    assert tokens.decode(token, "f", scope) == b"abc"
    assert tokens.resume_index(["abb", "abc", "abd"], b"abc") == 2
    for bad_token, kind, bad_scope in [
        (token, "f", tokens.scope_of("faces", "loc", "c2")),
        (token, "u", scope),
        (token[:-2], "f", scope),
        ("!!!", "f", scope),
        ("", "f", scope),
    ]:
        with pytest.raises(InvalidPaginationTokenException) as error:
            tokens.decode(bad_token, kind, bad_scope)
        assert error.value.message == "Invalid Token"


def test_long_keys_fit_the_token_limit_and_resume_exactly():
    scope = tokens.scope_of("collections", "loc")
    keys = sorted(["a" * 255, "a" * 254 + "b", "a" * 254 + "c", "b"])
    token = tokens.encode("c", scope, keys[1])
    assert len(token) <= 255
    assert tokens.resume_index(keys, tokens.decode(token, "c", scope)) == 2
    # The key vanished: resume after every key sharing its truncated prefix.
    assert tokens.resume_index([keys[0], keys[2], keys[3]], tokens.decode(token, "c", scope)) == 2


def _manifest():
    return Manifest(
        collection_id="c",
        face_model_version="m1",
        created_at=datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
        index=PARAMS,
        segments=(SegmentRef("s1", 3, "a" * 64, "b" * 64, 123),),
        tombstones=frozenset({"f1"}),
        users={"u": ("f2", "f3")},
        tags={"team": "search", "empty": ""},
        serial=4,
    )


def test_manifest_round_trip_records_every_index_parameter():
    manifest = _manifest()
    body = manifest.to_json()
    assert json.loads(body)["index"] == {
        "space": "cosine",
        "dim": 8,
        "M": 16,
        "ef_construction": 100,
        "ef": 50,
    }
    # hnsw manifests keep format 1 so that older readers still read them; s3vectors ones are format 2.
    assert json.loads(body)["format"] == 1 < FORMAT_VERSION
    assert Manifest.from_json(body, "x") == manifest
    assert manifest.face_count == 2 and manifest.user_of() == {"f2": "u", "f3": "u"}
    assert manifest.evolve(tombstones=frozenset()).serial == 5


def test_manifest_tags_round_trip_and_manifests_without_tags_read_as_untagged():
    manifest = _manifest()
    assert json.loads(manifest.to_json())["tags"] == {"empty": "", "team": "search"}
    assert Manifest.from_json(manifest.to_json(), "x").tags == {"team": "search", "empty": ""}
    document = json.loads(manifest.to_json())
    del document["tags"]  # written before tags existed
    assert Manifest.from_json(json.dumps(document).encode(), "x").tags == {}


def test_manifest_from_newer_version_or_garbage_is_refused():
    document = json.loads(_manifest().to_json())
    document["format"] = FORMAT_VERSION + 1
    with pytest.raises(ManifestFormatError) as error:
        Manifest.from_json(json.dumps(document).encode(), "of collection c")
    assert (
        f"has format version {FORMAT_VERSION + 1}; this FaceSearch reads versions up to {FORMAT_VERSION}"
        in error.value.message
    )
    with pytest.raises(ManifestFormatError) as error:
        Manifest.from_json(b"{not json", "of collection c")
    assert error.value.message == "The manifest of collection c is not a readable collection manifest."
    del document["index"]
    document["format"] = FORMAT_VERSION
    with pytest.raises(ManifestFormatError) as error:
        Manifest.from_json(json.dumps(document).encode(), "of collection c")
    assert error.value.message.startswith("The manifest of collection c is malformed")


def _records(n):
    return tuple(
        FaceRecord(
            str(uuid.UUID(int=i + 1)),
            "img",
            None if i % 2 else "ext",
            BoundingBox(0.1, 0.2, 0.3, 0.4),
            98.0,
            "m1",
        )
        for i in range(n)
    )


def test_segment_build_and_reload(tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(20, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    built = segment.build("s1", _records(20), vectors, PARAMS, "m1")
    assert built.ref.count == 20 and built.ref.bin_bytes == len(built.bin_body)
    assert segment.parse_records(built.json_body, built.ref) == _records(20)
    path = tmp_path / "g.bin"
    path.write_bytes(built.bin_body)
    index = segment.load_graph(path, built.ref, PARAMS)
    records = _records(20)
    row_of = {record.face_id: row for row, record in enumerate(records)}
    graph = segment.LoadedSegment(built.ref, records, row_of, index=index)
    small = segment.searchable(built.ref, records, segment.load_graph(path, built.ref, PARAMS))
    assert small.index is None and small.matrix.shape == (20, 8)  # small: searched exactly, no graph kept
    truth = list(np.argsort(-(vectors @ vectors[7]))[:4])
    for loaded in (graph, small):
        hits = segment.search(loaded, vectors[7], k=3, tombstones=frozenset(), ef=PARAMS.ef)
        assert [row for row, _ in hits] == truth[:3] and hits[0][1] == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(loaded.vectors([7])[0], vectors[7], atol=1e-6)
        # Tombstoned faces are left out at query time; the rows stay dead for later tombstone sets.
        dead = frozenset({records[7].face_id})
        assert [
            row for row, _ in segment.search(loaded, vectors[7], k=3, tombstones=dead, ef=PARAMS.ef)
        ] == truth[1:4]
        assert 7 not in {
            row for row, _ in segment.search(loaded, vectors[7], k=20, tombstones=dead, ef=PARAMS.ef)
        }
        assert len(segment.search(loaded, vectors[7], k=50, tombstones=dead, ef=PARAMS.ef)) == 19


def test_segment_decode_failures_are_corrupt_segment_errors(tmp_path):
    built = segment.build("s1", _records(4), np.eye(4, 8, dtype=np.float32), PARAMS, "m1")
    with pytest.raises(CorruptSegmentError) as error:
        segment.parse_records(built.json_body[:-5], built.ref)
    assert error.value.message.startswith("Segment s1 has unreadable face records")
    wrong = SegmentRef("s1", 5, "", "", 0)
    with pytest.raises(CorruptSegmentError) as error:
        segment.parse_records(built.json_body, wrong)
    assert error.value.message == "Segment s1 holds 4 face records; its manifest says 5."
    newer = json.loads(built.json_body)
    newer["format"] = segment.SEGMENT_FORMAT_VERSION + 1
    with pytest.raises(CorruptSegmentError) as error:
        segment.parse_records(json.dumps(newer).encode(), built.ref)
    assert "format version 2" in error.value.message
    path = tmp_path / "g.bin"
    path.write_bytes(built.bin_body[: len(built.bin_body) // 3])
    with pytest.raises(CorruptSegmentError) as error:
        segment.load_graph(path, built.ref, PARAMS)
    assert error.value.message.startswith("Segment s1 has an unreadable graph")


def test_exact_block_joins_small_segments_without_their_tombstones_and_searches_exactly():
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = _records(30)
    parts = []
    for name, rows in (("a", slice(0, 12)), ("b", slice(12, 30))):
        built = segment.build(name, records[rows], vectors[rows], PARAMS, "m1")
        parts.append(segment.searchable(built.ref, built.records, built.index, built.vectors))
    dead = {records[3].face_id, records[20].face_id}
    block = segment.exact_block(parts, frozenset(dead), dim=8)
    live = [row for row, record in enumerate(records) if record.face_id not in dead]
    assert [record.face_id for record in block.records] == [records[row].face_id for row in live]
    np.testing.assert_array_equal(block.matrix, vectors[live])
    for query in (vectors[3], vectors[21], vectors[0]):
        truth = [records[live[i]].face_id for i in np.argsort(-(vectors[live] @ query))[:5]]
        hits = segment.search_block(block, query, k=5)
        assert [block.records[row].face_id for row, _ in hits] == truth
        assert [cosine for _, cosine in hits] == sorted((cosine for _, cosine in hits), reverse=True)
    assert len(segment.search_block(block, vectors[0], k=100)) == 28  # k beyond the block: all live rows
    empty = segment.exact_block([], frozenset(), dim=8)
    assert empty.matrix.shape == (0, 8) and segment.search_block(empty, vectors[0], k=3) == []
    records_only = segment.LoadedSegment(parts[0].ref, parts[0].records, parts[0].row_of)
    with pytest.raises(RuntimeError):
        segment.exact_block([records_only], frozenset(), dim=8)
