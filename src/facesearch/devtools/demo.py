"""``facesearch demo``: an unchanged boto3 Rekognition client indexes real photos and searches with another.

It builds nothing (``make demo`` builds the model pack first): it starts ``facesearch serve`` on an empty
temporary store, creates a collection, indexes the faces of the MIT-licensed demo photos of the npm package
``@vladmandic/face-api`` and searches the collection with a photo it did not index, printing the
SearchFacesByImage response and a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from facesearch.devtools.registry import DEFAULT_CACHE, FACE_API, extract

COLLECTION_ID = "demo"
# The demo photos are group shots; sample3's largest face (the woman in the middle) is also in sample1.
QUERY_PHOTO = "sample3.jpg"
INDEXED_PHOTOS = ["sample1.jpg", "sample2.jpg", "sample4.jpg", "sample5.jpg", "sample6.jpg"]
PHOTOS_DIR = DEFAULT_CACHE / "face-api-demo"
# The local server needs no credentials; fixed dummy ones keep the demo independent of ~/.aws.
LOCAL_CREDENTIALS = {
    "aws_access_key_id": "local",
    "aws_secret_access_key": "local",
    "region_name": "us-east-1",
}
# Per-request JSON logs and EMF metrics are Lambda's business; the demo prints only its own lines.
QUIET_ENV = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}


def demo_photos(names: list[str]) -> dict[str, bytes]:
    """The named photos of the demo package (fetched with npm and verified once, then cached)."""
    paths = extract(FACE_API, [f"package/demo/{name}" for name in names], PHOTOS_DIR)
    return {path.name: path.read_bytes() for path in paths}


def summary(response: dict) -> str:
    """One line a person reads: which indexed photos the query's largest face was found in."""
    matches = response["FaceMatches"]
    if not matches:
        return f"{QUERY_PHOTO}: its largest face matches no indexed face at the default threshold."
    found = ", ".join(
        f"{match['Face']['ExternalImageId']} (similarity {match['Similarity']:.1f})" for match in matches
    )
    plural = "face" if len(matches) == 1 else "faces"
    return f"{QUERY_PHOTO}: its largest face matches {len(matches)} indexed {plural}: {found}."


def run_demo(endpoint_url: str) -> dict:
    """Create the collection, index the photos, search with the query photo; returns the search response."""
    import boto3

    rekognition = boto3.client("rekognition", endpoint_url=endpoint_url, **LOCAL_CREDENTIALS)
    photos = demo_photos([*INDEXED_PHOTOS, QUERY_PHOTO])
    created = rekognition.create_collection(CollectionId=COLLECTION_ID)
    print(f"CreateCollection {COLLECTION_ID}: {created['CollectionArn']} ({created['FaceModelVersion']})")
    for name in INDEXED_PHOTOS:
        indexed = rekognition.index_faces(
            CollectionId=COLLECTION_ID, Image={"Bytes": photos[name]}, ExternalImageId=name
        )
        print(
            f"IndexFaces {name}: {len(indexed['FaceRecords'])} faces indexed, "
            f"{len(indexed['UnindexedFaces'])} filtered"
        )
    response = rekognition.search_faces_by_image(
        CollectionId=COLLECTION_ID, Image={"Bytes": photos[QUERY_PHOTO]}
    )
    response.pop("ResponseMetadata", None)
    return response


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, help="collections folder to use (default: a new temporary one)")


def run(args: argparse.Namespace) -> int:
    """Serve on localhost in the background, run the demo against it, print the response and a summary."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    from facesearch.devtools.server import LocalServer

    with tempfile.TemporaryDirectory(prefix="facesearch-demo-") as scratch:
        store = args.store or Path(scratch) / "store"
        with LocalServer(str(store)) as server:
            print(f"facesearch serve: {server.url} (store {store}, empty)")
            response = run_demo(server.url)
    print(f"SearchFacesByImage {QUERY_PHOTO}:")
    print(json.dumps(response, indent=2))
    print(summary(response))
    return 0
