"""ClientRequestToken: claim the token before acting, replay the first answer, refuse other parameters.

A record per (operation, collection incarnation, token) lives under the collection's own prefix
(``collections/<CollectionId>/idempotency/<sha256>.json``), so the function's grant covers it and it goes
with the collection. Its life:

1. **Claim**: put-if-absent of an IN_PROGRESS record (fingerprint of the other parameters, a lease).
   Only the request that wins the claim runs the operation; every container of a deployment sees it.
2. **Complete**: the answer replaces the claim (put-if-match on the claim's ETag) and is replayed to
   every later request with the same token and parameters until it expires.
3. **Release**: an error answer changes nothing (operations validate before they write), so the claim is
   released and a retry runs the operation again.

A same-token request that finds a claim in progress waits for its answer (bounded); one with other
parameters is refused before anything runs. A claim whose holder died (its lease ran out) is taken over;
the operation then runs again, and the errors that only say "your first attempt already did it" are
answered as the success they stand for (``ALREADY_DONE``), so a crash between the change and the record
never turns the retry into a conflict.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from facesearch.errors import (
    ConflictException,
    IdempotentParameterMismatchException,
    RekognitionError,
    ResourceNotFoundException,
    ThrottlingException,
)
from facesearch.store import get_store
from facesearch.store.blobs import Blob, BlobStore
from facesearch.store.errors import PreconditionFailed
from facesearch.store.keys import collection_key
from facesearch.telemetry import count

TOKEN_MEMBER = "ClientRequestToken"
RECORD_FOLDER = "idempotency"
# How long an answer is replayed: Powertools' idempotency utility defaults to one hour as well.
ANSWER_TTL_SECONDS = 3600.0
# A claim's lease: longer than any token-taking operation runs (a user write retries its manifest swap
# for at most ~40 s under contention, store.MAX_SWAP_ATTEMPTS with capped backoff); past it the holder is
# taken for dead.
CLAIM_LEASE_SECONDS = 120.0
# How long a same-token request waits for the first to finish before it answers ThrottlingException
# (retryable: botocore retries it and then finds the answer).
WAIT_FOR_CLAIM_SECONDS = 10.0
_POLL_BASE_SECONDS = 0.02
_POLL_CAP_SECONDS = 0.5

IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
RELEASED = "RELEASED"

# Errors a re-run after a takeover may raise only because the dead holder's change went through: for
# these operations the success answer carries nothing else (an empty response), so it can be given.
ALREADY_DONE: dict[str, type[RekognitionError]] = {
    "CreateUser": ConflictException,
    "DeleteUser": ResourceNotFoundException,
}


@dataclass(frozen=True)
class Record:
    """What the record object holds: its state, the parameters' fingerprint, expiry, the answer."""

    state: str
    fingerprint: str
    expires_at: float
    response: dict[str, Any] | None = None

    @classmethod
    def parse(cls, blob: Blob) -> Record:
        return cls(**json.loads(blob.body))

    def body(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def is_free(self, now: float) -> bool:
        """Anyone may claim it: released, or its answer or lease has expired."""
        return self.state == RELEASED or now >= self.expires_at


def fingerprint(params: dict[str, Any]) -> str:
    """sha256 of every parameter but the token, key order ignored."""
    others = {name: value for name, value in params.items() if name != TOKEN_MEMBER}
    return hashlib.sha256(json.dumps(others, sort_keys=True, default=str).encode()).hexdigest()


def record_key(operation: str, collection_id: str, created_at: str, token: str) -> str:
    """The record's key: a collection deleted and re-created under the same id starts with no tokens."""
    scope = "\x00".join((operation, collection_id, created_at, token))
    return collection_key(collection_id, f"{RECORD_FOLDER}/{hashlib.sha256(scope.encode()).hexdigest()}.json")


@dataclass(frozen=True)
class Claim:
    """A claim this request won: the record's ETag, and whether it took over a dead holder's claim."""

    etag: str
    took_over: bool


def run_once(operation: str, params: dict[str, Any], answer: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``answer()`` at most once at a time per token; the first answer replayed after (see module doc)."""
    token = params.get(TOKEN_MEMBER)
    if token is None:
        return answer()
    collection_id = params["CollectionId"]
    store = get_store()
    created = store.view(collection_id).info.created_at.isoformat()
    key = record_key(operation, collection_id, created, token)
    tokens = Tokens(store.blobs, key, token, fingerprint(params), operation)
    outcome = tokens.claim()
    if isinstance(outcome, dict):
        count("IdempotentReplays", 1)
        return outcome
    try:
        response = answer()
    except RekognitionError as error:
        if not (outcome.took_over and isinstance(error, ALREADY_DONE.get(operation, ()))):
            tokens.release(outcome)
            raise
        response = {}
    except BaseException:
        tokens.release(outcome)
        raise
    tokens.complete(outcome, response)
    return response


@dataclass(frozen=True)
class Tokens:
    """The record of one token: claim, complete, release."""

    blobs: BlobStore
    key: str
    token: str
    fingerprint: str
    operation: str

    def claim(self) -> Claim | dict[str, Any]:
        """A won claim, or the first answer to replay; raises for other parameters or a long wait."""
        deadline = time.monotonic() + WAIT_FOR_CLAIM_SECONDS
        for attempt in itertools.count():
            got = self.blobs.get(self.key)
            now = time.time()
            mine = Record(IN_PROGRESS, self.fingerprint, now + CLAIM_LEASE_SECONDS).body()
            try:
                if not isinstance(got, Blob):
                    return Claim(self.blobs.put_if_absent(self.key, mine), took_over=False)
                record = Record.parse(got)
                if record.is_free(now):
                    # A live-looking claim of ours whose lease ran out: its holder died mid-operation.
                    took_over = record.state == IN_PROGRESS and record.fingerprint == self.fingerprint
                    return Claim(self.blobs.put_if_match(self.key, mine, got.etag), took_over=took_over)
            except PreconditionFailed:
                continue  # another request wrote the record between our read and our write
            if record.fingerprint != self.fingerprint:
                # Rekognition's own wording (Developer Guide, "Error handling").
                raise IdempotentParameterMismatchException(
                    f"The ClientRequestToken: {self.token} you have supplied is already in use."
                )
            if record.state == COMPLETED and record.response is not None:
                return record.response
            if time.monotonic() >= deadline:
                raise ThrottlingException(
                    f"A {self.operation} request with this ClientRequestToken is still in progress; retry."
                )
            time.sleep(min(_POLL_CAP_SECONDS, _POLL_BASE_SECONDS * 2**attempt) * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable: itertools.count() does not end")

    def complete(self, claim: Claim, response: dict[str, Any]) -> None:
        done = Record(COMPLETED, self.fingerprint, time.time() + ANSWER_TTL_SECONDS, response)
        try:
            self.blobs.put_if_match(self.key, done.body(), claim.etag)
        except PreconditionFailed:
            # Our lease ran out and another request took the token over: its answer is the record's.
            count("IdempotencyLeaseLost", 1)

    def release(self, claim: Claim) -> None:
        try:
            self.blobs.put_if_match(self.key, Record(RELEASED, self.fingerprint, 0.0).body(), claim.etag)
        except PreconditionFailed:
            count("IdempotencyLeaseLost", 1)
