"""Blob stores with one contract and two backends: S3 (conditional writes) and a local folder.

Contract (every method is safe to call from several processes at once):

- ``get(key, if_none_match=etag)`` -> ``Blob`` | ``NOT_MODIFIED`` (the object still has that ETag, no body
  transferred) | ``None`` (no such object).
- ``download(key, dest)`` -> sha256 hex of the bytes streamed into ``dest``; ``None`` if there is no object.
- ``put_if_absent(key, body)`` -> new ETag, or ``PreconditionFailed`` if the key exists.
- ``put_if_match(key, body, etag)`` -> new ETag, or ``PreconditionFailed`` if the object is gone or changed.
- ``list(prefix)`` -> ``BlobInfo`` of every object under ``prefix``; ``list_prefixes(prefix)`` -> the
  "sub-folders" one level below ``prefix`` (keys up to and including the next ``/``).
- ``delete(key)``: missing objects are fine.

ETags are quoted MD5 hex strings on both backends, as S3 returns them for single-part uploads.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from botocore.exceptions import ClientError

from facesearch.store.errors import PreconditionFailed

_CHUNK = 1 << 20
# Temporary files of the folder backend start with this and are never listed.
_TMP_PREFIX = ".tmp-"
_LOCK_DIR = ".locks"
_LOST_RACE = frozenset({"PreconditionFailed", "412", "NoSuchKey", "404", "ConditionalRequestConflict", "409"})


# Folder names: "%" is escaped as "%25" and "~" as "%7E", so a bare "%" or "~" only ever marks a leading ".".
# A leading "." is "%2E" (3 bytes) where the name still fits NAME_MAX, else "~" (1 byte, so every name of up
# to NAME_MAX bytes fits: a 255-character CollectionId may start with ".").
NAME_MAX_BYTES = 255
_DOT = "%2E"
_SHORT_DOT = "~"
_UNESCAPED = {"%25": "%", "%7E": "~"}
_ESCAPED = re.compile("|".join(_UNESCAPED))


def _escape(part: str) -> str:
    part = part.replace("%", "%25").replace("~", "%7E")
    if not part.startswith("."):
        return part
    escaped = _DOT + part[1:]
    return escaped if len(escaped.encode()) <= NAME_MAX_BYTES else _SHORT_DOT + part[1:]


def _unescape(part: str) -> str:
    if part.startswith(_DOT):
        part = "." + part[len(_DOT) :]
    elif part.startswith(_SHORT_DOT):
        part = "." + part[len(_SHORT_DOT) :]
    return _ESCAPED.sub(lambda match: _UNESCAPED[match.group(0)], part)


class _NotModified:
    """The type of ``NOT_MODIFIED``: a conditional GET whose ETag still matches."""

    def __repr__(self) -> str:
        return "NOT_MODIFIED"


NOT_MODIFIED: Final = _NotModified()


@dataclass(frozen=True)
class Blob:
    """An object's bytes and ETag."""

    body: bytes
    etag: str


@dataclass(frozen=True)
class BlobInfo:
    """One listed object: key relative to the store's root, size in bytes, last-modified epoch seconds."""

    key: str
    size: int
    last_modified: float


class BlobStore(Protocol):
    """The contract both backends implement (see the module docstring)."""

    location: str

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob | _NotModified | None: ...

    def download(self, key: str, dest: Path) -> str | None: ...

    def put_if_absent(self, key: str, body: bytes) -> str: ...

    def put_if_match(self, key: str, body: bytes, etag: str) -> str: ...

    def list(self, prefix: str) -> list[BlobInfo]: ...

    def list_prefixes(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...


def _etag(body: bytes) -> str:
    return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'


class S3BlobStore:
    """Objects under ``s3://bucket/prefix`` via a boto3 S3 client (uses S3's conditional PUT headers)."""

    def __init__(self, client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.location = f"s3://{bucket}/{self.prefix}"

    def _key(self, key: str) -> str:
        return self.prefix + key

    @staticmethod
    def _code(error: ClientError) -> str:
        return str(error.response.get("Error", {}).get("Code", ""))

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob | _NotModified | None:
        kwargs = {"IfNoneMatch": if_none_match} if if_none_match else {}
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **kwargs)
        except ClientError as error:
            code = self._code(error)
            if code in ("304", "NotModified"):
                return NOT_MODIFIED
            if code in ("NoSuchKey", "404"):
                return None
            raise
        return Blob(body=response["Body"].read(), etag=response["ETag"])

    def download(self, key: str, dest: Path) -> str | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if self._code(error) in ("NoSuchKey", "404"):
                return None
            raise
        digest = hashlib.sha256()
        with open(dest, "wb") as out:
            for chunk in response["Body"].iter_chunks(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest()

    def _put(self, key: str, body: bytes, **condition: str) -> str:
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, **condition)
        except ClientError as error:
            # 412 when the condition fails; 404 for If-Match on a deleted object; 409 when S3 saw a
            # concurrent conditional write to the same key. All mean "re-read and retry".
            if self._code(error) in _LOST_RACE:
                raise PreconditionFailed(f"{key}: {self._code(error)}") from error
            raise
        return response["ETag"]

    def put_if_absent(self, key: str, body: bytes) -> str:
        return self._put(key, body, IfNoneMatch="*")

    def put_if_match(self, key: str, body: bytes, etag: str) -> str:
        return self._put(key, body, IfMatch=etag)

    def list(self, prefix: str) -> list[BlobInfo]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix)
        ):
            for item in page.get("Contents", []):
                found.append(
                    BlobInfo(
                        key=item["Key"][len(self.prefix) :],
                        size=item["Size"],
                        last_modified=item["LastModified"].timestamp(),
                    )
                )
        return found

    def list_prefixes(self, prefix: str) -> list[str]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix), Delimiter="/"
        ):
            found.extend(item["Prefix"][len(self.prefix) :] for item in page.get("CommonPrefixes", []))
        return sorted(found)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


class FolderBlobStore:
    """Objects as files under a folder: writes go to a temp file then link (absent) or rename under a lock.

    ``os.link`` fails atomically if the target exists (put-if-absent); put-if-match compares and renames
    while holding an ``flock`` on a per-key lock file, so readers always see a whole old or whole new file.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def _path(self, key: str) -> Path:
        # CollectionIds may be "." or "..": escape leading dots so no key leaves the root or hides in it.
        return self.root.joinpath(*(_escape(part) for part in key.split("/")))

    @contextlib.contextmanager
    def _lock(self, key: str):
        lock_dir = self.root / _LOCK_DIR
        lock_dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock"
        with open(lock_dir / name, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write_temp(self, path: Path, body: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        with open(temp, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        return temp

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob | _NotModified | None:
        try:
            body = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        etag = _etag(body)
        return NOT_MODIFIED if if_none_match == etag else Blob(body=body, etag=etag)

    def download(self, key: str, dest: Path) -> str | None:
        digest = hashlib.sha256()
        try:
            with open(self._path(key), "rb") as source, open(dest, "wb") as out:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except FileNotFoundError:
            return None
        return digest.hexdigest()

    def put_if_absent(self, key: str, body: bytes) -> str:
        path = self._path(key)
        temp = self._write_temp(path, body)
        try:
            os.link(temp, path)
        except FileExistsError as error:
            raise PreconditionFailed(f"{key}: exists") from error
        finally:
            temp.unlink()
        return _etag(body)

    def put_if_match(self, key: str, body: bytes, etag: str) -> str:
        path = self._path(key)
        temp = self._write_temp(path, body)
        try:
            with self._lock(key):
                current = self.get(key)
                if current is None or current.etag != etag:
                    raise PreconditionFailed(f"{key}: changed")
                os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        return _etag(body)

    def list(self, prefix: str) -> list[BlobInfo]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        start = base if prefix.endswith("/") or not prefix else base.parent
        found = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                full = Path(dirpath) / name
                key = "/".join(_unescape(part) for part in full.relative_to(self.root).parts)
                if key.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):
                        stat = full.stat()
                        found.append(BlobInfo(key=key, size=stat.st_size, last_modified=stat.st_mtime))
        return sorted(found, key=lambda info: info.key)

    def list_prefixes(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not prefix.endswith("/") or not base.is_dir():
            return []
        return sorted(
            f"{prefix}{_unescape(entry.name)}/"
            for entry in base.iterdir()
            if entry.is_dir() and not entry.name.startswith(".")
        )

    def delete(self, key: str) -> None:
        with self._lock(key):
            self._path(key).unlink(missing_ok=True)
        # Empty folders would otherwise show up in list_prefixes after a collection is deleted.
        parent = self._path(key).parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def open_blob_store(location: str, s3_client=None) -> BlobStore:
    """``s3://bucket/prefix`` -> S3BlobStore (default: the container's S3 client), else a folder store."""
    if location.startswith("s3://"):
        from facesearch.aws import s3_client as get_s3_client

        bucket, _, prefix = location[len("s3://") :].partition("/")
        return S3BlobStore(s3_client or get_s3_client(), bucket, prefix)
    return FolderBlobStore(Path(location))
