"""The boto3 part of `make sam-local`: an unchanged Rekognition client through `sam local start-api`."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

EVENTS = Path(__file__).resolve().parents[2] / "events"


def warm_up(port: int) -> None:
    """One raw request first: the first one builds the runtime image and starts the container, which can
    take longer than botocore's 60 s read timeout (its retry would then repeat a CreateCollection)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/",
        data=b"{}",
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "RekognitionService.ListCollections",
        },
    )
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=600) as response:
        json.loads(response.read())
    print(f"  warm-up ListCollections (image build, container start): {time.monotonic() - start:.1f}s")


def conformance(endpoint: str, photo_bytes: bytes) -> list[tuple[str, str]]:
    """A boto3 conformance subset through the local API, with the client exactly as a user writes it."""
    client = boto3.client(
        "rekognition",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    photo = photo_bytes
    crop = json.loads((EVENTS / "direct-detect-faces.json").read_text())["Parameters"]["Image"]["Bytes"]
    lines = []

    def step(name: str, call, check) -> dict | None:
        start = time.monotonic()
        response = call()
        verdict = check(response)
        lines.append((name, f"{verdict} ({time.monotonic() - start:.1f}s)"))
        return response

    step(
        "CreateCollection",
        lambda: client.create_collection(CollectionId="sam-local"),
        lambda r: f"{r['StatusCode']} {r['CollectionArn']}",
    )
    indexed = step(
        "IndexFaces",
        lambda: client.index_faces(
            CollectionId="sam-local", Image={"Bytes": photo}, ExternalImageId="sample1"
        ),
        lambda r: f"{len(r['FaceRecords'])} faces indexed",
    )
    ids = {record["Face"]["FaceId"] for record in indexed["FaceRecords"]}
    if not ids:
        raise SystemExit("IndexFaces indexed no face of sample1.jpg")
    found = step(
        "SearchFacesByImage",
        lambda: client.search_faces_by_image(
            CollectionId="sam-local", Image={"Bytes": base64.b64decode(crop)}
        ),
        lambda r: f"top match Similarity {r['FaceMatches'][0]['Similarity']:.1f}",
    )
    if found["FaceMatches"][0]["Face"]["FaceId"] not in ids:
        raise SystemExit(f"SearchFacesByImage did not find an indexed face: {found['FaceMatches'][0]}")
    listed = step(
        "ListFaces", lambda: client.list_faces(CollectionId="sam-local"), lambda r: f"{len(r['Faces'])} faces"
    )
    if {face["FaceId"] for face in listed["Faces"]} != ids:
        raise SystemExit("ListFaces does not list the indexed faces")
    first = found["FaceMatches"][0]["Face"]["FaceId"]
    others = step(
        "SearchFaces",
        lambda: client.search_faces(CollectionId="sam-local", FaceId=first, FaceMatchThreshold=0),
        lambda r: f"{len(r['FaceMatches'])} other faces, the searched one left out",
    )
    if first in {match["Face"]["FaceId"] for match in others["FaceMatches"]}:
        raise SystemExit("SearchFaces returned the searched face itself")
    step(
        "DeleteFaces",
        lambda: client.delete_faces(CollectionId="sam-local", FaceIds=[first]),
        lambda r: f"deleted {len(r['DeletedFaces'])}",
    )
    if first in {face["FaceId"] for face in client.list_faces(CollectionId="sam-local")["Faces"]}:
        raise SystemExit("DeleteFaces left the face listed")
    try:
        client.describe_collection(CollectionId="no-such-collection")
    except client.exceptions.ResourceNotFoundException as error:
        lines.append(("DescribeCollection (missing)", f"{error.response['Error']['Code']} as expected"))
    except ClientError as error:
        raise SystemExit(f"DescribeCollection of a missing collection raised {error}") from error
    else:
        raise SystemExit("DescribeCollection of a missing collection answered")
    step(
        "DeleteCollection",
        lambda: client.delete_collection(CollectionId="sam-local"),
        lambda r: f"StatusCode {r['StatusCode']}",
    )
    if "sam-local" in client.list_collections()["CollectionIds"]:
        raise SystemExit("DeleteCollection left the collection listed")
    return lines
