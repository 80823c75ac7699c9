"""Frozen snake_case request and response types of every operation (the wire names come from the model).

Defaults are Rekognition's documented ones; where Rekognition documents none, the constant says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from facesearch.domain import BoundingBox, FaceRecord, ImageQuality, Landmark, Pose

# Rekognition's documented defaults.
DEFAULT_FACE_MATCH_THRESHOLD = 80.0
DEFAULT_SIMILARITY_THRESHOLD = 80.0
DEFAULT_USER_MATCH_THRESHOLD_ASSOCIATE = 75.0
DEFAULT_USER_MATCH_THRESHOLD_SEARCH = 80.0
QUALITY_FILTER_SEARCH = "NONE"
QUALITY_FILTER_INDEX = "AUTO"
# IndexFaces indexes at most 100 faces per image whatever MaxFaces says (Rekognition documents the cap).
MAX_FACES_PER_IMAGE = 100
# Rekognition documents no default for these; ours: enough for a page, bounded for a Lambda response.
DEFAULT_MAX_FACES_SEARCH = 80
DEFAULT_PAGE_SIZE = 1000
DEFAULT_MAX_USERS = 500


# --- requests -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3ObjectRef:
    bucket: str
    name: str
    version: str | None = None


@dataclass(frozen=True)
class ImageRef:
    """Exactly one of ``bytes_`` (decoded Image.Bytes) and ``s3_object`` is set (validation enforces it).

    The trailing underscore keeps the builtin ``bytes`` usable in annotations; wire names ignore underscores.
    """

    bytes_: bytes | None = None
    s3_object: S3ObjectRef | None = None


@dataclass(frozen=True)
class CreateCollectionRequest:
    collection_id: str
    tags: dict[str, str] | None = None


@dataclass(frozen=True)
class DeleteCollectionRequest:
    collection_id: str


@dataclass(frozen=True)
class DescribeCollectionRequest:
    collection_id: str


@dataclass(frozen=True)
class ListCollectionsRequest:
    next_token: str | None = None
    max_results: int | None = None


@dataclass(frozen=True)
class IndexFacesRequest:
    collection_id: str
    image: ImageRef
    external_image_id: str | None = None
    detection_attributes: tuple[str, ...] = ()
    max_faces: int | None = None
    quality_filter: str = QUALITY_FILTER_INDEX


@dataclass(frozen=True)
class SearchFacesByImageRequest:
    collection_id: str
    image: ImageRef
    max_faces: int = DEFAULT_MAX_FACES_SEARCH
    face_match_threshold: float = DEFAULT_FACE_MATCH_THRESHOLD
    quality_filter: str = QUALITY_FILTER_SEARCH


@dataclass(frozen=True)
class SearchFacesRequest:
    collection_id: str
    face_id: str
    max_faces: int = DEFAULT_MAX_FACES_SEARCH
    face_match_threshold: float = DEFAULT_FACE_MATCH_THRESHOLD


@dataclass(frozen=True)
class ListFacesRequest:
    collection_id: str
    next_token: str | None = None
    max_results: int | None = None
    user_id: str | None = None
    face_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DeleteFacesRequest:
    collection_id: str
    face_ids: tuple[str, ...]


@dataclass(frozen=True)
class DetectFacesRequest:
    image: ImageRef
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompareFacesRequest:
    source_image: ImageRef
    target_image: ImageRef
    similarity_threshold: float = DEFAULT_SIMILARITY_THRESHOLD
    quality_filter: str = QUALITY_FILTER_SEARCH


@dataclass(frozen=True)
class CreateUserRequest:
    collection_id: str
    user_id: str
    client_request_token: str | None = None


@dataclass(frozen=True)
class DeleteUserRequest:
    collection_id: str
    user_id: str
    client_request_token: str | None = None


@dataclass(frozen=True)
class ListUsersRequest:
    collection_id: str
    max_results: int | None = None
    next_token: str | None = None


@dataclass(frozen=True)
class AssociateFacesRequest:
    collection_id: str
    user_id: str
    face_ids: tuple[str, ...]
    user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD_ASSOCIATE
    client_request_token: str | None = None


@dataclass(frozen=True)
class DisassociateFacesRequest:
    collection_id: str
    user_id: str
    face_ids: tuple[str, ...]
    client_request_token: str | None = None


@dataclass(frozen=True)
class SearchUsersRequest:
    collection_id: str
    user_id: str | None = None
    face_id: str | None = None
    user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD_SEARCH
    max_users: int = DEFAULT_MAX_USERS


@dataclass(frozen=True)
class TagResourceRequest:
    resource_arn: str
    tags: dict[str, str]


@dataclass(frozen=True)
class UntagResourceRequest:
    resource_arn: str
    tag_keys: tuple[str, ...]


@dataclass(frozen=True)
class ListTagsForResourceRequest:
    resource_arn: str


@dataclass(frozen=True)
class SearchUsersByImageRequest:
    collection_id: str
    image: ImageRef
    user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD_SEARCH
    max_users: int = DEFAULT_MAX_USERS
    quality_filter: str = QUALITY_FILTER_SEARCH


# --- responses (field names match the output shapes' members; None fields are omitted) ---------------


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
