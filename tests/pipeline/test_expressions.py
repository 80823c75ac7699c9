"""The expression net on real faces: well-formed Emotions, and Smile where it is plain to see."""

from __future__ import annotations

import json

import pytest

from facesearch.devtools import registry
from facesearch.protocol.model import service_model
from facesearch.settings import REPO_ROOT
from facesearch.vision.attributes import EMOTIONS, SMILE, get_attribute_pack
from facesearch.vision.pipeline import analyze

WANTED = frozenset({EMOTIONS, SMILE})


@pytest.fixture(scope="module")
def demo(model_pack) -> dict[int, bytes]:
    members = [f"package/demo/sample{n}.jpg" for n in (1, 2)]
    paths = registry.extract(registry.FACE_API, members, REPO_ROOT / "build" / "cache" / "samples")
    return {n: p.read_bytes() for n, p in zip((1, 2), paths, strict=True)}


def test_every_face_gets_a_well_formed_emotions_list(demo):
    names = set(service_model().shape_for("EmotionName").enum) - {"CONFUSED", "UNKNOWN"}
    faces = [f for data in demo.values() for f in analyze(data, embed=False, attributes=WANTED).faces]
    assert len(faces) == 6
    for face in faces:
        emotions = face.attributes.emotions
        assert {name for name, _ in emotions} == names  # each of the net's 7 classes once
        assert all(0.0 <= confidence <= 100.0 for _, confidence in emotions)
        assert sum(confidence for _, confidence in emotions) == pytest.approx(100.0, abs=1e-3)
        assert [c for _, c in emotions] == sorted((c for _, c in emotions), reverse=True)
        assert 50.0 <= face.attributes.smile.confidence <= 100.0
        # Smile and Emotions come from the same run: a smile is HAPPY holding at least half.
        assert face.attributes.smile.value == (dict(emotions)["HAPPY"] >= 50.0)


def test_a_laughing_face_is_happy_and_faces_without_a_smile_are_not(demo):
    # Seen by eye: in demo photo 1 the largest face (right) laughs with her mouth open; in photo 2 none of
    # the three women, all looking down, smiles.
    laughing = analyze(demo[1], embed=False, max_faces=1, attributes=WANTED).faces[0]
    assert laughing.bounding_box.left > 0.6
    assert laughing.attributes.emotions[0][0] == "HAPPY" and laughing.attributes.smile.value
    serious = analyze(demo[2], embed=False, attributes=WANTED).faces
    assert len(serious) == 3 and not any(f.attributes.smile.value for f in serious)


def test_only_the_asked_members_are_measured(demo):
    (face, *_) = analyze(demo[1], embed=False, attributes=frozenset({EMOTIONS})).faces
    assert face.attributes.emotions and face.attributes.smile is None and face.attributes.gender is None
    (face, *_) = analyze(demo[1], embed=False, attributes=frozenset({SMILE})).faces
    assert face.attributes.smile and face.attributes.emotions is None


def test_the_pack_manifest_records_the_expression_nets_source_and_licence(model_pack):
    pack = get_attribute_pack()
    entry = json.loads((pack.root / "attributes.json").read_text())["models"]["expression"]
    assert entry["license"] == "MIT"
    assert entry["source"]["package"] == registry.FACE_API.name
    assert entry["source"]["version"] == registry.FACE_API.version
    assert "undocumented" in entry["source"]["training_data"]
    assert pack.preprocessing["expression"]["labels"][1] == "happy"
