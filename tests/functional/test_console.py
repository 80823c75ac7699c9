"""The web console's server side: the page, its config, opt-in thumbnails kept and deleted with faces,
the access line per request; and that the Lambda API serves none of it."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from facesearch.devtools.registry import FACE_API, extract
from facesearch.devtools.server import LocalServer
from tests.support.events import rest_event
from tests.support.transport import rekognition_client


@pytest.fixture(scope="module")
def sample1(tmp_path_factory) -> bytes:
    return extract(FACE_API, ["package/demo/sample1.jpg"], tmp_path_factory.mktemp("demo"))[0].read_bytes()


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_page_is_self_contained(tmp_path):
    with LocalServer(str(tmp_path / "store")) as server:
        status, headers, body = get(server.url + "/")
        config = get(server.url + "/console/config")[2]

    page = body.decode()
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "connect-src 'self'" in headers["Content-Security-Policy"]
    assert "X-Amz-Target" in page and "application/x-amz-json-1.1" in page
    # Nothing is fetched from elsewhere: no absolute URL in any src, href or fetch.
    assert "http://" not in page and "https://" not in page
    assert config == b'{"thumbnails": false}'


def test_the_lambda_api_does_not_serve_the_console():
    from facesearch.devtools.server import LocalLambdaContext
    from facesearch.handler import lambda_handler

    result = lambda_handler(rest_event(None, b"", method="GET", path="/"), LocalLambdaContext())

    assert result["statusCode"] == 400
    assert "UnknownOperationException" in result["body"]


def _thumbnail_files(store: Path) -> list[Path]:
    return sorted(store.glob("collections/*/thumbnails/*.jpg"))


def test_thumbnails_are_kept_under_the_collection_and_deleted_with_faces(tmp_path, sample1):
    from PIL import Image

    store = tmp_path / "store"
    with LocalServer(str(store), thumbnails=True) as server:
        rekognition = rekognition_client(server.url)
        rekognition.create_collection(CollectionId="album")
        records = rekognition.index_faces(CollectionId="album", Image={"Bytes": sample1})["FaceRecords"]
        face_ids = [record["Face"]["FaceId"] for record in records]
        assert get(server.url + "/console/config")[2] == b'{"thumbnails": true}'
        assert [path.stem for path in _thumbnail_files(store)] == sorted(face_ids)
        status, headers, body = get(f"{server.url}/console/thumbnails/album/{face_ids[0]}.jpg")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(body)).size) <= 96

        rekognition.delete_faces(CollectionId="album", FaceIds=face_ids[:1])
        assert get(f"{server.url}/console/thumbnails/album/{face_ids[0]}.jpg")[0] == 404
        assert len(_thumbnail_files(store)) == len(face_ids) - 1

        rekognition.delete_collection(CollectionId="album")
        assert _thumbnail_files(store) == []


def test_without_the_option_no_image_is_kept_or_served(tmp_path, sample1):
    store = tmp_path / "store"
    with LocalServer(str(store)) as server:
        rekognition = rekognition_client(server.url)
        rekognition.create_collection(CollectionId="album")
        face_id = rekognition.index_faces(CollectionId="album", Image={"Bytes": sample1})["FaceRecords"][0][
            "Face"
        ]["FaceId"]
        assert get(f"{server.url}/console/thumbnails/album/{face_id}.jpg")[0] == 404
    assert _thumbnail_files(store) == []


@pytest.mark.parametrize(
    "path",
    [
        "/console/thumbnails/../manifest.json",
        "/console/thumbnails/album/..%2F..%2Fmanifest.jpg",
        "/console/thumbnails/album/not-a-face-id.jpg",
    ],
)
def test_thumbnail_routes_take_only_a_collection_and_a_face_id(tmp_path, path):
    with LocalServer(str(tmp_path / "store"), thumbnails=True) as server:
        status, headers, body = get(server.url + path)
    assert status in (400, 404)
    assert headers["Content-Type"] != "image/jpeg"
    assert b"FaceModelVersion" not in body


def test_one_access_line_per_request(tmp_path):
    log = io.StringIO()
    with LocalServer(str(tmp_path / "store"), access_log=log) as server:
        rekognition = rekognition_client(server.url)
        rekognition.list_collections()
        with pytest.raises(rekognition.exceptions.ResourceNotFoundException):
            rekognition.describe_collection(CollectionId="missing")
        get(server.url + "/")

    lines = log.getvalue().splitlines()
    assert len(lines) == 3
    assert "POST / ListCollections 200" in lines[0]
    assert "POST / DescribeCollection 400 ResourceNotFoundException" in lines[1]
    assert lines[2].startswith("127.0.0.1 GET / 200")
