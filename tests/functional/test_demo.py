"""``facesearch demo``: from an empty store, boto3 indexes the demo photos and finds sample3's face."""

from __future__ import annotations

import argparse
import json

from facesearch.devtools import demo


def test_demo_prints_the_search_response_and_a_summary(tmp_path, monkeypatch, capsys):
    for name, value in demo.QUIET_ENV.items():
        monkeypatch.setenv(name, value)

    status = demo.run(argparse.Namespace(store=tmp_path / "store"))

    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0].startswith("facesearch serve: http://127.0.0.1:")
    indexed = [line for line in lines if line.startswith("IndexFaces ")]
    assert [line.split()[1].rstrip(":") for line in indexed] == demo.INDEXED_PHOTOS
    start = lines.index(f"SearchFacesByImage {demo.QUERY_PHOTO}:")
    response = json.loads("\n".join(lines[start + 1 : -1]))
    top = response["FaceMatches"][0]
    assert top["Face"]["ExternalImageId"] == "sample1.jpg"
    assert top["Similarity"] >= 80
    assert lines[-1] == demo.summary(response)
    assert "sample1.jpg (similarity" in lines[-1]


def test_summary_without_matches_says_so():
    assert demo.summary({"FaceMatches": []}) == (
        f"{demo.QUERY_PHOTO}: its largest face matches no indexed face at the default threshold."
    )
