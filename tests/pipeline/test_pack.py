"""Model packs: the build's output, checksums, several packs side by side, the Similarity map."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil

import numpy as np
import onnx
import pytest

from facesearch import errors
from facesearch.settings import ENV_FACE_MODEL_VERSION, ENV_MODELS_DIR, REPO_ROOT
from facesearch.vision.pack import MANIFEST_NAME, ModelPack, available_versions, get_pack, sha256_file

BUILD_SCRIPT = REPO_ROOT / "layers" / "models" / "build_pack.py"


def load_build_script():
    spec = importlib.util.spec_from_file_location("build_pack", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def two_packs(model_pack, tmp_path, monkeypatch):
    """A models root holding the built pack and a later copy of it under another FaceModelVersion."""
    (original,) = [p for p in model_pack.iterdir() if (p / MANIFEST_NAME).exists()]
    shutil.copytree(original, tmp_path / original.name)
    second = tmp_path / "second-pack"
    shutil.copytree(original, second)
    manifest = json.loads((second / MANIFEST_NAME).read_text())
    manifest.update(face_model_version="faceplugin-fr-int8-2.0", released="2099-01-01")
    manifest["similarity"]["c50"] = 0.5
    (second / MANIFEST_NAME).write_text(json.dumps(manifest))
    monkeypatch.setenv(ENV_MODELS_DIR, str(tmp_path))
    return tmp_path, json.loads((original / MANIFEST_NAME).read_text())["face_model_version"]


def test_built_pack_manifest_describes_its_files_and_source(model_pack):
    pack = get_pack()
    manifest = json.loads((pack.root / MANIFEST_NAME).read_text())
    assert manifest["face_model_version"] == pack.face_model_version == "1.0"
    assert manifest["source"] == {
        "package": "faceplugin-face-recognition-js",
        "version": "0.0.1",
        "tarball_sha256": "7ea06031d9a3f83753254fcff60506a07b81b46fc84d4ee024cd041f260ec1ba",
        "license": "MIT",
    }
    for entry in manifest["models"].values():
        assert sha256_file(pack.root / entry["file"]) == entry["sha256"]
    assert pack.dim == 512
    assert manifest["verification"]["min_embedding_cosine"] >= 0.995
    assert manifest["verification"]["min_box_iou"] >= 0.95


def test_built_models_store_int8_weights_behind_dequantize_nodes(model_pack):
    pack = get_pack()
    model = onnx.load(str(pack.embed_file))
    dequantize = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    int8 = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    assert len(dequantize) >= 30
    assert {n.input[0] for n in dequantize} <= int8
    produced = {n.output[0] for n in dequantize}
    for node in model.graph.node:
        if node.op_type == "Conv":
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            # Pointwise and full convolutions read int8 weights; depthwise ones stay fp32 by design.
            assert (node.input[1] in produced) == (group == 1)


def test_build_is_idempotent_and_leaves_a_verified_pack_untouched(model_pack, capsys):
    root = model_pack / "faceplugin-fr-int8-1.0"
    before = {f.name: f.stat().st_mtime_ns for f in root.iterdir()}
    assert load_build_script().main(["--out", str(model_pack)]) == 0
    assert "is up to date" in capsys.readouterr().err
    assert {f.name: f.stat().st_mtime_ns for f in root.iterdir()} == before


def test_tampered_model_fails_its_checksum(model_pack, tmp_path):
    copy = tmp_path / "pack"
    shutil.copytree(model_pack / "faceplugin-fr-int8-1.0", copy)
    target = copy / json.loads((copy / MANIFEST_NAME).read_text())["models"]["embed"]["file"]
    target.write_bytes(target.read_bytes()[:-1] + b"\0")
    with pytest.raises(errors.InternalServerError) as caught:
        ModelPack.load(copy)
    assert caught.value.code == "InternalServerError"
    assert (
        f"{target.name} sha256" in caught.value.message
        and "differs from its manifest" in caught.value.message
    )


def test_several_packs_coexist_and_the_newest_is_the_default(two_packs, monkeypatch):
    _, first = two_packs
    assert available_versions() == ["faceplugin-fr-int8-2.0", first]
    assert get_pack().face_model_version == "faceplugin-fr-int8-2.0"
    assert get_pack(first).face_model_version == first
    assert get_pack(first).similarity_c50 != get_pack("faceplugin-fr-int8-2.0").similarity_c50


def test_settings_pick_the_default_pack(two_packs, monkeypatch):
    _, first = two_packs
    monkeypatch.setenv(ENV_FACE_MODEL_VERSION, first)
    assert get_pack().face_model_version == first


def test_unknown_version_is_an_internal_error_naming_what_is_installed(two_packs):
    root, first = two_packs
    with pytest.raises(errors.InternalServerError) as caught:
        get_pack("no-such-model")
    assert caught.value.code == "InternalServerError"
    assert caught.value.message == (
        f"face model version 'no-such-model' is not installed under {root} "
        f"(installed: faceplugin-fr-int8-2.0, {first})"
    )


def test_empty_models_dir_is_an_internal_error(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_MODELS_DIR, str(tmp_path))
    with pytest.raises(errors.InternalServerError) as caught:
        get_pack()
    assert caught.value.message == f"no model pack found under {tmp_path}; build one with `make models`"


def test_similarity_map_is_calibrated_monotonic_and_invertible(model_pack):
    pack = get_pack()
    c50, k = pack.similarity_c50, pack.similarity_k
    assert pack.similarity(c50) == pytest.approx(50.0)
    assert pack.similarity(c50 + math.log(4) / k) == pytest.approx(80.0)
    cosines = np.linspace(-1, 1, 201)
    values = pack.similarity(cosines)
    assert isinstance(values, np.ndarray) and np.all(np.diff(values) > 0)
    assert values.min() >= 0.0 and values.max() <= 100.0
    for level in (1.0, 50.0, 80.0, 99.0):
        assert pack.similarity(pack.cosine_for_similarity(level)) == pytest.approx(level)
    assert pack.cosine_for_similarity(0.0) == -1.0
    assert pack.cosine_for_similarity(100.0) == 1.0


def test_similarity_constants_come_from_the_committed_fit(model_pack):
    fit = json.loads((REPO_ROOT / "layers" / "models" / "similarity.json").read_text())
    pack = get_pack()
    assert (pack.similarity_c50, pack.similarity_k) == (fit["c50"], fit["k"])


def test_the_default_and_its_name_share_one_pack_and_one_set_of_sessions(model_pack):
    from facesearch.vision.pipeline import get_pipeline

    version = get_pack().face_model_version
    assert get_pack(version) is get_pack()
    assert get_pipeline(version) is get_pipeline()


def test_a_verification_miss_fails_the_build_and_installs_nothing(model_pack, tmp_path, monkeypatch):
    build = load_build_script()
    # A bar no quantized model can meet: the build must refuse to install the pack.
    monkeypatch.setattr(build, "MIN_EMBEDDING_COSINE", 1.0001)
    out = tmp_path / "models"
    with pytest.raises(SystemExit) as caught:
        build.main(["--out", str(out), "--cache", str(tmp_path / "cache")])
    assert "INT8 verification failed" in str(caught.value)
    assert "embedding cosine" in str(caught.value)
    assert list(out.iterdir()) == []
