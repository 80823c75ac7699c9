"""The web console of ``facesearch serve`` (``GET /``), its opt-in face thumbnails, and the access log.

The console is one self-contained HTML file (``console/index.html``, inline CSS and JS, nothing fetched
from elsewhere) that speaks the same AWS JSON 1.1 API as the SDKs from the browser. Only the local server
serves it; the Lambda API never does.

Thumbnails (``facesearch serve --thumbnails``, off by default: Rekognition stores no images) are small
JPEG crops of each face IndexFaces indexed through this server from ``Image.Bytes``, kept in the store at
``collections/<CollectionId>/thumbnails/<FaceId>.jpg`` so they go with the collection (DeleteCollection
removes its whole prefix); DeleteFaces through this server deletes them with their faces. They are
served only here, at ``/console/thumbnails/<CollectionId>/<FaceId>.jpg``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import re
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any, TextIO

from facesearch.store.blobs import BlobStore, open_blob_store
from facesearch.store.errors import PreconditionFailed
from facesearch.store.keys import collection_key

PAGE_PATHS = ("/", "/console", "/console/")
CONFIG_PATH = "/console/config"
THUMBNAIL_FOLDER = "thumbnails"
# CollectionId's pattern in botocore's model; FaceIds are UUIDs.
_THUMBNAIL_PATH = re.compile(
    r"^/console/thumbnails/(?P<collection>[a-zA-Z0-9_.\-]{1,255})/"
    r"(?P<face>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.jpg$"
)
THUMBNAIL_SIDE = 96
THUMBNAIL_QUALITY = 85
TARGET_HEADER = "X-Amz-Target"
# The page may run its own inline script and style and talk to this origin only.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'"
)


@dataclass(frozen=True)
class ConsoleOptions:
    """What ``facesearch serve`` was started with, as the console sees it."""

    store: str
    thumbnails: bool = False
    access_log: TextIO | None = None


def page() -> bytes:
    return resources.files("facesearch.devtools").joinpath("console/index.html").read_bytes()


def _blobs(options: ConsoleOptions) -> BlobStore:
    return open_blob_store(options.store)


def thumbnail_key(collection_id: str, face_id: str) -> str:
    return collection_key(collection_id, f"{THUMBNAIL_FOLDER}/{face_id}.jpg")


def serve_page(handler: Any, started: float) -> bool:
    """Answer the console's own GET routes; False for every other request (the API's)."""
    if handler.command not in ("GET", "HEAD"):
        return False
    options: ConsoleOptions = handler.server.console
    path = handler.path.partition("?")[0]
    status, kind, body = 200, "text/html; charset=utf-8", b""
    if path in PAGE_PATHS:
        body = page()
    elif path == CONFIG_PATH:
        kind, body = "application/json", json.dumps({"thumbnails": options.thumbnails}).encode()
    elif match := _THUMBNAIL_PATH.match(path):
        blob = (
            _blobs(options).get(thumbnail_key(match["collection"], match["face"]))
            if options.thumbnails
            else None
        )
        if blob is None:
            status, kind, body = 404, "text/plain", b"no thumbnail"
        else:
            kind, body = "image/jpeg", getattr(blob, "body", b"")
    else:
        return False
    headers = {"Content-Type": kind, "Content-Security-Policy": CSP, "Cache-Control": "no-store"}
    handler._answer(status, headers, b"" if handler.command == "HEAD" else body)
    access(handler, status, len(body), started)
    return True


def _thumbnails_of(image: bytes, boxes: dict[str, dict[str, float]]) -> dict[str, bytes]:
    from PIL import Image, ImageOps

    photo = ImageOps.exif_transpose(Image.open(io.BytesIO(image))).convert("RGB")
    width, height = photo.size
    crops = {}
    for face_id, box in boxes.items():
        left, top = box["Left"] * width, box["Top"] * height
        crop = photo.crop(
            (round(left), round(top), round(left + box["Width"] * width), round(top + box["Height"] * height))
        )
        crop.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        out = io.BytesIO()
        crop.save(out, format="JPEG", quality=THUMBNAIL_QUALITY)
        crops[face_id] = out.getvalue()
    return crops


def keep_thumbnails(options: ConsoleOptions, operation: str, request: dict, response: dict) -> None:
    """After a successful IndexFaces, store its faces' crops; after DeleteFaces, delete theirs."""
    collection_id = request.get("CollectionId", "")
    if operation == "IndexFaces" and "Bytes" in request.get("Image", {}):
        boxes = {
            record["Face"]["FaceId"]: record["Face"]["BoundingBox"] for record in response["FaceRecords"]
        }
        image = base64.b64decode(request["Image"]["Bytes"])
        blobs = _blobs(options)
        for face_id, data in _thumbnails_of(image, boxes).items():
            # FaceIds are unique: a thumbnail already there is this face's.
            with contextlib.suppress(PreconditionFailed):
                blobs.put_if_absent(thumbnail_key(collection_id, face_id), data)
    elif operation == "DeleteFaces":
        blobs = _blobs(options)
        for face_id in response.get("DeletedFaces", []):
            blobs.delete(thumbnail_key(collection_id, face_id))


def after_request(handler: Any, body: bytes, status: int, answer: bytes, started: float) -> None:
    """Keep thumbnails (when enabled) and print the access line (when enabled) of one API request."""
    options: ConsoleOptions = handler.server.console
    target = handler.headers.get(TARGET_HEADER) or ""
    operation = target.rpartition(".")[2]
    if options.thumbnails and status == 200 and operation in ("IndexFaces", "DeleteFaces"):
        try:
            keep_thumbnails(options, operation, json.loads(body), json.loads(answer))
        except (ValueError, KeyError, OSError, binascii.Error) as exc:
            print(f"facesearch serve: no thumbnails for this {operation}: {exc}", file=sys.stderr)
    error = ""
    if status >= 400:
        try:
            error = str(json.loads(answer).get("__type", ""))
        except ValueError:
            error = ""
    access(handler, status, len(answer), started, operation, error)


def access(
    handler: Any, status: int, size: int, started: float, operation: str = "", error: str = ""
) -> None:
    """One human-readable line per request on the access log (``facesearch serve`` prints to stdout)."""
    import time

    options: ConsoleOptions = handler.server.console
    if options.access_log is None:
        return
    millis = (time.monotonic() - started) * 1000
    what = " ".join(part for part in (operation, str(status), error) if part)
    print(
        f"{handler.client_address[0]} {handler.command} {handler.path} {what} {size} B {millis:.0f} ms",
        file=options.access_log,
        flush=True,
    )
