"""Key layout of the store: every key a collection owns starts with its prefix, so deleting it is complete."""

from __future__ import annotations

import hashlib
import re
import time
import uuid

ROOT = "collections/"
_SEGMENTS = "segments/"
# Segment ids are "<UTC timestamp>-<uuid4 hex>" (new_segment_id); GC deletes nothing else.
_SEGMENT_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{32}\.(bin|json)$")


def collection_prefix(collection_id: str) -> str:
    """``collections/<CollectionId>/``: the manifest, segments and per-collection records below it."""
    return f"{ROOT}{collection_id}/"


def collection_key(collection_id: str, rest: str) -> str:
    """A key inside the collection's prefix (``rest`` is relative to it)."""
    return collection_prefix(collection_id) + rest


def collection_id_of(prefix: str) -> str:
    """The CollectionId of a ``collection_prefix`` as ``BlobStore.list_prefixes(ROOT)`` returns it."""
    return prefix[len(ROOT) : -1]


def manifest_key(collection_id: str) -> str:
    return collection_key(collection_id, "manifest.json")


def segments_prefix(collection_id: str) -> str:
    return collection_key(collection_id, _SEGMENTS)


def segment_key(collection_id: str, segment_id: str, ext: str) -> str:
    return f"{segments_prefix(collection_id)}{segment_id}.{ext}"


def segment_keys(collection_id: str, segment_id: str) -> tuple[str, str]:
    """Both objects of a segment: the graph (``.bin``) and the records (``.json``)."""
    return segment_key(collection_id, segment_id, "bin"), segment_key(collection_id, segment_id, "json")


def is_segment_object(collection_id: str, key: str) -> bool:
    """True for a key a segment upload writes (anything else under the collection is not GC's to delete)."""
    prefix = segments_prefix(collection_id)
    return key.startswith(prefix) and _SEGMENT_NAME.match(key[len(prefix) :]) is not None


def cache_name(location: str, collection_id: str, segment_id: str, ext: str) -> str:
    """The disk-cache file of a segment object of the store at ``location``."""
    # Segment ids are unique per store; the location hash keeps two stores sharing one cache folder apart.
    where = hashlib.sha256(f"{location}\x00{collection_id}".encode()).hexdigest()[:16]
    return f"{where}-{segment_id}.{ext}"


def new_segment_id() -> str:
    """Time-prefixed (listings sort by age) and random (unique without coordination)."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex}"
