"""Frozen snake_case request types of every operation (wire names from the model); responses.py has the rest.

Defaults are Rekognition's documented ones; where Rekognition documents none, the constant says so.
"""

from __future__ import annotations

from dataclasses import dataclass

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
