"""ClientRequestToken: a repeated token replays the first answer; reused with other parameters it is refused.

Records live beside the collections (``idempotency/<hash>.json`` in the same folder or bucket), written
put-if-absent, so every container of a deployment sees them. The hash covers the operation, the
collection and its creation time (a token does not survive the collection being deleted and re-created)
and the token; the record keeps a fingerprint of the other parameters and the rendered answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from facesearch.errors import IdempotentParameterMismatchException
from facesearch.lazy import once
from facesearch.protocol.telemetry import count
from facesearch.settings import get_settings
from facesearch.store import get_store
from facesearch.store.blobs import Blob, BlobStore, open_blob_store
from facesearch.store.errors import PreconditionFailed

TOKEN_MEMBER = "ClientRequestToken"
RECORD_PREFIX = "idempotency/"


@once
def _records() -> BlobStore:
    return open_blob_store(get_settings().store)


def _fingerprint(params: dict[str, Any]) -> str:
    others = {name: value for name, value in params.items() if name != TOKEN_MEMBER}
    return hashlib.sha256(json.dumps(others, sort_keys=True, default=str).encode()).hexdigest()


def _replay(blob: Blob, fingerprint: str, operation: str) -> dict[str, Any]:
    record = json.loads(blob.body)
    if record["fingerprint"] != fingerprint:
        raise IdempotentParameterMismatchException(
            f"ClientRequestToken was already used for {operation} with different parameters"
        )
    count("IdempotentReplays", 1)
    return record["response"]


def run_once(operation: str, params: dict[str, Any], answer: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``answer()`` once per (operation, collection, ClientRequestToken); the first answer replayed after."""
    token = params.get(TOKEN_MEMBER)
    if token is None:
        return answer()
    collection_id = params["CollectionId"]
    created = get_store().view(collection_id).info.created_at.isoformat()
    scope = "\x00".join((operation, collection_id, created, token))
    key = RECORD_PREFIX + hashlib.sha256(scope.encode()).hexdigest() + ".json"
    fingerprint = _fingerprint(params)
    records = _records()
    existing = records.get(key)
    if isinstance(existing, Blob):
        return _replay(existing, fingerprint, operation)
    response = answer()
    record = {"operation": operation, "fingerprint": fingerprint, "response": response}
    try:
        records.put_if_absent(key, json.dumps(record).encode())
    except PreconditionFailed:
        # A concurrent request with the same token won the race: its answer is the one to keep.
        winner = records.get(key)
        if isinstance(winner, Blob):
            return _replay(winner, fingerprint, operation)
    return response
