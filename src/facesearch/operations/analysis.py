"""DetectFaces and CompareFaces: image analysis without a collection, on the default model pack."""

from __future__ import annotations

from facesearch.errors import InvalidParameterException
from facesearch.operations.common import NO_FACE_MESSAGE, face_detail, requested_attributes
from facesearch.operations.images import load_image
from facesearch.operations.quality import apply_quality_filter
from facesearch.protocol.context import RequestContext
from facesearch.protocol.responses import (
    CompareFacesMatch,
    CompareFacesResponse,
    DetectFacesResponse,
    SourceFace,
)
from facesearch.protocol.shapes import (
    CompareFacesRequest,
    DetectFacesRequest,
)
from facesearch.telemetry import count, stage
from facesearch.vision.pack import get_pack
from facesearch.vision.pipeline import analyze


def detect_faces(request: DetectFacesRequest, context: RequestContext) -> DetectFacesResponse:
    attributes = requested_attributes(request.attributes)
    with stage("LoadImage"):
        data = load_image(request.image)
    with stage("Analyze"):
        analysis = analyze(data, embed=False, attributes=attributes)
    count("FacesDetected", len(analysis.faces))
    return DetectFacesResponse(face_details=tuple(face_detail(face) for face in analysis.faces))


def compare_faces(request: CompareFacesRequest, context: RequestContext) -> CompareFacesResponse:
    """The largest source face against up to 100 target faces; both must show a face, as in Rekognition."""
    with stage("LoadImage"):
        source_data = load_image(request.source_image)
        target_data = load_image(request.target_image)
    pack = get_pack()
    with stage("Analyze"):
        source = analyze(source_data, max_faces=1, face_model_version=pack.face_model_version)
        target = analyze(target_data, face_model_version=pack.face_model_version)
    if not source.faces:
        raise InvalidParameterException(f"SourceImage: {NO_FACE_MESSAGE}")
    if not target.faces:
        raise InvalidParameterException(f"TargetImage: {NO_FACE_MESSAGE}")
    source_face = source.faces[0]
    source_kept, source_filtered = apply_quality_filter([source_face], request.quality_filter, None)
    if not source_kept:
        raise InvalidParameterException(
            f"SourceImage: its face does not pass QualityFilter {request.quality_filter} "
            f"({', '.join(source_filtered[0][1])})"
        )
    # Target faces below the quality bar are not compared, and so neither matched nor unmatched.
    candidates, _ = apply_quality_filter(list(target.faces), request.quality_filter, None)
    matches, unmatched = [], []
    for face in candidates:
        similarity = pack.similarity(float(source_face.vector @ face.vector))
        if similarity >= request.similarity_threshold:
            matches.append(CompareFacesMatch(similarity=similarity, face=face_detail(face)))
        else:
            unmatched.append(face_detail(face))
    matches.sort(key=lambda match: match.similarity, reverse=True)
    count("Matches", len(matches))
    return CompareFacesResponse(
        source_image_face=SourceFace(
            bounding_box=source_face.bounding_box, confidence=source_face.confidence
        ),
        face_matches=tuple(matches),
        unmatched_faces=tuple(unmatched),
    )
