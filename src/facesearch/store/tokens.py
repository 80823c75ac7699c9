"""Opaque, stable pagination tokens: "resume after this key", bound to one listing and checked on return."""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib

from facesearch.errors import InvalidPaginationTokenException

# Rekognition's PaginationToken shape allows 255 characters: 181 bytes of payload encode to 244.
_MAX_AFTER_BYTES = 170
_CHECK_BYTES = 3
_SCOPE_BYTES = 3
_LONG_KEY_HASH_BYTES = 4


def _digest(data: bytes, size: int) -> bytes:
    return hashlib.sha256(data).digest()[:size]


def scope_of(*parts: object) -> bytes:
    """A short fingerprint of what is being listed (store, collection, filters) so foreign tokens fail."""
    return _digest("\x00".join(repr(part) for part in parts).encode(), _SCOPE_BYTES)


def encode(kind: str, scope: bytes, after: str) -> str:
    """A token meaning "the items of listing (kind, scope) whose key sorts after ``after``".

    Keys longer than the token budget (only CollectionIds can be) are truncated and carry a hash of the
    whole key, resolved by ``resume_index``.
    """
    key = after.encode()
    if len(key) > _MAX_AFTER_BYTES:
        key = key[:_MAX_AFTER_BYTES] + b"\xff" + _digest(after.encode(), _LONG_KEY_HASH_BYTES)
    payload = kind.encode()[:1] + scope + key
    return base64.urlsafe_b64encode(_digest(payload, _CHECK_BYTES) + payload).decode().rstrip("=")


def decode(token: str, kind: str, scope: bytes) -> bytes:
    """The raw resume key of ``token``; InvalidPaginationTokenException if it is garbled or foreign."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    check, payload = raw[:_CHECK_BYTES], raw[_CHECK_BYTES:]
    head = kind.encode()[:1] + scope
    if len(payload) <= len(head) or _digest(payload, _CHECK_BYTES) != check or not payload.startswith(head):
        # Rekognition's own wording (Developer Guide, "Error handling"; tests/conformance/README.md).
        raise InvalidPaginationTokenException("Invalid Token")
    return payload[len(head) :]


def resume_index(keys: list[str], resume: bytes) -> int:
    """Index of the first of the sorted ``keys`` that comes after the token's resume key."""
    if len(resume) > _MAX_AFTER_BYTES and resume[_MAX_AFTER_BYTES : _MAX_AFTER_BYTES + 1] == b"\xff":
        prefix = resume[:_MAX_AFTER_BYTES]
        wanted = resume[_MAX_AFTER_BYTES + 1 :]
        for i, key in enumerate(keys):
            encoded = key.encode()
            if encoded[:_MAX_AFTER_BYTES] == prefix and _digest(encoded, _LONG_KEY_HASH_BYTES) == wanted:
                return i + 1
        # The long key is gone: resume at the first key that does not share its truncated prefix.
        return next((i for i, key in enumerate(keys) if key.encode()[:_MAX_AFTER_BYTES] > prefix), len(keys))
    return bisect.bisect_right(keys, resume.decode(errors="replace"))
