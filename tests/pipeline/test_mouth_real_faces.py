"""MouthOpen on the real landmarks of the 22 hand-labelled faces of the six face-api demo photos."""

from __future__ import annotations

import json

import numpy as np

from facesearch.devtools import registry
from facesearch.settings import REPO_ROOT
from facesearch.vision.attributes import MOUTH_OPEN
from facesearch.vision.pipeline import analyze

LABELS = REPO_ROOT / "bench" / "labels" / "demo_faces.json"
# A detected face is the labelled one when their box centres are this close (image ratios), as in the bench.
MATCH_DISTANCE = 0.05


def test_mouth_open_agrees_with_hand_labels_of_the_demo_faces(model_pack):
    """These labels were written by another engineer before any mouth measure existed; bench/attributes.py
    measured 18 of 22 right with the shipped threshold (fitted on other photos; 19 before landmarks came
    from full-size pixels), so 17 is the floor: one face of slack for last-bit differences between CPUs."""
    labels = json.loads(LABELS.read_text())["faces"]
    members = [f"package/demo/{name}" for name in sorted(labels)]
    right, total = 0, 0
    for photo in registry.extract(registry.FACE_API, members, REPO_ROOT / "build" / "cache" / "samples"):
        faces = analyze(photo.read_bytes(), embed=False, attributes=frozenset({MOUTH_OPEN})).faces
        centres = np.array(
            [
                [
                    f.bounding_box.left + f.bounding_box.width / 2,
                    f.bounding_box.top + f.bounding_box.height / 2,
                ]
                for f in faces
            ]
        )
        for entry in labels[photo.name]:
            distances = np.linalg.norm(centres - np.asarray(entry["center"]), axis=1)
            assert distances.min() <= MATCH_DISTANCE, f"{photo.name}: no face at {entry['center']}"
            answer = faces[int(np.argmin(distances))].attributes
            assert answer is not None and answer.mouth_open is not None
            assert answer.age_range is None and answer.gender is None  # only what was asked for
            assert 50.0 <= answer.mouth_open.confidence <= 100.0
            if entry["mouth_open"] is not None:
                total += 1
                right += answer.mouth_open.value == entry["mouth_open"]
    assert total == 22
    assert right >= 17
