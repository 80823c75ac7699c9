"""Pure manifest changes: ``Manifest -> (Manifest | None, result)``, validated before anything is written.

Each function decides one write against the manifest it is given and returns the new manifest (``None``:
nothing to write) and the operation's result; wire errors are raised before anything changes. What a
change must know beyond the manifest comes in as plain callables (``is_live``: is a face id stored in
one of the manifest's segments and not tombstoned; ``vectors``: the stored unit vectors of face ids),
so the store retries them on a fresh manifest after a lost race and tests run them without a blob store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from facesearch.domain import (
    REASON_ASSOCIATED_TO_A_DIFFERENT_USER,
    REASON_ASSOCIATED_TO_AN_EXISTING_USER,
    REASON_FACE_NOT_FOUND,
    REASON_LOW_MATCH_CONFIDENCE,
    USER_STATUS_ACTIVE,
    USER_STATUS_CREATED,
    AssociateResult,
    DeleteResult,
    DisassociateResult,
    FaceRecord,
    UnsuccessfulFace,
    UserRecord,
)
from facesearch.errors import (
    ConflictException,
    InvalidParameterException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)
from facesearch.store.manifest import Manifest, SegmentRef

# Rekognition: "the total number of faces that can be associated with a single UserID is also limited to 100".
MAX_FACES_PER_USER = 100

IsLive = Callable[[str], bool]
Vectors = Callable[[Sequence[str]], np.ndarray]


def not_found(collection_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"The collection id: {collection_id} does not exist")


def user_not_found(collection_id: str, user_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(
        f"The user id: {user_id} does not exist in the collection {collection_id}"
    )


def unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def user_status(face_ids: Sequence[str]) -> str:
    return USER_STATUS_ACTIVE if face_ids else USER_STATUS_CREATED


def user_record(user_id: str, face_ids: tuple[str, ...]) -> UserRecord:
    return UserRecord(user_id=user_id, user_status=user_status(face_ids), face_ids=tuple(sorted(face_ids)))


def check_vectors(manifest: Manifest, vectors: np.ndarray, expected_rows: int | None) -> np.ndarray:
    """Rows as float32 unit vectors; InvalidParameterException for a bad shape, zero or non-finite."""
    array = np.asarray(vectors, dtype=np.float32)
    if expected_rows is None and array.ndim == 1:
        array = array.reshape(1, -1)
    dim = manifest.index.dim
    if array.ndim != 2 or array.shape[1] != dim:
        raise InvalidParameterException(
            f"Vectors of shape {tuple(np.shape(vectors))} do not match the collection "
            f"{manifest.collection_id}'s dimension {dim} (face model {manifest.face_model_version})."
        )
    if expected_rows is not None and array.shape[0] != expected_rows:
        raise InvalidParameterException(f"Got {array.shape[0]} vectors for {expected_rows} face records.")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not np.all(np.isfinite(array)) or np.any(norms == 0):
        raise InvalidParameterException("Vectors must be finite and non-zero.")
    return array / norms


def check_faces(manifest: Manifest, records: Sequence[FaceRecord], vectors: np.ndarray) -> np.ndarray:
    """The vectors of new faces as unit rows, once records and vectors are valid for the collection."""
    unit = check_vectors(manifest, vectors, expected_rows=len(records))
    for record in records:
        if record.index_faces_model_version != manifest.face_model_version:
            raise InvalidParameterException(
                f"Face model version {record.index_faces_model_version} does not match the collection "
                f"{manifest.collection_id}'s face model version {manifest.face_model_version}."
            )
    if len({record.face_id for record in records}) != len(records):
        raise InvalidParameterException("Face ids must be unique.")
    return unit


def add_segment(current: Manifest, built_for: Manifest, ref: SegmentRef) -> tuple[Manifest, None]:
    """Append a segment built against ``built_for``; refused if the collection was re-created meanwhile."""
    if current.index != built_for.index or current.face_model_version != built_for.face_model_version:
        raise InvalidParameterException(
            f"The collection {current.collection_id} was re-created with another face model while indexing."
        )
    return current.evolve(segments=(*current.segments, ref)), None


def replace_segments(
    current: Manifest, merged: frozenset[str], built: SegmentRef | None, dead: frozenset[str]
) -> tuple[Manifest | None, bool]:
    """Swap the ``merged`` segments for ``built`` (their live faces) and drop the ``dead`` tombstones.

    Nothing (False) if another writer already replaced one of them; tombstones added meanwhile stay,
    and still apply to the merged faces.
    """
    if not merged <= {ref.segment_id for ref in current.segments}:
        return None, False
    kept = tuple(ref for ref in current.segments if ref.segment_id not in merged)
    segments = (*kept, built) if built else kept
    return current.evolve(segments=segments, tombstones=current.tombstones - dead), True


def delete_faces(
    current: Manifest, face_ids: Sequence[str], is_live: IsLive
) -> tuple[Manifest | None, DeleteResult]:
    """Tombstone faces. Unknown -> FACE_NOT_FOUND; faces of a user -> ASSOCIATED_TO_AN_EXISTING_USER."""
    user_of = current.user_of()
    deleted, unsuccessful = [], []
    for face_id in unique(face_ids):
        if not is_live(face_id):
            unsuccessful.append(UnsuccessfulFace(face_id, None, (REASON_FACE_NOT_FOUND,)))
        elif face_id in user_of:
            unsuccessful.append(
                UnsuccessfulFace(face_id, user_of[face_id], (REASON_ASSOCIATED_TO_AN_EXISTING_USER,))
            )
        else:
            deleted.append(face_id)
    result = DeleteResult(deleted=tuple(deleted), unsuccessful=tuple(unsuccessful))
    if not deleted:
        return None, result
    return current.evolve(tombstones=current.tombstones | frozenset(deleted)), result


def create_user(current: Manifest, user_id: str) -> tuple[Manifest, None]:
    """A user with no faces (status CREATED). ConflictException if the UserId exists."""
    if user_id in current.users:
        raise ConflictException(
            f"The user id: {user_id} already exists in the collection {current.collection_id}"
        )
    return current.evolve(users={**current.users, user_id: ()}), None


def delete_user(current: Manifest, user_id: str) -> tuple[Manifest, None]:
    """Without the user; its faces stay in the collection, disassociated."""
    if user_id not in current.users:
        raise user_not_found(current.collection_id, user_id)
    users = dict(current.users)
    del users[user_id]
    return current.evolve(users=users), None


def associate_faces(
    current: Manifest,
    user_id: str,
    face_ids: Sequence[str],
    is_live: IsLive,
    *,
    min_cosine: float | None = None,
    vectors: Vectors | None = None,
) -> tuple[Manifest | None, AssociateResult]:
    """Associate faces with a user, as AssociateFaces does.

    Faces already with this user are ignored (not reported). Unknown faces -> FACE_NOT_FOUND; faces of
    another user -> ASSOCIATED_TO_A_DIFFERENT_USER (``user_id`` = that user); when the user already has
    faces and ``min_cosine`` is given, a face whose best cosine to them (``vectors``) is lower ->
    LOW_MATCH_CONFIDENCE. ServiceQuotaExceededException if the user would exceed MAX_FACES_PER_USER faces.
    """
    if user_id not in current.users:
        raise user_not_found(current.collection_id, user_id)
    existing = list(current.users[user_id])
    user_of = current.user_of()
    accepted, unsuccessful = [], []
    for face_id in unique(face_ids):
        owner = user_of.get(face_id)
        if not is_live(face_id):
            unsuccessful.append(UnsuccessfulFace(face_id, user_id, (REASON_FACE_NOT_FOUND,)))
        elif owner == user_id:
            continue
        elif owner is not None:
            unsuccessful.append(UnsuccessfulFace(face_id, owner, (REASON_ASSOCIATED_TO_A_DIFFERENT_USER,)))
        else:
            accepted.append(face_id)
    if min_cosine is not None and vectors is not None and existing and accepted:
        best = (vectors(accepted) @ vectors(existing).T).max(axis=1)
        low = {face_id: float(cos) for face_id, cos in zip(accepted, best, strict=True) if cos < min_cosine}
        unsuccessful += [
            UnsuccessfulFace(face_id, user_id, (REASON_LOW_MATCH_CONFIDENCE,), cosine)
            for face_id, cosine in low.items()
        ]
        accepted = [face_id for face_id in accepted if face_id not in low]
    if len(existing) + len(accepted) > MAX_FACES_PER_USER:
        raise ServiceQuotaExceededException(
            f"The user id: {user_id} has {len(existing)} faces; associating {len(accepted)} more "
            f"would exceed the limit of {MAX_FACES_PER_USER} faces per user."
        )
    faces = tuple(sorted({*existing, *accepted}))
    result = AssociateResult(
        associated=tuple(accepted), unsuccessful=tuple(unsuccessful), user_status=user_status(faces)
    )
    if not accepted:
        return None, result
    return current.evolve(users={**current.users, user_id: faces}), result


def disassociate_faces(
    current: Manifest, user_id: str, face_ids: Sequence[str], is_live: IsLive
) -> tuple[Manifest | None, DisassociateResult]:
    """Remove faces from a user, as DisassociateFaces does.

    Faces not associated with anyone are ignored; unknown faces -> FACE_NOT_FOUND; faces of another
    user -> ASSOCIATED_TO_A_DIFFERENT_USER (``user_id`` = that user).
    """
    if user_id not in current.users:
        raise user_not_found(current.collection_id, user_id)
    user_of = current.user_of()
    removed, unsuccessful = [], []
    for face_id in unique(face_ids):
        owner = user_of.get(face_id)
        if not is_live(face_id):
            unsuccessful.append(UnsuccessfulFace(face_id, user_id, (REASON_FACE_NOT_FOUND,)))
        elif owner == user_id:
            removed.append(face_id)
        elif owner is not None:
            unsuccessful.append(UnsuccessfulFace(face_id, owner, (REASON_ASSOCIATED_TO_A_DIFFERENT_USER,)))
    gone = set(removed)
    faces = tuple(face_id for face_id in current.users[user_id] if face_id not in gone)
    result = DisassociateResult(
        disassociated=tuple(removed), unsuccessful=tuple(unsuccessful), user_status=user_status(faces)
    )
    if not removed:
        return None, result
    return current.evolve(users={**current.users, user_id: faces}), result
