"""Frozen snake_case response types of every operation (field names match the output shapes' members)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from facesearch.domain import BoundingBox, FaceRecord, ImageQuality, Landmark, Pose


@dataclass(frozen=True)
class AgeRange:
    low: int
    high: int


@dataclass(frozen=True)
class GenderValue:
    value: str
    confidence: float


@dataclass(frozen=True)
class BooleanValue:
    """EyesOpen, MouthOpen, Smile...: a yes/no and its confidence."""

    value: bool
    confidence: float


@dataclass(frozen=True)
class Emotion:
    type: str
    confidence: float


@dataclass(frozen=True)
class FaceDetail:
    """Rekognition's DEFAULT attributes, plus the attributes a request asked for and this service measures.

    It also renders the ComparedFace shape, whose members include the DEFAULT ones (rendering follows the
    model); CompareFaces never sets the others.
    """

    bounding_box: BoundingBox
    confidence: float
    landmarks: tuple[Landmark, ...]
    pose: Pose
    quality: ImageQuality
    age_range: AgeRange | None = None
    gender: GenderValue | None = None
    eyes_open: BooleanValue | None = None
    mouth_open: BooleanValue | None = None
    emotions: tuple[Emotion, ...] | None = None
    smile: BooleanValue | None = None


@dataclass(frozen=True)
class FaceMatch:
    similarity: float
    face: FaceRecord


@dataclass(frozen=True)
class IndexedFace:
    """One element of IndexFaces' FaceRecords."""

    face: FaceRecord
    face_detail: FaceDetail


@dataclass(frozen=True)
class UnindexedFace:
    reasons: tuple[str, ...]
    face_detail: FaceDetail


@dataclass(frozen=True)
class CreateCollectionResponse:
    status_code: int
    collection_arn: str
    face_model_version: str


@dataclass(frozen=True)
class DeleteCollectionResponse:
    status_code: int


@dataclass(frozen=True)
class DescribeCollectionResponse:
    face_count: int
    face_model_version: str
    collection_arn: str
    creation_timestamp: datetime
    user_count: int


@dataclass(frozen=True)
class ListCollectionsResponse:
    collection_ids: tuple[str, ...]
    face_model_versions: tuple[str, ...]
    next_token: str | None = None


@dataclass(frozen=True)
class IndexFacesResponse:
    face_records: tuple[IndexedFace, ...]
    face_model_version: str
    unindexed_faces: tuple[UnindexedFace, ...]


@dataclass(frozen=True)
class SearchFacesByImageResponse:
    searched_face_bounding_box: BoundingBox
    searched_face_confidence: float
    face_matches: tuple[FaceMatch, ...]
    face_model_version: str


@dataclass(frozen=True)
class SearchFacesResponse:
    searched_face_id: str
    face_matches: tuple[FaceMatch, ...]
    face_model_version: str


@dataclass(frozen=True)
class ListFacesResponse:
    faces: tuple[FaceRecord, ...]
    face_model_version: str
    next_token: str | None = None


@dataclass(frozen=True)
class UnsuccessfulFaceItem:
    """UnsuccessfulFaceDeletion / ...Association / ...Disassociation (Confidence only for associations)."""

    face_id: str
    reasons: tuple[str, ...]
    user_id: str | None = None
    confidence: float | None = None


@dataclass(frozen=True)
class DeleteFacesResponse:
    deleted_faces: tuple[str, ...]
    unsuccessful_face_deletions: tuple[UnsuccessfulFaceItem, ...]


@dataclass(frozen=True)
class DetectFacesResponse:
    face_details: tuple[FaceDetail, ...]


@dataclass(frozen=True)
class SourceFace:
    bounding_box: BoundingBox
    confidence: float


@dataclass(frozen=True)
class CompareFacesMatch:
    similarity: float
    face: FaceDetail


@dataclass(frozen=True)
class CompareFacesResponse:
    source_image_face: SourceFace
    face_matches: tuple[CompareFacesMatch, ...]
    unmatched_faces: tuple[FaceDetail, ...]


@dataclass(frozen=True)
class EmptyResponse:
    """CreateUser, DeleteUser, TagResource and UntagResource answer an empty structure."""


@dataclass(frozen=True)
class ListTagsForResourceResponse:
    tags: dict[str, str]


@dataclass(frozen=True)
class UserSummary:
    user_id: str
    user_status: str


@dataclass(frozen=True)
class ListUsersResponse:
    users: tuple[UserSummary, ...]
    next_token: str | None = None


@dataclass(frozen=True)
class FaceIdItem:
    face_id: str


@dataclass(frozen=True)
class AssociateFacesResponse:
    associated_faces: tuple[FaceIdItem, ...]
    unsuccessful_face_associations: tuple[UnsuccessfulFaceItem, ...]
    user_status: str


@dataclass(frozen=True)
class DisassociateFacesResponse:
    disassociated_faces: tuple[FaceIdItem, ...]
    unsuccessful_face_disassociations: tuple[UnsuccessfulFaceItem, ...]
    user_status: str


@dataclass(frozen=True)
class UserMatchItem:
    similarity: float
    user: UserSummary


@dataclass(frozen=True)
class SearchedFaceRef:
    face_id: str


@dataclass(frozen=True)
class SearchedUserRef:
    user_id: str


@dataclass(frozen=True)
class SearchUsersResponse:
    user_matches: tuple[UserMatchItem, ...]
    face_model_version: str
    searched_face: SearchedFaceRef | None = None
    searched_user: SearchedUserRef | None = None


@dataclass(frozen=True)
class SearchedFaceDetails:
    face_detail: FaceDetail


@dataclass(frozen=True)
class UnsearchedFace:
    face_details: FaceDetail
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class SearchUsersByImageResponse:
    user_matches: tuple[UserMatchItem, ...]
    face_model_version: str
    unsearched_faces: tuple[UnsearchedFace, ...]
    searched_face: SearchedFaceDetails | None = None
