"""Key layout of the store: every key a collection owns starts with its prefix, so deleting it is complete."""

from __future__ import annotations

ROOT = "collections/"


def collection_prefix(collection_id: str) -> str:
    """``collections/<CollectionId>/``: the manifest, segments and per-collection records below it."""
    return f"{ROOT}{collection_id}/"


def collection_key(collection_id: str, rest: str) -> str:
    """A key inside the collection's prefix (``rest`` is relative to it)."""
    return collection_prefix(collection_id) + rest
