"""``facesearch search``: the largest face (Rekognition's SearchFacesByImage) or every face (--all-faces)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from facesearch.devtools import cli
from facesearch.devtools.registry import FACE_API, extract

# sample3's largest face is in sample1 (devtools.demo); Rekognition's default FaceMatchThreshold.
DEFAULT_THRESHOLD = 80.0


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    paths = extract(FACE_API, ["package/demo/sample1.jpg", "package/demo/sample3.jpg"], folder)
    return {path.name: path for path in paths}


@pytest.fixture(scope="module")
def store(photos, tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    source = tmp_path_factory.mktemp("indexed")
    (source / "sample1.jpg").write_bytes(photos["sample1.jpg"].read_bytes())
    assert cli.main(["index", str(source), "--collection", "album", "--store", str(store)]) == 0
    return store


def _search(capsys, *args) -> list[dict]:
    assert cli.main(["search", *args, "--collection", "album", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["Faces"]


def test_all_faces_searches_each_detected_face(store, photos, capsys):
    entries = _search(capsys, str(photos["sample3.jpg"]), "--store", str(store), "--all-faces")

    assert len(entries) >= 2
    matched = [entry for entry in entries if entry.get("FaceMatches")]
    assert len(matched) == 1, entries  # one person of sample3 is in sample1
    (entry,) = matched
    assert entry["FaceMatches"][0]["Face"]["ExternalImageId"] == "sample1.jpg"
    assert entry["FaceMatches"][0]["Similarity"] >= DEFAULT_THRESHOLD
    # The searched face is the detected one it was cropped for, in the photo's coordinates.
    searched, detected = entry["SearchedFaceBoundingBox"], entry["BoundingBox"]
    center_x, center_y = searched["Left"] + searched["Width"] / 2, searched["Top"] + searched["Height"] / 2
    assert detected["Left"] < center_x < detected["Left"] + detected["Width"]
    assert detected["Top"] < center_y < detected["Top"] + detected["Height"]


def test_without_all_faces_the_largest_face_is_searched(store, photos, capsys):
    (entry,) = _search(capsys, str(photos["sample3.jpg"]), "--store", str(store))

    assert entry["FaceMatches"][0]["Face"]["ExternalImageId"] == "sample1.jpg"


def test_human_readable_output(store, photos, capsys):
    assert (
        cli.main(
            [
                "search",
                str(photos["sample3.jpg"]),
                "--collection",
                "album",
                "--store",
                str(store),
                "--all-faces",
            ]
        )
        == 0
    )

    out = capsys.readouterr().out
    assert "face 1 at left" in out
    assert "sample1.jpg" in out


def test_a_photo_without_faces(store, tmp_path, capsys):
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(blank, format="JPEG")

    assert (
        cli.main(["search", str(blank), "--collection", "album", "--store", str(store), "--all-faces"]) == 0
    )
    assert "no face detected in the photo" in capsys.readouterr().out
    assert cli.main(["search", str(blank), "--collection", "album", "--store", str(store)]) == 1
    assert "InvalidParameterException" in capsys.readouterr().err
