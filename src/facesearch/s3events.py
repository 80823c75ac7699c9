"""S3-event indexing: photos put under a bucket prefix are indexed, deleted photos' faces removed.

``s3_event_handler`` takes an SQS event (the template's queue is fed by an EventBridge rule on the
bucket's "Object Created"/"Object Deleted" events; S3 notifications sent to the queue directly work too)
and answers ``{"batchItemFailures": [...]}``: a message whose change failed for a reason that may pass
(throttling, S3, a crash) is retried by SQS and, after the queue's maxReceiveCount, kept in the dead-letter
queue. A photo that can never be indexed (not an image, too large) is recorded as failed and not retried.

Each change goes through the dispatcher as IndexFaces / ListFaces / DeleteFaces with Rekognition's
semantics; its ExternalImageId is the key below the prefix mapped by ``facesearch.external_ids``.
Duplicate and out-of-order deliveries: a state record per object under the collection's own prefix
(``collections/<C>/s3events/<sha256(bucket/key)>.json``: the last applied sequencer, its FaceIds) is
claimed with a conditional write before the change runs. A change whose sequencer is not newer than the
record's is skipped, so a photo delivered twice is indexed once; an overwritten photo's old faces are
replaced; a claim whose holder died (its lease ran out) is taken over, removing whatever faces the dead
attempt may have indexed for that ExternalImageId first.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from typing import Any
from urllib.parse import unquote_plus

from facesearch.errors import (
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
    InvalidS3ObjectException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from facesearch.external_ids import external_image_id
from facesearch.protocol.context import RequestContext
from facesearch.protocol.dispatch import dispatch
from facesearch.settings import ENV_PHOTO_COLLECTION, ENV_PHOTO_PREFIX
from facesearch.store import get_store
from facesearch.store.blobs import Blob
from facesearch.store.errors import PreconditionFailed
from facesearch.store.keys import collection_key
from facesearch.telemetry import count, logger, metrics

CREATED, REMOVED = "created", "removed"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
STATE_FOLDER = "s3events"
PENDING, INDEXED, DELETED, FAILED = "pending", "indexed", "deleted", "failed"
# A change failed for a reason that may pass: the claim is given back, and the retry looks for faces by
# ExternalImageId (the failed attempt may have indexed some before failing).
RETRY = "retry"
# A claim outlives any one change (IndexFaces of a 15 MiB photo plus DeleteFaces: seconds; the
# function's timeout is 60 s); past it its holder is taken for dead.
CLAIM_LEASE_SECONDS = 120.0
# Re-reads of the state record when another delivery of the same object wins a conditional write.
MAX_CLAIM_ATTEMPTS = 5
# Errors that say "this photo can never be indexed": retrying cannot help, so they are recorded, not retried.
PERMANENT = (
    InvalidImageFormatException,
    ImageTooLargeException,
    InvalidS3ObjectException,
    InvalidParameterException,
)
# botocore's model: DeleteFaces takes at most 4096 FaceIds, ListFaces returns at most 4096 per page.
DELETE_BATCH = 4096
LIST_PAGE = 4096


class ClaimBusy(Exception):
    """Another delivery of this change holds a live claim: retry the message later."""


@dataclass(frozen=True)
class Change:
    kind: str
    bucket: str
    key: str
    sequencer: str
    etag: str = ""
    version: str | None = None


@dataclass(frozen=True)
class State:
    """What was last applied for one object."""

    state: str
    sequencer: str
    etag: str = ""
    face_ids: list[str] = field(default_factory=list)
    lease_until: float = 0.0
    error: str = ""

    def body(self) -> bytes:
        return json.dumps(asdict(self)).encode()


@dataclass(frozen=True)
class Config:
    collection_id: str
    prefix: str

    @classmethod
    def from_env(cls) -> Config:
        collection_id = os.environ.get(ENV_PHOTO_COLLECTION, "")
        if not collection_id:
            raise RuntimeError(f"{ENV_PHOTO_COLLECTION} names no collection")
        return cls(collection_id, os.environ.get(ENV_PHOTO_PREFIX, ""))


def sequencer_key(sequencer: str) -> str:
    """Comparable form: S3's documentation says to right-pad the shorter sequencer with zeros and compare
    lexicographically (older versions of the page said left-pad; S3's sequencers are fixed-width in
    practice, so both agree on real events). Upper case makes hex digits compare in order."""
    return sequencer.upper().ljust(32, "0")


def changes_of(document: dict[str, Any]) -> Iterator[Change]:
    """The object changes in one message: an EventBridge S3 event, or an S3 notification (Records)."""
    if document.get("source") == "aws.s3":
        kind = {"Object Created": CREATED, "Object Deleted": REMOVED}.get(document.get("detail-type", ""))
        detail = document.get("detail", {})
        obj = detail.get("object", {})
        if kind:
            yield Change(
                kind,
                detail["bucket"]["name"],
                obj["key"],
                obj.get("sequencer", ""),
                obj.get("etag", ""),
                obj.get("version-id"),
            )
        return
    for record in document.get("Records", []):
        name = record.get("eventName", "")
        kind = (
            CREATED
            if name.startswith("ObjectCreated:")
            else REMOVED
            if name.startswith("ObjectRemoved:")
            else ""
        )
        if record.get("eventSource") != "aws:s3" or not kind:
            continue
        obj = record["s3"]["object"]
        # Notification keys are URL-encoded (a space arrives as "+").
        yield Change(
            kind,
            record["s3"]["bucket"]["name"],
            unquote_plus(obj["key"]),
            obj.get("sequencer", ""),
            obj.get("eTag", ""),
            obj.get("versionId"),
        )


class Indexer:
    """Applies changes to one collection through the dispatcher."""

    def __init__(self, config: Config, context: RequestContext) -> None:
        self.config = config
        self.context = context
        self.blobs = get_store().blobs

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        return dispatch(operation, params, self.context)

    def ensure_collection(self) -> None:
        try:
            self.call("DescribeCollection", CollectionId=self.config.collection_id)
        except ResourceNotFoundException:
            # Another container may have created it first.
            with contextlib.suppress(ResourceAlreadyExistsException):
                self.call("CreateCollection", CollectionId=self.config.collection_id)

    def _state_key(self, change: Change) -> str:
        digest = sha256(f"{change.bucket}/{change.key}".encode()).hexdigest()
        return collection_key(self.config.collection_id, f"{STATE_FOLDER}/{digest}.json")

    def _read(self, key: str) -> tuple[State | None, str | None]:
        got = self.blobs.get(key)
        if not isinstance(got, Blob):
            return None, None
        return State(**json.loads(got.body)), got.etag

    def _write(self, key: str, state: State, etag: str | None) -> str:
        if etag is None:
            return self.blobs.put_if_absent(key, state.body())
        return self.blobs.put_if_match(key, state.body(), etag)

    def apply(self, change: Change) -> str:
        """Apply one change; the outcome (indexed, deleted, duplicate, stale, failed, ignored)."""
        if not change.key.startswith(self.config.prefix) or change.key.endswith("/"):
            return "ignored"
        if change.kind == CREATED and not change.key.lower().endswith(PHOTO_SUFFIXES):
            return "ignored"
        key = self._state_key(change)
        for _ in range(MAX_CLAIM_ATTEMPTS):
            current, etag = self._read(key)
            takeover = False
            if current is not None:
                mine, theirs = sequencer_key(change.sequencer), sequencer_key(current.sequencer)
                if theirs > mine:
                    return "stale"
                if theirs == mine and current.state != RETRY:
                    if current.state != PENDING:
                        return "duplicate"
                    if current.lease_until > time.time():
                        raise ClaimBusy(
                            f"s3://{change.bucket}/{change.key} {change.sequencer} is in progress"
                        )
                takeover = current.state == PENDING
            old_faces = current.face_ids if current is not None else []
            claim = State(
                PENDING, change.sequencer, change.etag, old_faces, time.time() + CLAIM_LEASE_SECONDS
            )
            try:
                claim_etag = self._write(key, claim, etag)
            except PreconditionFailed:
                continue  # another delivery wrote first: read what it did
            # A dead attempt may have indexed faces nobody recorded; a removed photo never seen before may
            # have been indexed another way (`facesearch index`): find those by ExternalImageId. A new
            # photo is not looked for (a ListFaces scan per upload would cost O(collection)).
            scan = takeover or (current.state == RETRY if current else change.kind == REMOVED)
            try:
                return self._run(change, key, claim_etag, old_faces, scan=scan)
            except Exception:
                self._give_back(key, claim_etag, current, old_faces)
                raise
        raise ClaimBusy(f"s3://{change.bucket}/{change.key}: state record kept changing")

    def _give_back(self, key: str, claim_etag: str, previous: State | None, old_faces: list[str]) -> None:
        """Release a failed change's claim at once, so its retry need not wait for the lease to run out."""
        released = State(RETRY, previous.sequencer if previous else "", face_ids=old_faces)
        # A claim already taken over is the new holder's.
        with contextlib.suppress(PreconditionFailed):
            self._write(key, released, claim_etag)

    def _run(self, change: Change, key: str, claim_etag: str, old_faces: list[str], *, scan: bool) -> str:
        image_id = external_image_id(change.key[len(self.config.prefix) :])
        self.delete_faces(self.faces_of(image_id) if scan else old_faces)
        if change.kind == REMOVED:
            final = State(DELETED, change.sequencer, change.etag)
            outcome = "deleted"
        else:
            image: dict[str, Any] = {"Bucket": change.bucket, "Name": change.key}
            if change.version:
                image["Version"] = change.version
            try:
                response = self.call(
                    "IndexFaces",
                    CollectionId=self.config.collection_id,
                    Image={"S3Object": image},
                    ExternalImageId=image_id,
                    QualityFilter="AUTO",
                )
            except PERMANENT as exc:
                logger.warning("photo not indexable", extra={"key": change.key, "error_code": exc.code})
                final = State(FAILED, change.sequencer, change.etag, error=f"{exc.code}: {exc}")
                outcome = "failed"
            else:
                face_ids = [record["Face"]["FaceId"] for record in response["FaceRecords"]]
                final = State(INDEXED, change.sequencer, change.etag, face_ids)
                outcome = "indexed"
        try:
            self._write(key, final, claim_etag)
        except PreconditionFailed:
            # Our lease ran out and a newer delivery took over: it removes this ExternalImageId's faces.
            self.delete_faces(final.face_ids)
            return "superseded"
        return outcome

    def faces_of(self, image_id: str) -> list[str]:
        found, token = [], None
        while True:
            params: dict[str, Any] = {"CollectionId": self.config.collection_id, "MaxResults": LIST_PAGE}
            if token:
                params["NextToken"] = token
            page = self.call("ListFaces", **params)
            found += [face["FaceId"] for face in page["Faces"] if face.get("ExternalImageId") == image_id]
            token = page.get("NextToken")
            if not token:
                return found

    def delete_faces(self, face_ids: list[str]) -> None:
        for start in range(0, len(face_ids), DELETE_BATCH):
            self.call(
                "DeleteFaces",
                CollectionId=self.config.collection_id,
                FaceIds=face_ids[start : start + DELETE_BATCH],
            )


def _messages(event: dict[str, Any]) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """(SQS messageId, document) per message; a direct S3 notification is one message without an id."""
    records = event.get("Records", [])
    if records and records[0].get("eventSource") == "aws:sqs":
        for record in records:
            yield record["messageId"], json.loads(record["body"])
    else:
        yield None, event


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def s3_event_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS batch of S3 object events -> ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}``."""
    request_id = getattr(context, "aws_request_id", "") or str(uuid.uuid4())
    logger.set_correlation_id(request_id)
    indexer = Indexer(Config.from_env(), RequestContext.from_lambda(request_id, context))
    indexer.ensure_collection()
    failures = []
    for message_id, document in _messages(event):
        try:
            for change in changes_of(document):
                outcome = indexer.apply(change)
                count(f"S3Event_{outcome}", 1)
                logger.info("s3 event", extra={"key": change.key, "kind": change.kind, "outcome": outcome})
        except Exception:  # whatever failed, the message is retried and then dead-lettered
            logger.exception("s3 event failed; it will be retried", extra={"message_id": message_id})
            if message_id is None:
                raise  # a direct invocation: Lambda's own async retries and on-failure destination
            failures.append({"itemIdentifier": message_id})
            count("S3EventRetried", 1)
    return {"batchItemFailures": failures}
