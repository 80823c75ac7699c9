"""The one dispatcher every door calls: operation name + JSON parameters -> validated request -> operation."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from facesearch.errors import UnknownOperationException
from facesearch.protocol import idempotency, model, shapes, validate, wire
from facesearch.protocol.operations import analysis, collections, faces, users
from facesearch.protocol.telemetry import stage

DEFAULT_REGION = "us-east-1"
# Outside Lambda there is no account; ARNs then carry AWS's documentation placeholder account.
PLACEHOLDER_ACCOUNT = "000000000000"


@dataclass(frozen=True)
class RequestContext:
    """Who and where a request runs: ``request_id`` is also the log correlation id."""

    request_id: str
    region: str
    account_id: str

    @classmethod
    def from_lambda(cls, request_id: str, lambda_context: Any) -> RequestContext:
        """Region from the runtime's environment, account from the invoked function's ARN."""
        arn = getattr(lambda_context, "invoked_function_arn", "") or ""
        parts = arn.split(":")
        account = parts[4] if len(parts) > 4 and parts[4].isdigit() else PLACEHOLDER_ACCOUNT
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        return cls(request_id=request_id, region=region, account_id=account)


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
