"""The attribute pack loads only when a request asks for an attribute; its absence is a clean error."""

from __future__ import annotations

import base64
import shutil

import pytest

from facesearch import lazy
from facesearch.devtools import registry
from facesearch.errors import InternalServerError
from facesearch.protocol.context import RequestContext
from facesearch.protocol.dispatch import dispatch
from facesearch.settings import ENV_MODELS_DIR
from facesearch.vision import attributes, expressions
from facesearch.vision.pack import get_pack

CONTEXT = RequestContext(request_id="test", region="us-east-1", account_id="000000000000")


@pytest.fixture
def photo(tmp_path) -> str:
    (path,) = registry.extract(registry.FACE_API, ["package/demo/sample3.jpg"], tmp_path / "photos")
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture
def face_pack_only(model_pack, tmp_path, monkeypatch):
    """A models folder holding the face pack and no attribute pack."""
    shutil.copytree(get_pack().root, tmp_path / "models" / get_pack().root.name)
    monkeypatch.setenv(ENV_MODELS_DIR, str(tmp_path / "models"))
    lazy.reset_all()  # a fresh container: settings and packs read again
    assert not list((tmp_path / "models").glob(f"*/{attributes.ATTRIBUTES_MANIFEST}"))


def test_default_requests_never_load_the_attribute_pack(face_pack_only, photo):
    details = dispatch("DetectFaces", {"Image": {"Bytes": photo}}, CONTEXT)["FaceDetails"]
    assert len(details) == 3
    details = dispatch(
        "DetectFaces", {"Image": {"Bytes": photo}, "Attributes": ["DEFAULT", "BEARD"]}, CONTEXT
    )
    assert len(details["FaceDetails"]) == 3


def test_an_attribute_without_its_pack_is_a_clean_internal_error(face_pack_only, photo):
    with pytest.raises(InternalServerError) as error:
        dispatch("DetectFaces", {"Image": {"Bytes": photo}, "Attributes": ["GENDER"]}, CONTEXT)
    assert "make models" in error.value.message


def test_a_tampered_attribute_model_is_refused(model_pack, tmp_path, monkeypatch, photo):
    models = tmp_path / "models"
    shutil.copytree(model_pack, models)
    pack = attributes.get_attribute_pack()
    damaged = models / pack.root.name / pack.files["eye"].name
    damaged.write_bytes(damaged.read_bytes()[:-1] + bytes([damaged.read_bytes()[-1] ^ 1]))
    monkeypatch.setenv(ENV_MODELS_DIR, str(models))
    lazy.reset_all()  # a fresh container: settings and packs read again
    with pytest.raises(InternalServerError) as error:
        dispatch("DetectFaces", {"Image": {"Bytes": photo}, "Attributes": ["ALL"]}, CONTEXT)
    assert "sha256" in error.value.message


def test_mouth_open_needs_no_attribute_pack(face_pack_only, photo):
    """MouthOpen is landmark geometry: answered from the face pack alone, the attribute pack never loaded."""
    details = dispatch("DetectFaces", {"Image": {"Bytes": photo}, "Attributes": ["MOUTH_OPEN"]}, CONTEXT)[
        "FaceDetails"
    ]
    assert len(details) == 3
    assert all(
        set(d) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality", "MouthOpen"} for d in details
    )
    assert all(isinstance(d["MouthOpen"]["Value"], bool) for d in details)


def test_only_requests_for_emotions_or_smile_load_the_expression_net(model_pack, photo, monkeypatch):
    loaded = []

    class Recording(expressions.ExpressionModel):
        def __init__(self, *args, **kwargs) -> None:
            loaded.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(expressions, "ExpressionModel", Recording)
    lazy.reset_all()  # a fresh container: no model loaded yet
    for asked in ([], ["DEFAULT"], ["GENDER", "AGE_RANGE", "EYES_OPEN"]):
        dispatch("DetectFaces", {"Image": {"Bytes": photo}, "Attributes": asked}, CONTEXT)
    assert loaded == []
    details = dispatch("DetectFaces", {"Image": {"Bytes": photo}, "Attributes": ["SMILE"]}, CONTEXT)
    assert len(loaded) == 1 and all("Smile" in d for d in details["FaceDetails"])
    dispatch("DetectFaces", {"Image": {"Bytes": photo}, "Attributes": ["ALL"]}, CONTEXT)
    assert len(loaded) == 1  # created once per process
