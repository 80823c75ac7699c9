"""CreateUser, DeleteUser, ListUsers, AssociateFaces, DisassociateFaces, SearchUsers, SearchUsersByImage."""

from __future__ import annotations

from typing import cast

from facesearch.domain import UnsuccessfulFace, UserMatch
from facesearch.errors import InvalidParameterException
from facesearch.operations.common import analyze_image, collection_pack, face_detail
from facesearch.operations.quality import apply_quality_filter
from facesearch.protocol.context import RequestContext
from facesearch.protocol.responses import (
    AssociateFacesResponse,
    DisassociateFacesResponse,
    EmptyResponse,
    FaceIdItem,
    ListUsersResponse,
    SearchedFaceDetails,
    SearchedFaceRef,
    SearchedUserRef,
    SearchUsersByImageResponse,
    SearchUsersResponse,
    UnsearchedFace,
    UnsuccessfulFaceItem,
    UserMatchItem,
    UserSummary,
)
from facesearch.protocol.shapes import (
    DEFAULT_MAX_USERS,
    AssociateFacesRequest,
    CreateUserRequest,
    DeleteUserRequest,
    DisassociateFacesRequest,
    ListUsersRequest,
    SearchUsersByImageRequest,
    SearchUsersRequest,
)
from facesearch.store import get_store
from facesearch.telemetry import count, stage
from facesearch.vision.pack import ModelPack

NOT_LARGEST = "FACE_NOT_LARGEST"


def _unsuccessful(pack: ModelPack, items: tuple[UnsuccessfulFace, ...]) -> tuple[UnsuccessfulFaceItem, ...]:
    return tuple(
        UnsuccessfulFaceItem(
            face_id=item.face_id,
            reasons=item.reasons,
            user_id=item.user_id,
            confidence=None if item.cosine is None else pack.similarity(item.cosine),
        )
        for item in items
    )


def _user_matches(pack: ModelPack, matches: list[UserMatch]) -> tuple[UserMatchItem, ...]:
    count("UserMatches", len(matches))
    return tuple(
        UserMatchItem(
            similarity=pack.similarity(match.cosine),
            user=UserSummary(user_id=match.user.user_id, user_status=match.user.user_status),
        )
        for match in matches
    )


def create_user(request: CreateUserRequest, context: RequestContext) -> EmptyResponse:
    get_store().create_user(request.collection_id, request.user_id)
    return EmptyResponse()


def delete_user(request: DeleteUserRequest, context: RequestContext) -> EmptyResponse:
    get_store().delete_user(request.collection_id, request.user_id)
    return EmptyResponse()


def list_users(request: ListUsersRequest, context: RequestContext) -> ListUsersResponse:
    view = get_store().view(request.collection_id)
    page = view.list_users(
        max_results=request.max_results or DEFAULT_MAX_USERS, next_token=request.next_token
    )
    return ListUsersResponse(
        users=tuple(UserSummary(user_id=user.user_id, user_status=user.user_status) for user in page.items),
        next_token=page.next_token,
    )


def associate_faces(request: AssociateFacesRequest, context: RequestContext) -> AssociateFacesResponse:
    """Faces must match the user's existing faces at UserMatchThreshold (LOW_MATCH_CONFIDENCE otherwise)."""
    _, pack = collection_pack(request.collection_id)
    result = get_store().associate_faces(
        request.collection_id,
        request.user_id,
        request.face_ids,
        min_cosine=pack.cosine_for_similarity(request.user_match_threshold),
    )
    return AssociateFacesResponse(
        associated_faces=tuple(FaceIdItem(face_id) for face_id in result.associated),
        unsuccessful_face_associations=_unsuccessful(pack, result.unsuccessful),
        user_status=result.user_status,
    )


def disassociate_faces(
    request: DisassociateFacesRequest, context: RequestContext
) -> DisassociateFacesResponse:
    _, pack = collection_pack(request.collection_id)
    result = get_store().disassociate_faces(request.collection_id, request.user_id, request.face_ids)
    return DisassociateFacesResponse(
        disassociated_faces=tuple(FaceIdItem(face_id) for face_id in result.disassociated),
        unsuccessful_face_disassociations=_unsuccessful(pack, result.unsuccessful),
        user_status=result.user_status,
    )


def search_users(request: SearchUsersRequest, context: RequestContext) -> SearchUsersResponse:
    """Users matching a stored face, or matching any face of a user (that user itself excluded)."""
    if (request.user_id is None) == (request.face_id is None):
        raise InvalidParameterException("SearchUsers needs exactly one of UserId and FaceId")
    view, pack = collection_pack(request.collection_id)
    min_cosine = pack.cosine_for_similarity(request.user_match_threshold)
    if request.face_id is not None:
        vector = view.get_vectors([request.face_id])[0]
        with stage("Search"):
            matches = view.search_users(vector, k=request.max_users, min_cosine=min_cosine)
        return SearchUsersResponse(
            user_matches=_user_matches(pack, matches),
            face_model_version=view.info.face_model_version,
            searched_face=SearchedFaceRef(face_id=request.face_id),
        )
    # Exactly one of UserId and FaceId is set (checked above), and FaceId returned already.
    user = view.get_user(cast(str, request.user_id))
    best: dict[str, UserMatch] = {}
    if user.face_ids:
        vectors = view.get_vectors(list(user.face_ids))
        with stage("Search"):
            for vector in vectors:
                hits = view.search_users(vector, k=request.max_users + 1, min_cosine=min_cosine)
                for match in hits:
                    owner = match.user.user_id
                    if owner != user.user_id and (owner not in best or match.cosine > best[owner].cosine):
                        best[owner] = match
    ranked = sorted(best.values(), key=lambda match: -match.cosine)[: request.max_users]
    return SearchUsersResponse(
        user_matches=_user_matches(pack, ranked),
        face_model_version=view.info.face_model_version,
        searched_user=SearchedUserRef(user_id=user.user_id),
    )


def search_users_by_image(
    request: SearchUsersByImageRequest, context: RequestContext
) -> SearchUsersByImageResponse:
    """Users matching the image's largest face; no face at all is an empty answer, as in Rekognition."""
    view, pack = collection_pack(request.collection_id)
    analysis = analyze_image(request.image, pack)
    if not analysis.faces:
        return SearchUsersByImageResponse(
            user_matches=(), face_model_version=view.info.face_model_version, unsearched_faces=()
        )
    largest, *others = analysis.faces
    unsearched = [UnsearchedFace(face_details=face_detail(face), reasons=(NOT_LARGEST,)) for face in others]
    passed, filtered = apply_quality_filter([largest], request.quality_filter, None)
    matches: list[UserMatch] = []
    if passed:
        with stage("Search"):
            matches = view.search_users(
                largest.vector,
                k=request.max_users,
                min_cosine=pack.cosine_for_similarity(request.user_match_threshold),
            )
    else:
        unsearched.insert(0, UnsearchedFace(face_details=face_detail(largest), reasons=filtered[0][1]))
    return SearchUsersByImageResponse(
        user_matches=_user_matches(pack, matches),
        face_model_version=view.info.face_model_version,
        unsearched_faces=tuple(unsearched),
        searched_face=SearchedFaceDetails(face_detail=face_detail(largest)) if passed else None,
    )
