"""The blob-store contract, identical on the folder backend and on S3 (moto's in-process mock_aws)."""

from __future__ import annotations

import hashlib

import boto3
import pytest
from moto import mock_aws

from facesearch.store.blobs import NOT_MODIFIED, FolderBlobStore, S3BlobStore, open_blob_store
from facesearch.store.errors import PreconditionFailed


@pytest.fixture(params=["folder", "s3"])
def blobs(request, tmp_path, monkeypatch):
    if request.param == "folder":
        yield FolderBlobStore(tmp_path / "root")
        return
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="contract-bucket")
        yield S3BlobStore(client, "contract-bucket", "some/prefix")


def test_get_missing_is_none(blobs, tmp_path):
    assert blobs.get("nothing/here") is None
    assert blobs.get("nothing/here", if_none_match='"abc"') is None
    assert blobs.download("nothing/here", tmp_path / "out") is None


def test_put_if_absent_then_conditional_get(blobs):
    etag = blobs.put_if_absent("a/b.json", b"one")
    assert etag == '"' + hashlib.md5(b"one").hexdigest() + '"'
    got = blobs.get("a/b.json")
    assert (got.body, got.etag) == (b"one", etag)
    assert blobs.get("a/b.json", if_none_match=etag) is NOT_MODIFIED
    with pytest.raises(PreconditionFailed):
        blobs.put_if_absent("a/b.json", b"two")
    assert blobs.get("a/b.json").body == b"one"


def test_put_if_match(blobs):
    first = blobs.put_if_absent("m.json", b"v1")
    second = blobs.put_if_match("m.json", b"v2", first)
    assert blobs.get("m.json", if_none_match=first).body == b"v2"
    with pytest.raises(PreconditionFailed):
        blobs.put_if_match("m.json", b"v3", first)  # stale etag: a lost race
    assert blobs.get("m.json").etag == second
    blobs.delete("m.json")
    with pytest.raises(PreconditionFailed):
        blobs.put_if_match("m.json", b"v4", second)  # the object is gone
    assert blobs.get("m.json") is None


def test_list_list_prefixes_delete_and_download(blobs, tmp_path):
    for key in ("collections/x/manifest.json", "collections/x/segments/1.bin", "collections/y/manifest.json"):
        blobs.put_if_absent(key, key.encode())
    assert [i.key for i in blobs.list("collections/x/")] == [
        "collections/x/manifest.json",
        "collections/x/segments/1.bin",
    ]
    info = blobs.list("collections/x/segments/")[0]
    assert info.size == len(b"collections/x/segments/1.bin") and info.last_modified > 0
    assert blobs.list_prefixes("collections/") == ["collections/x/", "collections/y/"]
    digest = blobs.download("collections/x/segments/1.bin", tmp_path / "out")
    assert digest == hashlib.sha256(b"collections/x/segments/1.bin").hexdigest()
    assert (tmp_path / "out").read_bytes() == b"collections/x/segments/1.bin"
    blobs.delete("collections/y/manifest.json")
    blobs.delete("collections/y/manifest.json")  # missing is fine
    assert blobs.list_prefixes("collections/") == ["collections/x/"]


def test_dot_keys_are_escaped_on_disk(tmp_path):
    blobs = FolderBlobStore(tmp_path / "root")
    blobs.put_if_absent("collections/../manifest.json", b"dots")
    blobs.put_if_absent("collections/.hidden/manifest.json", b"hidden")
    assert not (tmp_path / "manifest.json").exists()
    assert blobs.list_prefixes("collections/") == ["collections/../", "collections/.hidden/"]
    assert blobs.get("collections/../manifest.json").body == b"dots"
    assert [i.key for i in blobs.list("collections/")] == [
        "collections/../manifest.json",
        "collections/.hidden/manifest.json",
    ]


def test_open_blob_store_parses_locations(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = open_blob_store("s3://bucket/deep/prefix/")
    assert isinstance(s3, S3BlobStore) and (s3.bucket, s3.prefix) == ("bucket", "deep/prefix/")
    assert open_blob_store("s3://bucket").prefix == ""
    folder = open_blob_store(str(tmp_path))
    assert isinstance(folder, FolderBlobStore) and folder.root == tmp_path
