"""CreateCollection, DeleteCollection, DescribeCollection, ListCollections."""

from __future__ import annotations

from facesearch.errors import ResourceNotFoundException, ServiceQuotaExceededException
from facesearch.operations.tags import MAX_TAGS_PER_RESOURCE, check_tags
from facesearch.protocol.context import RequestContext
from facesearch.protocol.responses import (
    CreateCollectionResponse,
    DeleteCollectionResponse,
    DescribeCollectionResponse,
    ListCollectionsResponse,
)
from facesearch.protocol.shapes import (
    DEFAULT_PAGE_SIZE,
    CreateCollectionRequest,
    DeleteCollectionRequest,
    DescribeCollectionRequest,
    ListCollectionsRequest,
)
from facesearch.store import get_store
from facesearch.vision.pack import get_pack

HTTP_OK = 200


def collection_arn(context: RequestContext, collection_id: str) -> str:
    """Rekognition's collection ARN form (it omits the ``arn:`` scheme: ``aws:rekognition:...``)."""
    return f"aws:rekognition:{context.region}:{context.account_id}:collection/{collection_id}"


def page_size(max_results: int | None) -> int:
    """MaxResults as a page size: absent, or 0 (the model's minimum), means the default page."""
    return max_results or DEFAULT_PAGE_SIZE


def create_collection(request: CreateCollectionRequest, context: RequestContext) -> CreateCollectionResponse:
    """A new collection pinned to the current default model pack's FaceModelVersion."""
    tags = request.tags or {}
    check_tags(tags)
    if len(tags) > MAX_TAGS_PER_RESOURCE:
        raise ServiceQuotaExceededException(
            f"{len(tags)} tags given; a collection holds at most {MAX_TAGS_PER_RESOURCE}."
        )
    pack = get_pack()
    info = get_store().create_collection(
        request.collection_id, face_model_version=pack.face_model_version, dim=pack.dim, tags=tags
    )
    return CreateCollectionResponse(
        status_code=HTTP_OK,
        collection_arn=collection_arn(context, info.collection_id),
        face_model_version=info.face_model_version,
    )


def delete_collection(request: DeleteCollectionRequest, context: RequestContext) -> DeleteCollectionResponse:
    get_store().delete_collection(request.collection_id)
    return DeleteCollectionResponse(status_code=HTTP_OK)


def describe_collection(
    request: DescribeCollectionRequest, context: RequestContext
) -> DescribeCollectionResponse:
    try:
        info = get_store().view(request.collection_id).info
    except ResourceNotFoundException as missing:
        # DescribeCollection words it differently from the other operations (tests/conformance/README.md).
        raise ResourceNotFoundException(f"Collection:{request.collection_id} not found!") from missing
    return DescribeCollectionResponse(
        face_count=info.face_count,
        face_model_version=info.face_model_version,
        collection_arn=collection_arn(context, info.collection_id),
        creation_timestamp=info.created_at,
        user_count=info.user_count,
    )


def list_collections(request: ListCollectionsRequest, context: RequestContext) -> ListCollectionsResponse:
    page = get_store().list_collections(
        max_results=page_size(request.max_results), next_token=request.next_token
    )
    return ListCollectionsResponse(
        collection_ids=tuple(info.collection_id for info in page.items),
        face_model_versions=tuple(info.face_model_version for info in page.items),
        next_token=page.next_token,
    )
