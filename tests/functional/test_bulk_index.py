"""``facesearch index``: a folder or S3 prefix into a collection, through an unchanged boto3 client.

Runs the command (``cli.main``) against a local store served in-process, against a running local server
(``--endpoint``), and from an S3 prefix on moto; checks the report, the resume, bad photos and collisions.
"""

from __future__ import annotations

import io
import json
import shutil

import boto3
import pytest
from PIL import Image

from facesearch.devtools import cli
from facesearch.devtools.registry import FACE_API, extract
from facesearch.devtools.server import LocalServer
from tests.support.transport import rekognition_client

PHOTOS = ["sample1.jpg", "sample2.jpg", "sample4.jpg"]


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    extract(FACE_API, [f"package/demo/{name}" for name in PHOTOS], folder)
    return folder


@pytest.fixture
def source(tmp_path, demo_folder):
    """Three photos (one in a subfolder, one with a space), a broken JPEG, a faceless PNG, a collision."""
    root = tmp_path / "photos"
    (root / "trip 2024").mkdir(parents=True)
    shutil.copy(demo_folder / "sample1.jpg", root / "sample1.jpg")
    shutil.copy(demo_folder / "sample2.jpg", root / "trip 2024" / "sample2.jpg")
    shutil.copy(demo_folder / "sample4.jpg", root / "trip_2024:sample4.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    blank = io.BytesIO()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(blank, format="PNG")
    (root / "blank.png").write_bytes(blank.getvalue())
    # "trip 2024/sample2.jpg" and "trip_2024/sample2.jpg" both map to trip_2024:sample2.jpg.
    (root / "trip_2024").mkdir()
    shutil.copy(demo_folder / "sample2.jpg", root / "trip_2024" / "sample2.jpg")
    (root / "notes.txt").write_text("not a photo")
    return root


def _rows(path):
    return {row["image"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_index_a_folder_reports_every_photo_and_resumes(source, tmp_path, capsys):
    store, report = tmp_path / "store", tmp_path / "report.jsonl"

    code = cli.main(
        [
            "index",
            str(source),
            "--collection",
            "album",
            "--store",
            str(store),
            "--workers",
            "2",
            "--report",
            str(report),
        ]
    )

    assert code == 1  # a broken photo and a collision are reported in the exit status
    rows = _rows(report)
    assert set(rows) == {
        "blank.png",
        "broken.jpg",
        "sample1.jpg",
        "trip 2024/sample2.jpg",
        "trip_2024/sample2.jpg",
        "trip_2024:sample4.jpg",
    }
    assert rows["sample1.jpg"]["status"] == "indexed"
    assert rows["trip 2024/sample2.jpg"]["external_image_id"] == "trip_2024:sample2.jpg"
    assert rows["trip 2024/sample2.jpg"]["status"] == "indexed"
    assert rows["trip_2024/sample2.jpg"]["status"] == "refused"
    assert "trip 2024/sample2.jpg" in rows["trip_2024/sample2.jpg"]["error"]["Message"]
    assert rows["broken.jpg"]["status"] == "error"
    assert rows["broken.jpg"]["error"]["Code"] == "InvalidImageFormatException"
    assert rows["blank.png"]["status"] == "no_faces"
    assert rows["blank.png"]["face_ids"] == []
    captured = capsys.readouterr()
    assert "album: 3 photos indexed" in captured.out
    assert "1 errors, 1 refused" in captured.out
    assert "photos/s ETA" in captured.err
    indexed = {face_id for row in rows.values() for face_id in row.get("face_ids", [])}

    with LocalServer(str(store)) as server:
        faces = rekognition_client(server.url).list_faces(CollectionId="album", MaxResults=4096)["Faces"]
    assert {face["FaceId"] for face in faces} == indexed
    assert {face["ExternalImageId"] for face in faces} == {
        "sample1.jpg",
        "trip_2024:sample2.jpg",
        "trip_2024:sample4.jpg",
    }

    # Again: the indexed photos are skipped, the others tried again; no face is added twice.
    cli.main(["index", str(source), "--collection", "album", "--store", str(store), "--report", str(report)])
    again = _rows(report)
    assert {name for name, row in again.items() if row["status"] == "skipped"} == {
        "sample1.jpg",
        "trip 2024/sample2.jpg",
        "trip_2024:sample4.jpg",
    }
    assert "0 photos indexed" in capsys.readouterr().out
    with LocalServer(str(store)) as server:
        assert len(rekognition_client(server.url).list_faces(CollectionId="album")["Faces"]) == len(indexed)


def test_index_an_s3_prefix_into_a_running_server(s3_env, s3_bucket, demo_folder, tmp_path, capsys):
    s3 = boto3.client("s3", endpoint_url=s3_env)
    for name in PHOTOS:
        s3.upload_file(str(demo_folder / name), s3_bucket, f"upload/2024/{name}")
    s3.put_object(Bucket=s3_bucket, Key="elsewhere/sample1.jpg", Body=b"outside the prefix")
    report = tmp_path / "report.jsonl"

    with LocalServer(str(tmp_path / "store")) as server:
        code = cli.main(
            [
                "index",
                f"s3://{s3_bucket}/upload/",
                "--collection",
                "s3photos",
                "--endpoint",
                server.url,
                "--workers",
                "3",
                "--report",
                str(report),
            ]
        )
        described = rekognition_client(server.url).describe_collection(CollectionId="s3photos")

    assert code == 0
    rows = _rows(report)
    assert set(rows) == {f"2024/{name}" for name in PHOTOS}
    assert all(row["status"] == "indexed" for row in rows.values())
    assert rows["2024/sample1.jpg"]["external_image_id"] == "2024:sample1.jpg"
    assert described["FaceCount"] == sum(len(row["face_ids"]) for row in rows.values())
    assert "created collection s3photos" in capsys.readouterr().err


def test_an_unreachable_endpoint_stops_with_a_message(tmp_path, source):
    with pytest.raises(SystemExit, match="Could not connect"):
        cli.main(["index", str(source), "--collection", "x", "--endpoint", "http://127.0.0.1:9"])


def test_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="is not a folder"):
        cli.main(["index", str(tmp_path / "nowhere"), "--collection", "x", "--store", str(tmp_path)])
