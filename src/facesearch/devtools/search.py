"""``facesearch search PHOTO --collection C``: which indexed faces match the photo's faces.

Without ``--all-faces`` this is SearchFacesByImage as Rekognition defines it: the photo's largest face is
searched. ``--all-faces`` (a FaceSearch addition built only from the SDK's operations) runs DetectFaces,
crops each detected face with a margin into its own JPEG and searches the collection with that crop, so
every face of a group photo gets its own matches. The searched crop's largest face is the one cropped
for; ``SearchedFaceBoundingBox`` is reported in the original photo's coordinates.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

from facesearch.devtools.target import add_target_arguments, connect

# Rekognition's default FaceMatchThreshold (SearchFacesByImage, botocore model documentation).
DEFAULT_THRESHOLD = 80.0
DEFAULT_MAX_FACES = 10
# Context kept around each face, as a fraction of the face box per side: the detector needs some of the
# head around the face, and a neighbour's face cut at the crop's edge stays smaller than the one searched.
CROP_MARGIN = 0.4
# Crops smaller than this (pixels, longer side) are upscaled: the detector's input is 640 pixels wide and
# very small crops would otherwise lose the face.
MIN_CROP_SIDE = 160
CROP_JPEG_QUALITY = 92


def face_crop(image: Any, box: dict[str, float]) -> tuple[bytes, tuple[float, float, float, float]]:
    """JPEG bytes of the face ``box`` (ratios) of the PIL ``image`` with margin; the crop's ratio window."""
    width, height = image.size
    left = max(0.0, box["Left"] - CROP_MARGIN * box["Width"])
    top = max(0.0, box["Top"] - CROP_MARGIN * box["Height"])
    right = min(1.0, box["Left"] + box["Width"] * (1 + CROP_MARGIN))
    bottom = min(1.0, box["Top"] + box["Height"] * (1 + CROP_MARGIN))
    crop = image.crop(
        (round(left * width), round(top * height), round(right * width), round(bottom * height))
    )
    longer = max(crop.size)
    if longer < MIN_CROP_SIDE:
        scale = MIN_CROP_SIDE / longer
        crop = crop.resize((round(crop.size[0] * scale), round(crop.size[1] * scale)))
    out = io.BytesIO()
    crop.convert("RGB").save(out, format="JPEG", quality=CROP_JPEG_QUALITY)
    return out.getvalue(), (left, top, right - left, bottom - top)


def _to_photo(box: dict[str, float], window: tuple[float, float, float, float]) -> dict[str, float]:
    left, top, width, height = window
    return {
        "Width": box["Width"] * width,
        "Height": box["Height"] * height,
        "Left": left + box["Left"] * width,
        "Top": top + box["Top"] * height,
    }


def search_all_faces(
    rekognition: Any, collection_id: str, photo: bytes, *, threshold: float, max_faces: int
) -> list[dict[str, Any]]:
    """One entry per detected face: its FaceDetail's box and confidence, and its matches (or an error)."""
    from PIL import Image, ImageOps

    detected = rekognition.detect_faces(Image={"Bytes": photo})["FaceDetails"]
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(photo)))
    results = []
    for detail in detected:
        crop, window = face_crop(image, detail["BoundingBox"])
        entry: dict[str, Any] = {"BoundingBox": detail["BoundingBox"], "Confidence": detail["Confidence"]}
        try:
            found = rekognition.search_faces_by_image(
                CollectionId=collection_id,
                Image={"Bytes": crop},
                FaceMatchThreshold=threshold,
                MaxFaces=max_faces,
            )
        except rekognition.exceptions.InvalidParameterException as exc:
            # The crop alone showed the detector no face (a profile or a face cut at the photo's edge).
            entry["Error"] = exc.response["Error"]
        else:
            entry["SearchedFaceBoundingBox"] = _to_photo(found["SearchedFaceBoundingBox"], window)
            entry["FaceMatches"] = found["FaceMatches"]
        results.append(entry)
    return results


def _describe(entry: dict[str, Any], index: int) -> list[str]:
    box = entry.get("SearchedFaceBoundingBox") or entry["BoundingBox"]
    head = (
        f"face {index} at left {box['Left']:.2f} top {box['Top']:.2f} (confidence {entry['Confidence']:.1f})"
    )
    if "Error" in entry:
        return [f"{head}: not searched: {entry['Error']['Message']}"]
    if not entry["FaceMatches"]:
        return [f"{head}: no match"]
    return [head] + [
        f"  {match['Similarity']:6.2f}  {match['Face'].get('ExternalImageId', '-')}  "
        f"{match['Face']['FaceId']}"
        for match in entry["FaceMatches"]
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", metavar="PHOTO", type=Path, help="a JPEG or PNG photo")
    parser.add_argument("--collection", required=True, help="CollectionId to search")
    add_target_arguments(parser)
    parser.add_argument("--all-faces", action="store_true", help="search with every face of the photo")
    parser.add_argument(
        "--threshold", type=float, default=DEFAULT_THRESHOLD, help="FaceMatchThreshold (default 80)"
    )
    parser.add_argument(
        "--max-faces", type=int, default=DEFAULT_MAX_FACES, help="matches per face (default 10)"
    )
    parser.add_argument("--json", action="store_true", help="print the responses as JSON")


def run(args: argparse.Namespace) -> int:
    photo = args.photo.read_bytes()
    with connect(args) as rekognition:
        if args.all_faces:
            entries = search_all_faces(
                rekognition, args.collection, photo, threshold=args.threshold, max_faces=args.max_faces
            )
        else:
            try:
                found = rekognition.search_faces_by_image(
                    CollectionId=args.collection,
                    Image={"Bytes": photo},
                    FaceMatchThreshold=args.threshold,
                    MaxFaces=args.max_faces,
                )
            except rekognition.exceptions.ClientError as exc:
                print(f"facesearch search: {exc}", file=sys.stderr)
                return 1
            entries = [
                {
                    "BoundingBox": found["SearchedFaceBoundingBox"],
                    "SearchedFaceBoundingBox": found["SearchedFaceBoundingBox"],
                    "Confidence": found["SearchedFaceConfidence"],
                    "FaceMatches": found["FaceMatches"],
                }
            ]
    if args.json:
        print(json.dumps({"Faces": entries}, indent=2))
    else:
        for index, entry in enumerate(entries, 1):
            print("\n".join(_describe(entry, index)))
        if not entries:
            print("no face detected in the photo")
    return 0
