"""Emotions and Smile without the model pack: face-api's crop and resize, the answer, the converter."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import onnxruntime as ort
import pytest

from facesearch.protocol.model import service_model
from facesearch.settings import REPO_ROOT
from facesearch.vision import expressions

CONVERTER = REPO_ROOT / "layers" / "models" / "expression_net.py"


@pytest.fixture(scope="module")
def expression_net():
    spec = importlib.util.spec_from_file_location("expression_net", CONVERTER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["expression_net"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["expression_net"]


def test_a_crop_of_the_input_size_is_passed_through_unchanged():
    crop = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    assert np.array_equal(expressions.square_resize(crop, 112), crop.astype(np.float32))


def test_square_padding_puts_the_odd_row_after_the_crop_as_javascript_rounds_halves_up():
    # padToSquare appends Math.round(1 / 2) = 1 row and prepends 0 (Python's round(0.5) would give 0).
    crop = np.full((2, 3, 3), 200, dtype=np.uint8)
    out = expressions.square_resize(crop, 3)
    assert np.array_equal(out[:2], crop.astype(np.float32))
    assert not out[2].any()
    # Three rows of padding: one before, two after.
    tall = np.full((5, 2, 3), 90, dtype=np.uint8)
    out = expressions.square_resize(tall, 5)
    assert not out[:, 0].any() and (out[:, 1:3] == 90).all() and not out[:, 3:].any()


def test_downscaling_samples_without_half_pixel_centres():
    # tf.image.resizeBilinear(alignCorners=false, halfPixelCenters=false): output x reads input x * scale.
    ramp = np.tile(np.arange(8, dtype=np.uint8)[None, :, None], (8, 1, 3))
    out = expressions.square_resize(ramp, 4)
    assert np.array_equal(out[0, :, 0], [0.0, 2.0, 4.0, 6.0])


def test_the_face_box_is_the_landmark_box_grown_by_a_fifth_clipped_then_floored():
    points = np.array([[100.0, 50.0], [200.0, 150.0]])
    assert expressions.face_box(points, 1000, 1000) == (90, 40, 210, 160)
    assert expressions.face_box(points, 205, 155) == (90, 40, 205, 155)  # clipped at the borders
    assert expressions.face_box(points - 95, 1000, 1000) == (0, 0, 115, 65)


def test_emotions_are_named_from_the_service_model_most_confident_first():
    probabilities = np.array([0.1, 0.6, 0.05, 0.05, 0.1, 0.02, 0.08])
    answer = expressions.emotions(probabilities, list(expressions.EMOTION_OF_CLASS))
    enum = set(service_model().shape_for("EmotionName").enum)
    assert {name for name, _ in answer} == enum - {"CONFUSED", "UNKNOWN"}
    assert answer[0] == ("HAPPY", pytest.approx(60.0))
    assert [c for _, c in answer] == sorted((c for _, c in answer), reverse=True)
    assert sum(c for _, c in answer) == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("p_happy", "value", "confidence"),
    [(0.5, True, 50.0), (1.0, True, 100.0), (0.75, True, 75.0), (0.0, False, 100.0), (0.25, False, 75.0)],
)
def test_smile_confidence_is_50_at_the_threshold_and_100_at_either_end(p_happy, value, confidence):
    assert expressions.smile(p_happy, 0.5) == (value, pytest.approx(confidence))


def _weights(expression_net, rng) -> dict[str, np.ndarray]:
    weights = {}
    for name, channels_in, channels_out in expression_net.BLOCKS:
        for i in range(4):
            prefix = f"{name}/conv{i}"
            c_in = channels_in if i == 0 else channels_out
            if name == "dense0" and i == 0:
                weights[f"{prefix}/filters"] = rng.normal(0, 0.1, (3, 3, c_in, channels_out))
            else:
                weights[f"{prefix}/depthwise_filter"] = rng.normal(0, 0.1, (3, 3, c_in, 1))
                weights[f"{prefix}/pointwise_filter"] = rng.normal(0, 0.1, (1, 1, c_in, channels_out))
            weights[f"{prefix}/bias"] = rng.normal(0, 0.1, channels_out)
    weights["fc/weights"] = rng.normal(0, 0.1, (256, 7))
    weights["fc/bias"] = rng.normal(0, 0.1, 7)
    return {k: v.astype(np.float32) for k, v in weights.items()}


def test_the_converted_graph_takes_a_112_pixel_face_and_answers_7_probabilities(expression_net):
    model = expression_net.build_model(_weights(expression_net, np.random.default_rng(0)))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(1).uniform(0, 255, (2, 112, 112, 3)).astype(np.float32)
    (out,) = session.run(None, {expression_net.INPUT_NAME: image})
    assert out.shape == (2, 7) and np.allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_a_weight_the_architecture_does_not_use_is_refused(expression_net):
    weights = _weights(expression_net, np.random.default_rng(0))
    weights["dense4/conv0/bias"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="does not use"):
        expression_net.build_model(weights)


def test_quantized_weights_are_dequantized_as_q_times_scale_plus_min(expression_net, tmp_path):
    spec = [
        {
            "name": "a",
            "shape": [2],
            "dtype": "float32",
            "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1},
        },
        {"name": "b", "shape": [1], "dtype": "float32"},
    ]
    (tmp_path / "m.json").write_text(json.dumps([{"paths": ["w.bin"], "weights": spec}]))
    (tmp_path / "w.bin").write_bytes(bytes([0, 4]) + np.float32(2.5).tobytes())
    weights = expression_net.read_weights(tmp_path / "m.json", tmp_path / "w.bin")
    assert weights["a"].tolist() == [-1.0, 1.0] and weights["b"].tolist() == [2.5]
    (tmp_path / "w.bin").write_bytes(bytes([0, 4]) + np.float32(2.5).tobytes() + b"\0")
    with pytest.raises(ValueError, match="bytes left"):
        expression_net.read_weights(tmp_path / "m.json", tmp_path / "w.bin")


def test_tensorflow_same_padding_puts_the_odd_pixel_at_the_end(expression_net):
    assert expression_net.same_pads(112, 3, 2) == [0, 0, 1, 1]
    assert expression_net.same_pads(56, 3, 1) == [1, 1, 1, 1]
