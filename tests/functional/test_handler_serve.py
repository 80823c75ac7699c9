"""`facesearch serve` as a user runs it, and the local server's own limits, over real HTTP."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import boto3
import pytest

from facesearch.devtools import server as server_module
from facesearch.devtools.server import MAX_REQUEST_BYTES, LocalServer
from facesearch.settings import REPO_ROOT


def rekognition(url: str):
    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="eu-west-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )


def test_serve_command_answers_an_unchanged_boto3_client(tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "facesearch", "serve", "--store", str(tmp_path / "store"), "--port", "0"],
        cwd=REPO_ROOT,
        env={**os.environ, "AWS_REGION": "eu-west-1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = server.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", banner).group(0)
        client = rekognition(url)
        created = client.create_collection(CollectionId="from-cli")
        assert created["CollectionArn"] == "aws:rekognition:eu-west-1:000000000000:collection/from-cli"
        assert client.list_collections()["CollectionIds"] == ["from-cli"]
        assert (tmp_path / "store" / "collections" / "from-cli" / "manifest.json").exists()
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def local(tmp_path):
    with LocalServer(str(tmp_path / "store")) as server:
        yield server


def post(url: str, body: bytes, target: str = "RekognitionService.ListCollections"):
    request = urllib.request.Request(
        url + "/", data=body, headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_request_larger_than_any_valid_request(local):
    big = b"{" + b" " * MAX_REQUEST_BYTES + b"}"
    # ListCollections declares no ImageTooLargeException: a parameter error (issue 10).
    status, headers, body = post(local.url, big)
    assert (status, headers["x-amzn-ErrorType"]) == (400, "InvalidParameterException")
    assert body == {
        "__type": "InvalidParameterException",
        "Message": f"Request of {MAX_REQUEST_BYTES + 2} bytes exceeds the {MAX_REQUEST_BYTES}-byte limit",
    }
    status, headers, body = post(local.url, big, target="RekognitionService.DetectFaces")
    assert (status, headers["x-amzn-ErrorType"]) == (400, "ImageTooLargeException")
    assert body == {
        "__type": "ImageTooLargeException",
        "Message": f"Request of {MAX_REQUEST_BYTES + 2} bytes exceeds the {MAX_REQUEST_BYTES}-byte limit; "
        "pass images as Image.S3Object",
    }


def test_non_utf8_body_reaches_the_handler_base64_encoded(local):
    status, headers, body = post(local.url, b"\xff\xfe{}")
    assert status == 400
    assert body["__type"] == "InvalidParameterException"
    assert body["Message"].startswith("Request body is not a valid JSON document: ")
    assert headers["x-amzn-RequestId"]


def test_server_restores_the_store_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("FACESEARCH_STORE", "/somewhere/else")
    with LocalServer(str(tmp_path)) as server:
        assert rekognition(server.url).list_collections()["CollectionIds"] == []
        assert os.environ["FACESEARCH_STORE"] == str(tmp_path)
    assert os.environ["FACESEARCH_STORE"] == "/somewhere/else"


def test_concurrent_clients_each_get_their_own_answer(local):
    from concurrent.futures import ThreadPoolExecutor

    ids = [f"parallel-{i}" for i in range(8)]

    def roundtrip(collection_id: str) -> tuple[str, str]:
        client = rekognition(local.url)
        client.create_collection(CollectionId=collection_id)
        arns = {client.describe_collection(CollectionId=collection_id)["CollectionARN"] for _ in range(5)}
        return collection_id, arns.pop() if len(arns) == 1 else repr(arns)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for collection_id, arn in pool.map(roundtrip, ids):
            assert arn.endswith(f":collection/{collection_id}")
    assert rekognition(local.url).list_collections()["CollectionIds"] == sorted(ids)


def test_a_client_that_stops_sending_loses_its_connection_and_blocks_no_one(local, monkeypatch):
    monkeypatch.setattr(server_module._Handler, "timeout", 0.5)
    host, port = re.search(r"//([\d.]+):(\d+)", local.url).groups()
    with socket.create_connection((host, int(port)), timeout=30) as stalled:
        stalled.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: RekognitionService.ListCollections\r\n"
            b"Content-Length: 100\r\n\r\n{}"
        )
        # Another client is answered while the first one's body never arrives.
        assert rekognition(local.url).list_collections()["CollectionIds"] == []
        # The stalled connection gets a JSON error at the idle timeout, then is closed (recv returns b"").
        answer = b""
        while chunk := stalled.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(b'the client went idle"}')
