"""TagResource, UntagResource, ListTagsForResource: resource tags on collections, kept in their manifest."""

from __future__ import annotations

import re
from dataclasses import dataclass

from facesearch.errors import InvalidParameterException, ResourceNotFoundException
from facesearch.protocol.context import RequestContext
from facesearch.protocol.responses import (
    EmptyResponse,
    ListTagsForResourceResponse,
)
from facesearch.protocol.shapes import (
    ListTagsForResourceRequest,
    TagResourceRequest,
    UntagResourceRequest,
)
from facesearch.store import get_store

# AWS's tagging limit: at most 50 user tags per resource (the model's TagMap max of 200 is one request's
# bound, not the resource's).
MAX_TAGS_PER_RESOURCE = 50
# "aws:" is reserved for AWS in any mix of case; the model's key pattern only refuses the lowercase form.
RESERVED_PREFIX = "aws:"
# Rekognition's ARNs: ``arn:<partition>:rekognition:<region>:<account>:<type>/<name>``; CreateCollection
# answers the collection's without the ``arn:`` scheme, so both spellings are read.
_ARN = re.compile(
    r"(?:arn:)?(?P<partition>aws[a-z-]*):rekognition:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<type>[a-zA-Z-]+)/(?P<name>.+)"
)
_COLLECTION_ID = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")
COLLECTION_TYPE = "collection"


@dataclass(frozen=True)
class ResourceRef:
    collection_id: str


def parse_resource(arn: str, context: RequestContext) -> ResourceRef:
    """The collection ``arn`` names in this region and account.

    InvalidParameterException if ``arn`` is not a Rekognition ARN; ResourceNotFoundException if it names a
    resource this service cannot hold (another region or account, a model or stream processor).
    """
    found = _ARN.fullmatch(arn)
    if found is None:
        raise InvalidParameterException(
            f"ResourceArn {arn!r} is not a Rekognition resource ARN "
            "(arn:aws:rekognition:<region>:<account>:collection/<CollectionId>)"
        )
    if found["type"] != COLLECTION_TYPE:
        raise ResourceNotFoundException(
            f"The resource {arn} does not exist: this service holds collections only"
        )
    if (found["region"], found["account"]) != (context.region, context.account_id):
        raise ResourceNotFoundException(
            f"The resource {arn} does not exist in region {context.region} of account {context.account_id}"
        )
    if _COLLECTION_ID.fullmatch(found["name"]) is None:
        raise InvalidParameterException(f"ResourceArn {arn!r} does not name a valid CollectionId")
    return ResourceRef(collection_id=found["name"])


def check_tags(tags: dict[str, str]) -> None:
    """Rules the model cannot state: the reserved prefix in any case, and the per-resource count.

    The count is checked again against the collection's current tags when they are merged.
    """
    reserved = sorted(key for key in tags if key.lower().startswith(RESERVED_PREFIX))
    if reserved:
        raise InvalidParameterException(
            f"Tag keys starting with {RESERVED_PREFIX!r} are reserved for AWS: {', '.join(reserved)}"
        )


def tag_resource(request: TagResourceRequest, context: RequestContext) -> EmptyResponse:
    resource = parse_resource(request.resource_arn, context)
    check_tags(request.tags)
    get_store().set_tags(resource.collection_id, request.tags, max_tags=MAX_TAGS_PER_RESOURCE)
    return EmptyResponse()


def untag_resource(request: UntagResourceRequest, context: RequestContext) -> EmptyResponse:
    resource = parse_resource(request.resource_arn, context)
    get_store().remove_tags(resource.collection_id, request.tag_keys)
    return EmptyResponse()


def list_tags_for_resource(
    request: ListTagsForResourceRequest, context: RequestContext
) -> ListTagsForResourceResponse:
    resource = parse_resource(request.resource_arn, context)
    return ListTagsForResourceResponse(tags=get_store().view(resource.collection_id).info.tags)
