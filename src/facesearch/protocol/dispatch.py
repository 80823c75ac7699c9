"""The one dispatcher every door calls: operation name + JSON parameters -> validated request -> operation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from facesearch.errors import UnknownOperationException
from facesearch.operations import analysis, collections, faces, idempotency, tags, users
from facesearch.protocol import model, shapes, validate, wire
from facesearch.protocol.context import RequestContext
from facesearch.telemetry import stage

Operation = Callable[[Any, RequestContext], Any]

# Every operation this service speaks: its request type and the function that answers it.
OPERATIONS: dict[str, tuple[type, Operation]] = {
    "CreateCollection": (shapes.CreateCollectionRequest, collections.create_collection),
    "DeleteCollection": (shapes.DeleteCollectionRequest, collections.delete_collection),
    "DescribeCollection": (shapes.DescribeCollectionRequest, collections.describe_collection),
    "ListCollections": (shapes.ListCollectionsRequest, collections.list_collections),
    "IndexFaces": (shapes.IndexFacesRequest, faces.index_faces),
    "SearchFacesByImage": (shapes.SearchFacesByImageRequest, faces.search_faces_by_image),
    "SearchFaces": (shapes.SearchFacesRequest, faces.search_faces),
    "ListFaces": (shapes.ListFacesRequest, faces.list_faces),
    "DeleteFaces": (shapes.DeleteFacesRequest, faces.delete_faces),
    "DetectFaces": (shapes.DetectFacesRequest, analysis.detect_faces),
    "CompareFaces": (shapes.CompareFacesRequest, analysis.compare_faces),
    "CreateUser": (shapes.CreateUserRequest, users.create_user),
    "DeleteUser": (shapes.DeleteUserRequest, users.delete_user),
    "ListUsers": (shapes.ListUsersRequest, users.list_users),
    "AssociateFaces": (shapes.AssociateFacesRequest, users.associate_faces),
    "DisassociateFaces": (shapes.DisassociateFacesRequest, users.disassociate_faces),
    "SearchUsers": (shapes.SearchUsersRequest, users.search_users),
    "SearchUsersByImage": (shapes.SearchUsersByImageRequest, users.search_users_by_image),
    "TagResource": (shapes.TagResourceRequest, tags.tag_resource),
    "UntagResource": (shapes.UntagResourceRequest, tags.untag_resource),
    "ListTagsForResource": (shapes.ListTagsForResourceRequest, tags.list_tags_for_resource),
}


def dispatch(operation: str, params: Any, context: RequestContext) -> dict[str, Any]:
    """Validate ``params`` as ``operation``'s whole input, run it, and render its output shape."""
    entry = OPERATIONS.get(operation)
    if entry is None:
        raise UnknownOperationException(
            f"Unknown operation {operation!r}: this service speaks {', '.join(sorted(OPERATIONS))}"
        )
    request_type, function = entry
    checked = validate.parse_request(operation, params)
    request = wire.from_wire(request_type, model.input_shape(operation), checked)

    def answer() -> dict[str, Any]:
        with stage(operation):
            response = function(request, context)
        return wire.to_wire(response, model.output_shape(operation))

    return idempotency.run_once(operation, checked, answer)
