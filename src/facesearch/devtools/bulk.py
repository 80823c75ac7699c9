"""``facesearch index SOURCE --collection C``: index every photo of a folder or S3 prefix, resumably.

Photos are ``*.jpg``, ``*.jpeg`` and ``*.png`` files (any case) under SOURCE; each is sent with IndexFaces
by an unchanged boto3 client (``--store``: a local store served in-process; ``--endpoint``: a deployed
API), ``--workers`` at a time. Its ExternalImageId is its path within SOURCE, mapped into Rekognition's
pattern ``[a-zA-Z0-9_.\\-:]+`` (``/`` -> ``:``, any other character outside it -> ``_``, past 255
characters truncated with a hash suffix); two paths that map to one id are refused (the first in sorted
order is indexed). The run is resumable: a photo whose ExternalImageId already has faces in the
collection (read with ListFaces) is skipped. Bad photos are reported and skipped, never stop the run.

``--report FILE`` writes one JSON line per photo: ``{"image", "external_image_id", "status", ...}`` with
status ``indexed`` (``face_ids``, ``unindexed``), ``no_faces`` (``unindexed`` reasons), ``skipped``,
``refused`` (``error``) or ``error`` (``error``: code and message).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from facesearch.devtools.target import add_target_arguments, connect
from facesearch.external_ids import external_image_id

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_WORKERS = 2
# ListFaces' largest page (botocore model: MaxResults max 4096).
LIST_FACES_PAGE = 4096
# Below this many seconds between redraws the bar would cost more than it tells.
PROGRESS_INTERVAL_SECONDS = 0.2
# Without a terminal (CI logs), one progress line every this many seconds.
PLAIN_PROGRESS_INTERVAL_SECONDS = 5.0
BAR_WIDTH = 30


@dataclass(frozen=True)
class Photo:
    """One photo of the source: where it is (shown in the report), how to read it, and its id."""

    name: str
    external_image_id: str
    read: Callable[[], bytes] = field(compare=False, repr=False)


def _folder_photos(root: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES:
            yield path.relative_to(root).as_posix(), path.read_bytes


def _s3_photos(url: str) -> Iterator[tuple[str, Callable[[], bytes]]]:
    import boto3

    bucket, _, prefix = url[len("s3://") :].partition("/")
    s3 = boto3.client("s3")

    def reader(key: str) -> Callable[[], bytes]:
        return lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    for key in sorted(keys):
        if key.lower().endswith(PHOTO_SUFFIXES):
            yield key[len(prefix) :].lstrip("/"), reader(key)


def source_photos(source: str) -> tuple[list[Photo], list[dict[str, Any]]]:
    """The photos of ``source`` and the report rows of those refused for an ExternalImageId collision."""
    if source.startswith("s3://"):
        found = _s3_photos(source)
    else:
        root = Path(source).expanduser()
        if not root.is_dir():
            raise SystemExit(f"facesearch index: {source} is not a folder or s3://bucket/prefix")
        found = _folder_photos(root)
    photos: list[Photo] = []
    owners: dict[str, str] = {}
    refused = []
    for name, read in found:
        image_id = external_image_id(name)
        if image_id in owners:
            message = f"ExternalImageId {image_id} is already that of {owners[image_id]}"
            refused.append(_row(name, image_id, "refused", error={"Code": "Collision", "Message": message}))
            continue
        owners[image_id] = name
        photos.append(Photo(name, image_id, read))
    return photos, refused


def existing_image_ids(rekognition: Any, collection_id: str) -> set[str]:
    """ExternalImageIds with faces in the collection (every ListFaces page)."""
    found = set()
    for page in rekognition.get_paginator("list_faces").paginate(
        CollectionId=collection_id, PaginationConfig={"PageSize": LIST_FACES_PAGE}
    ):
        found |= {face["ExternalImageId"] for face in page["Faces"] if "ExternalImageId" in face}
    return found


def ensure_collection(rekognition: Any, collection_id: str) -> bool:
    """Create the collection unless it exists; True when it was created."""
    try:
        rekognition.create_collection(CollectionId=collection_id)
    except rekognition.exceptions.ResourceAlreadyExistsException:
        return False
    return True


def _row(image: str, image_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"image": image, "external_image_id": image_id, "status": status, **extra}


def _reasons(response: dict) -> list[dict[str, Any]]:
    return [
        {"reasons": face["Reasons"], "bounding_box": face["FaceDetail"]["BoundingBox"]}
        for face in response["UnindexedFaces"]
    ]


def index_photo(rekognition: Any, collection_id: str, photo: Photo) -> dict[str, Any]:
    """IndexFaces for one photo; every failure becomes the row's ``error``, never an exception."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        data = photo.read()
        response = rekognition.index_faces(
            CollectionId=collection_id,
            Image={"Bytes": data},
            ExternalImageId=photo.external_image_id,
            QualityFilter="AUTO",
        )
    except ClientError as exc:
        error = exc.response["Error"]
        failure = {"Code": error.get("Code"), "Message": error.get("Message")}
        return _row(photo.name, photo.external_image_id, "error", error=failure)
    except (BotoCoreError, OSError) as exc:
        failure = {"Code": type(exc).__name__, "Message": str(exc)}
        return _row(photo.name, photo.external_image_id, "error", error=failure)
    face_ids = [record["Face"]["FaceId"] for record in response["FaceRecords"]]
    status = "indexed" if face_ids else "no_faces"
    return _row(photo.name, photo.external_image_id, status, face_ids=face_ids, unindexed=_reasons(response))


class Progress:
    """A progress bar with rate and ETA on stderr (redrawn in place on a terminal, else periodic lines)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.counts: Counter[str] = Counter()
        self.faces = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._lock = threading.Lock()
        self._tty = self.stream.isatty()

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        worked = self.done - self.counts["skipped"]
        rate = worked / elapsed
        left = self.total - self.done
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        filled = BAR_WIDTH * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return (
            f"[{bar}] {self.done}/{self.total} {rate:.2f} photos/s ETA {eta} | faces {self.faces} "
            f"skipped {self.counts['skipped']} no-face {self.counts['no_faces']} "
            f"errors {self.counts['error']}"
        )

    def update(self, row: dict[str, Any]) -> None:
        with self._lock:
            self.counts[row["status"]] += 1
            self.faces += len(row.get("face_ids", ()))
            now = time.monotonic()
            interval = PROGRESS_INTERVAL_SECONDS if self._tty else PLAIN_PROGRESS_INTERVAL_SECONDS
            if now - self._drawn >= interval or self.done == self.total:
                self._drawn = now
                self.stream.write(("\r" if self._tty else "") + self.line() + ("" if self._tty else "\n"))
                self.stream.flush()

    def finish(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()


def run_index(
    rekognition: Any,
    collection_id: str,
    photos: list[Photo],
    *,
    present: set[str],
    workers: int,
    report: Callable[[dict[str, Any]], None],
    progress: Progress,
) -> None:
    """Index every photo whose id is not in ``present``, ``workers`` at a time; each row to ``report``."""
    todo = []
    for photo in photos:
        if photo.external_image_id in present:
            row = _row(photo.name, photo.external_image_id, "skipped")
            report(row)
            progress.update(row)
        else:
            todo.append(photo)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="index") as pool:
        for row in pool.map(lambda photo: index_photo(rekognition, collection_id, photo), todo):
            report(row)
            progress.update(row)


def summary(progress: Progress, refused: int, collection_id: str) -> str:
    elapsed = time.monotonic() - progress.started
    counts = progress.counts
    worked = progress.done - counts["skipped"]
    return (
        f"{collection_id}: {counts['indexed']} photos indexed ({progress.faces} faces), "
        f"{counts['skipped']} skipped (already indexed), {counts['no_faces']} with no face indexed, "
        f"{counts['error']} errors, {refused} refused (ExternalImageId collision) "
        f"in {elapsed:.1f} s ({worked / max(elapsed, 1e-9):.2f} photos/s)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="a folder, or s3://bucket/prefix")
    parser.add_argument("--collection", required=True, help="CollectionId (created if missing)")
    add_target_arguments(parser)
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help=f"parallel requests (default {DEFAULT_WORKERS})"
    )
    parser.add_argument("--report", type=Path, help="write one JSON line per photo to this file")


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise SystemExit("facesearch index: --workers must be at least 1")
    photos, refused = source_photos(args.source)
    progress = Progress(len(photos) + len(refused))
    out = args.report.open("w") if args.report else None
    lock = threading.Lock()

    def report(row: dict[str, Any]) -> None:
        if out is not None:
            with lock:
                out.write(json.dumps(row) + "\n")
                out.flush()

    from botocore.exceptions import BotoCoreError, ClientError

    try:
        with connect(args) as rekognition:
            try:
                if ensure_collection(rekognition, args.collection):
                    print(f"created collection {args.collection}", file=sys.stderr)
                present = existing_image_ids(rekognition, args.collection)
            except (BotoCoreError, ClientError) as exc:
                raise SystemExit(f"facesearch index: {exc}") from exc
            for row in refused:
                report(row)
                progress.update(row)
            run_index(
                rekognition,
                args.collection,
                photos,
                present=present,
                workers=args.workers,
                report=report,
                progress=progress,
            )
    finally:
        progress.finish()
        if out is not None:
            out.close()
    print(summary(progress, len(refused), args.collection))
    return 1 if progress.counts["error"] or refused else 0
