"""Store-internal failures: damage the caller cannot fix, rendered as InternalServerError on the wire."""

from __future__ import annotations

from facesearch.errors import InternalServerError


class StoreError(InternalServerError):
    """Base of the store's own failures (a 500: the request was fine, the stored data is not)."""

    @property
    def code(self) -> str:
        # On the wire these are Rekognition's InternalServerError; the subclass name is for logs and tests.
        return InternalServerError.__name__


class CorruptSegmentError(StoreError):
    """A segment's bytes fail their checksum or cannot be decoded, even after a fresh download."""


class ManifestFormatError(StoreError):
    """A manifest is unreadable or was written by a newer format version than this code understands."""


class PreconditionFailed(Exception):
    """A conditional put lost: the key exists (put-if-absent) or changed (put-if-match). Not a wire error."""
