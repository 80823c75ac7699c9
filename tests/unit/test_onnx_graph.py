"""Build-time ONNX rewrites: exact on a synthetic Conv + PRelu graph, and they remove what they target."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from facesearch.devtools import onnx_graph


def conv_prelu_model(weights: np.ndarray, slope: np.ndarray) -> onnx.ModelProto:
    channels = weights.shape[0]
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("PRelu", ["c", "s"], ["y"]),
        ],
        "conv_prelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weights.shape[1], 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, 6, 6])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(slope, "s")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_prelu_decomposition_is_exact_for_any_slope():
    rng = np.random.default_rng(7)
    weights = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    # Slopes outside [0, 1] too: the decomposition must not assume a leaky ReLU's range.
    slope = np.array([-1.3, 0.0, 0.25, 1.2], dtype=np.float32).reshape(4, 1, 1)
    model = conv_prelu_model(weights, slope)
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    before = run(model, x)
    assert onnx_graph.decompose_prelu(model) == 1
    onnx.checker.check_model(model)
    assert "PRelu" not in {node.op_type for node in model.graph.node}
    assert "s" not in {tensor.name for tensor in model.graph.initializer}  # the old slope is dropped
    np.testing.assert_allclose(run(model, x), before, rtol=1e-5, atol=1e-5)


def test_flush_zeroes_only_weights_below_the_bound():
    weights = np.ones((2, 1, 3, 3), dtype=np.float32)
    weights[1] = 1e-40  # a dead channel: denormal float32 weights
    weights[0, 0, 0, 0] = np.float32(onnx_graph.FLUSH_BELOW * 10)
    model = conv_prelu_model(weights, np.full((2, 1, 1), 0.25, dtype=np.float32))
    assert onnx_graph.flush_tiny_weights(model) == 9
    flushed = numpy_helper.to_array(model.graph.initializer[0])
    assert (flushed[1] == 0).all()
    assert flushed[0, 0, 0, 0] == np.float32(onnx_graph.FLUSH_BELOW * 10)
    assert (flushed[0].ravel()[1:] == 1).all()
