"""IndexFaces, SearchFacesByImage, SearchFaces, ListFaces, DeleteFaces."""

from __future__ import annotations

import uuid

import numpy as np

from facesearch.domain import FaceRecord
from facesearch.errors import InvalidParameterException
from facesearch.operations.collections import page_size
from facesearch.operations.common import (
    FACE_NOT_FOUND_MESSAGE,
    NO_FACE_MESSAGE,
    analyze_image,
    collection_pack,
    face_detail,
    requested_attributes,
)
from facesearch.operations.quality import apply_quality_filter
from facesearch.protocol.context import RequestContext
from facesearch.protocol.responses import (
    DeleteFacesResponse,
    FaceMatch,
    IndexedFace,
    IndexFacesResponse,
    ListFacesResponse,
    SearchFacesByImageResponse,
    SearchFacesResponse,
    UnindexedFace,
    UnsuccessfulFaceItem,
)
from facesearch.protocol.shapes import (
    MAX_FACES_PER_IMAGE,
    DeleteFacesRequest,
    IndexFacesRequest,
    ListFacesRequest,
    SearchFacesByImageRequest,
    SearchFacesRequest,
)
from facesearch.store import get_store
from facesearch.telemetry import count, stage
from facesearch.vision.pack import ModelPack


def _matches(pack: ModelPack, hits: list[tuple[FaceRecord, float]]) -> tuple[FaceMatch, ...]:
    matches = [FaceMatch(similarity=pack.similarity(cosine), face=record) for record, cosine in hits]
    matches.sort(key=lambda match: match.similarity, reverse=True)
    count("Matches", len(matches))
    return tuple(matches)


def index_faces(request: IndexFacesRequest, context: RequestContext) -> IndexFacesResponse:
    """Detect, filter and embed up to 100 faces of the image and add them as one segment."""
    attributes = requested_attributes(request.detection_attributes)
    view, pack = collection_pack(request.collection_id)
    analysis = analyze_image(request.image, pack, attributes=attributes)
    limit = min(request.max_faces or MAX_FACES_PER_IMAGE, MAX_FACES_PER_IMAGE)
    kept, filtered = apply_quality_filter(list(analysis.faces), request.quality_filter, limit)
    image_id = str(uuid.uuid4())
    records = [
        FaceRecord(
            face_id=str(uuid.uuid4()),
            image_id=image_id,
            external_image_id=request.external_image_id,
            bounding_box=face.bounding_box,
            confidence=face.confidence,
            index_faces_model_version=view.info.face_model_version,
        )
        for face in kept
    ]
    if records:
        with stage("Store"):
            get_store().add_faces(
                request.collection_id, records, np.stack([face.vector for face in kept]).astype(np.float32)
            )
    count("FacesIndexed", len(records))
    return IndexFacesResponse(
        face_records=tuple(
            IndexedFace(face=record, face_detail=face_detail(face))
            for record, face in zip(records, kept, strict=True)
        ),
        face_model_version=view.info.face_model_version,
        unindexed_faces=tuple(
            UnindexedFace(reasons=why, face_detail=face_detail(face)) for face, why in filtered
        ),
    )


def search_faces_by_image(
    request: SearchFacesByImageRequest, context: RequestContext
) -> SearchFacesByImageResponse:
    """Search the collection with the image's largest face (InvalidParameterException if there is none)."""
    view, pack = collection_pack(request.collection_id)
    analysis = analyze_image(request.image, pack, max_faces=1)
    if not analysis.faces:
        raise InvalidParameterException(NO_FACE_MESSAGE)
    face = analysis.faces[0]
    passed, _ = apply_quality_filter([face], request.quality_filter, None)
    hits = []
    # A largest face below the QualityFilter bar is not searched: no matches, as Rekognition answers.
    if passed:
        with stage("Search"):
            hits = view.search(
                face.vector,
                k=request.max_faces,
                min_cosine=pack.cosine_for_similarity(request.face_match_threshold),
            )
    return SearchFacesByImageResponse(
        searched_face_bounding_box=face.bounding_box,
        searched_face_confidence=face.confidence,
        face_matches=_matches(pack, hits),
        face_model_version=view.info.face_model_version,
    )


def search_faces(request: SearchFacesRequest, context: RequestContext) -> SearchFacesResponse:
    """Search the collection with a stored face's vector; the face itself is not among the matches."""
    view, pack = collection_pack(request.collection_id)
    if not view.get_faces([request.face_id]):
        # Rekognition answers an unknown FaceId so (tests/conformance/README.md, row 16).
        raise InvalidParameterException(FACE_NOT_FOUND_MESSAGE)
    vector = view.get_vectors([request.face_id])[0]
    with stage("Search"):
        hits = view.search(
            vector,
            k=request.max_faces + 1,
            min_cosine=pack.cosine_for_similarity(request.face_match_threshold),
        )
    others = [(record, cosine) for record, cosine in hits if record.face_id != request.face_id]
    return SearchFacesResponse(
        searched_face_id=request.face_id,
        face_matches=_matches(pack, others[: request.max_faces]),
        face_model_version=view.info.face_model_version,
    )


def list_faces(request: ListFacesRequest, context: RequestContext) -> ListFacesResponse:
    view = get_store().view(request.collection_id)
    page = view.list_faces(
        max_results=page_size(request.max_results),
        next_token=request.next_token,
        user_id=request.user_id,
        face_ids=request.face_ids,
    )
    return ListFacesResponse(
        faces=tuple(page.items),
        face_model_version=view.info.face_model_version,
        next_token=page.next_token,
    )


def delete_faces(request: DeleteFacesRequest, context: RequestContext) -> DeleteFacesResponse:
    result = get_store().delete_faces(request.collection_id, request.face_ids)
    return DeleteFacesResponse(
        deleted_faces=result.deleted,
        unsuccessful_face_deletions=tuple(
            UnsuccessfulFaceItem(face_id=item.face_id, reasons=item.reasons, user_id=item.user_id)
            for item in result.unsuccessful
        ),
    )
