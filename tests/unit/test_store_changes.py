"""The store's pure manifest changes (Manifest -> (Manifest | None, result)) and key layout, no blob store."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from facesearch.domain import (
    REASON_ASSOCIATED_TO_A_DIFFERENT_USER,
    REASON_ASSOCIATED_TO_AN_EXISTING_USER,
    REASON_FACE_NOT_FOUND,
    REASON_LOW_MATCH_CONFIDENCE,
    USER_STATUS_ACTIVE,
    USER_STATUS_CREATED,
    UnsuccessfulFace,
)
from facesearch.errors import (
    ConflictException,
    InvalidParameterException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)
from facesearch.store import changes, keys
from facesearch.store.manifest import IndexParams, Manifest, SegmentRef

PARAMS = IndexParams(space="cosine", dim=4, m=16, ef_construction=100, ef=50)
STORED = {"f1", "f2", "f3", "f4", "dead"}


def _manifest(**fields) -> Manifest:
    defaults = {
        "collection_id": "c",
        "face_model_version": "m1",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "index": PARAMS,
        "segments": (SegmentRef("s1", 5, "a" * 64, "b" * 64, 10),),
        "tombstones": frozenset({"dead"}),
        "users": {"alice": ("f1",), "bob": ()},
        "serial": 7,
    }
    return Manifest(**{**defaults, **fields})


def _is_live(manifest: Manifest):
    return lambda face_id: face_id in STORED and face_id not in manifest.tombstones


def test_delete_faces_tombstones_only_live_unassociated_faces_once():
    manifest = _manifest()
    new, result = changes.delete_faces(manifest, ["f2", "f2", "dead", "nope", "f1"], _is_live(manifest))
    assert result.deleted == ("f2",)
    assert result.unsuccessful == (
        UnsuccessfulFace("dead", None, (REASON_FACE_NOT_FOUND,)),
        UnsuccessfulFace("nope", None, (REASON_FACE_NOT_FOUND,)),
        UnsuccessfulFace("f1", "alice", (REASON_ASSOCIATED_TO_AN_EXISTING_USER,)),
    )
    assert new.tombstones == {"dead", "f2"} and new.serial == manifest.serial + 1
    assert new.segments == manifest.segments and new.users == manifest.users
    # Nothing deletable: no new manifest (no write), the result still reports why.
    none, again = changes.delete_faces(manifest, ["f1", "nope"], _is_live(manifest))
    assert none is None and again.deleted == () and len(again.unsuccessful) == 2


def test_create_and_delete_user():
    manifest = _manifest()
    new, _ = changes.create_user(manifest, "carol")
    assert new.users == {**manifest.users, "carol": ()}
    with pytest.raises(ConflictException) as error:
        changes.create_user(manifest, "alice")
    assert error.value.message == "The user id: alice already exists in the collection c"
    gone, _ = changes.delete_user(manifest, "alice")
    assert set(gone.users) == {"bob"} and gone.tombstones == manifest.tombstones
    with pytest.raises(ResourceNotFoundException) as error:
        changes.delete_user(manifest, "carol")
    assert error.value.message == "The user id: carol does not exist in the collection c"


def test_associate_faces_reports_each_face_and_changes_only_the_user():
    manifest = _manifest()
    new, result = changes.associate_faces(manifest, "bob", ["f2", "f1", "dead", "f2"], _is_live(manifest))
    assert result.associated == ("f2",) and result.user_status == USER_STATUS_ACTIVE
    assert result.unsuccessful == (
        UnsuccessfulFace("f1", "alice", (REASON_ASSOCIATED_TO_A_DIFFERENT_USER,)),
        UnsuccessfulFace("dead", "bob", (REASON_FACE_NOT_FOUND,)),
    )
    assert new.users == {"alice": ("f1",), "bob": ("f2",)}
    # Already this user's: ignored, nothing to write.
    same, again = changes.associate_faces(manifest, "alice", ["f1"], _is_live(manifest))
    assert same is None and again.associated == () and again.unsuccessful == ()
    with pytest.raises(ResourceNotFoundException):
        changes.associate_faces(manifest, "carol", ["f2"], _is_live(manifest))


def test_associate_faces_low_match_and_quota():
    manifest = _manifest()
    vectors = {"f1": [1, 0, 0, 0], "f2": [0.95, 0.31, 0, 0], "f3": [0, 1, 0, 0]}

    def lookup(face_ids):
        return np.array([vectors[face_id] for face_id in face_ids], dtype=np.float32)

    new, result = changes.associate_faces(
        manifest, "alice", ["f2", "f3"], _is_live(manifest), min_cosine=0.9, vectors=lookup
    )
    assert result.associated == ("f2",)
    (low,) = result.unsuccessful
    assert (low.face_id, low.reasons, low.cosine) == ("f3", (REASON_LOW_MATCH_CONFIDENCE,), 0.0)
    assert new.users["alice"] == ("f1", "f2")
    # A user with no faces yet accepts any face: there is nothing to match against.
    _, first = changes.associate_faces(
        manifest, "bob", ["f3"], _is_live(manifest), min_cosine=0.99, vectors=lookup
    )
    assert first.associated == ("f3",)
    full = _manifest(users={"alice": tuple(f"x{i}" for i in range(changes.MAX_FACES_PER_USER))})
    with pytest.raises(ServiceQuotaExceededException) as error:
        changes.associate_faces(full, "alice", ["f2"], _is_live(full))
    assert error.value.message == (
        "The user id: alice has 100 faces; associating 1 more would exceed the limit of 100 faces per user."
    )


def test_disassociate_faces():
    manifest = _manifest(users={"alice": ("f1", "f2"), "bob": ("f3",)})
    new, result = changes.disassociate_faces(
        manifest, "alice", ["f2", "f3", "f4", "nope"], _is_live(manifest)
    )
    assert result.disassociated == ("f2",) and result.user_status == USER_STATUS_ACTIVE
    assert result.unsuccessful == (
        UnsuccessfulFace("f3", "bob", (REASON_ASSOCIATED_TO_A_DIFFERENT_USER,)),
        UnsuccessfulFace("nope", "alice", (REASON_FACE_NOT_FOUND,)),
    )
    assert new.users == {"alice": ("f1",), "bob": ("f3",)}
    last, emptied = changes.disassociate_faces(new, "alice", ["f1"], _is_live(new))
    assert last.users["alice"] == () and emptied.user_status == USER_STATUS_CREATED
    none, _ = changes.disassociate_faces(manifest, "alice", ["f4"], _is_live(manifest))
    assert none is None


def test_segment_changes():
    manifest = _manifest()
    ref = SegmentRef("s2", 1, "c" * 64, "d" * 64, 3)
    added, _ = changes.add_segment(manifest, manifest, ref)
    assert added.segments == (*manifest.segments, ref)
    recreated = _manifest(face_model_version="m2")
    with pytest.raises(InvalidParameterException) as error:
        changes.add_segment(recreated, manifest, ref)
    assert error.value.message == "The collection c was re-created with another face model while indexing."
    merged, swapped = changes.replace_segments(
        added, frozenset({"s1"}), SegmentRef("s3", 4, "", "", 1), frozenset({"dead"})
    )
    assert swapped and [s.segment_id for s in merged.segments] == ["s2", "s3"] and merged.tombstones == set()
    # Another writer replaced s1 already: nothing to write.
    assert changes.replace_segments(merged, frozenset({"s1"}), None, frozenset()) == (None, False)


def test_check_faces_validates_before_anything_is_written():
    manifest = _manifest()
    unit = changes.check_vectors(manifest, np.array([3.0, 4.0, 0, 0]), expected_rows=None)
    np.testing.assert_allclose(unit, [[0.6, 0.8, 0, 0]])
    with pytest.raises(InvalidParameterException, match=r"Vectors must be finite and non-zero\."):
        changes.check_vectors(manifest, np.zeros((1, 4)), expected_rows=1)


def test_key_layout_keeps_everything_under_the_collection_prefix():
    prefix = keys.collection_prefix("c")
    segment_id = "20260101T000000-" + "0" * 32
    for key in (
        keys.manifest_key("c"),
        *keys.segment_keys("c", segment_id),
        keys.collection_key("c", "idempotency/x.json"),
    ):
        assert key.startswith(prefix)
    assert keys.collection_id_of(prefix) == "c"
    assert keys.is_segment_object("c", keys.segment_key("c", segment_id, "bin"))
    # Not segment objects: never garbage-collected.
    assert not keys.is_segment_object("c", keys.collection_key("c", "idempotency/abc.json"))
    assert not keys.is_segment_object("c", keys.segments_prefix("c") + "notes.txt")
    assert not keys.is_segment_object("c", keys.segment_key("c2", segment_id, "bin"))
