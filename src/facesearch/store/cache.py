"""Disk cache of immutable segment objects (``/tmp`` in Lambda), bounded in bytes with LRU eviction.

Segments never change once written, so a cached file never goes stale: it is verified against the
manifest's sha256 once, when downloaded, and then reused until evicted. Files are written to a temp name
and renamed, so several processes may share one cache folder.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from facesearch.store.blobs import BlobStore
from facesearch.store.errors import CorruptSegmentError

_PART_PREFIX = ".part-"


class DiskCache:
    """``fetch`` blobs into the cache (verified), LRU-touch them, evict the oldest beyond ``max_bytes``."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.downloads = 0
        # Bytes in the folder as this process last counted them plus what it added since: scanning the
        # folder on every write would cost O(files) per write. Other processes sharing the folder make
        # it an underestimate; the scan that evicts recounts.
        self._estimated_bytes: int | None = None

    def path(self, name: str) -> Path:
        return self.root / name

    def fetch(self, blobs: BlobStore, key: str, name: str, sha256: str) -> Path:
        """The cached file ``name`` holding blob ``key`` whose bytes must hash to ``sha256``."""
        path = self.path(name)
        if path.exists():
            with contextlib.suppress(FileNotFoundError):
                os.utime(path)
                return path
        self.root.mkdir(parents=True, exist_ok=True)
        part = self.root / f"{_PART_PREFIX}{uuid.uuid4().hex}"
        try:
            digest = blobs.download(key, part)
            self.downloads += 1
            if digest is None:
                raise CorruptSegmentError(
                    f"Segment object {key} named by the manifest is missing from the store."
                )
            if digest != sha256:
                raise CorruptSegmentError(
                    f"Segment object {key} is corrupt: its sha256 is {digest}, the manifest says {sha256}."
                )
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
        self.evict(keep=path)
        return path

    def store(self, name: str, body: bytes) -> None:
        """Put bytes this process just wrote to the blob store straight into the cache."""
        self.root.mkdir(parents=True, exist_ok=True)
        part = self.root / f"{_PART_PREFIX}{uuid.uuid4().hex}"
        part.write_bytes(body)
        os.replace(part, self.path(name))
        self.evict(keep=self.path(name))

    def discard(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def evict(self, keep: Path) -> None:
        """Remove least recently used files until the cache fits ``max_bytes`` (``keep`` always stays)."""
        if self._estimated_bytes is not None:
            with contextlib.suppress(FileNotFoundError):
                self._estimated_bytes += keep.stat().st_size
            if self._estimated_bytes <= self.max_bytes:
                return
        entries = []
        for entry in os.scandir(self.root):
            if entry.name.startswith(_PART_PREFIX) or not entry.is_file():
                continue
            with contextlib.suppress(FileNotFoundError):
                stat = entry.stat()
                entries.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            if path != keep:
                path.unlink(missing_ok=True)
                total -= size
        self._estimated_bytes = total
