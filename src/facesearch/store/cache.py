"""Disk cache of immutable segment objects (``/tmp`` in Lambda), bounded in bytes with LRU eviction.

Segments never change once written, so a cached file never goes stale: it is verified against the
manifest's sha256 once, when downloaded, and then reused until evicted. Files are written to a temp name
and renamed, so several processes may share one cache folder. A reader ``pin``s the file it reads (a
private hard link), so an eviction or a discard by another thread or process cannot remove it mid-read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
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
        part = self._part()
        try:
            self._download(blobs, key, part, sha256)
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
        self.evict(keep=path)
        return path

    @contextlib.contextmanager
    def pinned(self, blobs: BlobStore, key: str, name: str, sha256: str) -> Iterator[Path]:
        """A private hard link to the cached file ``name`` (see ``fetch``), removed when the block ends.

        Eviction skips private names and a discard unlinks only the shared name, so the pinned file
        stays readable. If the shared file vanished between fetch and link, the pin is a private
        download.
        """
        pin = self._part()
        try:
            try:
                os.link(self.fetch(blobs, key, name, sha256), pin)
            except FileNotFoundError:
                self._download(blobs, key, pin, sha256)
            yield pin
        finally:
            pin.unlink(missing_ok=True)

    def read(self, blobs: BlobStore, key: str, name: str, sha256: str) -> bytes:
        """The bytes of the cached file ``name``, checked against ``sha256`` as they are read: a file damaged
        on local disk is discarded and fetched again."""
        with self.pinned(blobs, key, name, sha256) as path:
            body = path.read_bytes()
        if hashlib.sha256(body).hexdigest() == sha256:
            return body
        self.discard(name)
        with self.pinned(blobs, key, name, sha256) as path:  # a fresh download, verified by fetch
            return path.read_bytes()

    def store(self, name: str, body: bytes) -> None:
        """Put bytes this process just wrote to the blob store straight into the cache."""
        part = self._part()
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

    def _part(self) -> Path:
        """A fresh private name in the cache folder (never counted, never evicted)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f"{_PART_PREFIX}{uuid.uuid4().hex}"

    def _download(self, blobs: BlobStore, key: str, target: Path, sha256: str) -> None:
        digest = blobs.download(key, target)
        self.downloads += 1
        if digest is None:
            raise CorruptSegmentError(
                f"Segment object {key} named by the manifest is missing from the store."
            )
        if digest != sha256:
            raise CorruptSegmentError(
                f"Segment object {key} is corrupt: its sha256 is {digest}, the manifest says {sha256}."
            )
