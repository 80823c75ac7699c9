"""ExternalImageId from a file path or S3 key: one documented mapping into Rekognition's pattern.

The mapping (used by ``facesearch index``, the S3-event indexer and the web console):

1. the path relative to the source root (folder or ``s3://bucket/prefix``), ``/``-separated;
2. each ``/`` becomes ``:`` (so ``2024/beach/ann.jpg`` -> ``2024:beach:ann.jpg``);
3. every other character outside ``[a-zA-Z0-9_.\\-:]`` becomes ``_`` (``my photo.jpg`` -> ``my_photo.jpg``);
4. past 255 characters, the first 246 are kept and ``_`` plus 8 hex digits of the path's SHA-256 appended.

Step 3 can map two paths to one id (``a b.jpg`` and ``a_b.jpg``): callers refuse such collisions rather
than mixing two photos' faces under one ExternalImageId.
"""

from __future__ import annotations

import hashlib
import re

# IndexFaces' ExternalImageId in botocore's Rekognition model: pattern [a-zA-Z0-9_.\-:]+, 1..255 characters.
MAX_LENGTH = 255
_OUTSIDE_PATTERN = re.compile(r"[^a-zA-Z0-9_.\-:]")
_DIGEST_CHARS = 8


def external_image_id(relative_path: str) -> str:
    """The ExternalImageId of ``relative_path`` (see the module docstring); never empty."""
    path = relative_path.strip("/")
    if not path:
        raise ValueError("an empty path has no ExternalImageId")
    mapped = _OUTSIDE_PATTERN.sub("_", path.replace("/", ":"))
    if len(mapped) <= MAX_LENGTH:
        return mapped
    digest = hashlib.sha256(path.encode()).hexdigest()[:_DIGEST_CHARS]
    return f"{mapped[: MAX_LENGTH - _DIGEST_CHARS - 1]}_{digest}"
