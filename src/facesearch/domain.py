"""Frozen snake_case value types shared by the pipeline, the store and the protocol layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class BoundingBox:
    """A box as ratios of the (orientation-corrected) image width and height, as Rekognition reports it."""

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class FaceRecord:
    """One indexed face as the store keeps it (its vector is stored beside it, not in it)."""

    face_id: str
    image_id: str
    external_image_id: str | None
    bounding_box: BoundingBox
    confidence: float
    index_faces_model_version: str
    user_id: str | None = None


@dataclass(frozen=True)
class Landmark:
    """A facial landmark: ``type`` is one of Rekognition's LandmarkType values; x, y are image ratios."""

    type: str
    x: float
    y: float


@dataclass(frozen=True)
class Pose:
    """Head rotation in degrees, as Rekognition reports it."""

    roll: float
    yaw: float
    pitch: float


@dataclass(frozen=True)
class ImageQuality:
    """Brightness and sharpness of the face region, each 0..100."""

    brightness: float
    sharpness: float


# --- collections store (facesearch.store) ---------------------------------------------------------------

# Rekognition's UserStatus values. Store writes are synchronous, so a stored user is CREATED (no faces) or
# ACTIVE (at least one face); CREATING and UPDATING exist on the wire but never persist here.
USER_STATUS_CREATING = "CREATING"
USER_STATUS_CREATED = "CREATED"
USER_STATUS_ACTIVE = "ACTIVE"
USER_STATUS_UPDATING = "UPDATING"

# Rekognition's reasons in UnsuccessfulFaceDeletion / UnsuccessfulFaceAssociation / ...Disassociation.
REASON_FACE_NOT_FOUND = "FACE_NOT_FOUND"
REASON_ASSOCIATED_TO_AN_EXISTING_USER = "ASSOCIATED_TO_AN_EXISTING_USER"
REASON_ASSOCIATED_TO_A_DIFFERENT_USER = "ASSOCIATED_TO_A_DIFFERENT_USER"
REASON_LOW_MATCH_CONFIDENCE = "LOW_MATCH_CONFIDENCE"


@dataclass(frozen=True)
class CollectionInfo:
    """What DescribeCollection reports about one collection; ``created_at`` is timezone-aware UTC.

    ``tags`` are its resource tags (TagResource / ListTagsForResource).
    """

    collection_id: str
    face_model_version: str
    dim: int
    face_count: int
    user_count: int
    created_at: datetime
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UserRecord:
    """One UserId of a collection with its status and its associated face ids (sorted)."""

    user_id: str
    user_status: str
    face_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_token`` is opaque and None on the last page."""

    items: tuple[T, ...]
    next_token: str | None


@dataclass(frozen=True)
class UnsuccessfulFace:
    """A face a DeleteFaces/AssociateFaces/DisassociateFaces call could not act on, with Rekognition reasons.

    ``cosine`` is set only for LOW_MATCH_CONFIDENCE: the best cosine of the face against the user's faces
    (the protocol maps it to a Confidence percentage with the model's similarity map).
    """

    face_id: str
    user_id: str | None
    reasons: tuple[str, ...]
    cosine: float | None = None


@dataclass(frozen=True)
class DeleteResult:
    """DeleteFaces' outcome: ids deleted and faces refused."""

    deleted: tuple[str, ...]
    unsuccessful: tuple[UnsuccessfulFace, ...]


@dataclass(frozen=True)
class AssociateResult:
    """AssociateFaces' outcome: newly associated ids, refused faces, and the user's status afterwards."""

    associated: tuple[str, ...]
    unsuccessful: tuple[UnsuccessfulFace, ...]
    user_status: str


@dataclass(frozen=True)
class DisassociateResult:
    """DisassociateFaces' outcome: disassociated ids, refused faces, and the user's status afterwards."""

    disassociated: tuple[str, ...]
    unsuccessful: tuple[UnsuccessfulFace, ...]
    user_status: str


@dataclass(frozen=True)
class UserMatch:
    """One SearchUsers hit: the user, its best face's cosine to the query, and that face."""

    user: UserRecord
    cosine: float
    face: FaceRecord
