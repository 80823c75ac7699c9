"""Build-time ONNX rewrites that keep a model's answers and make ONNX Runtime's CPU kernels fast on it."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

# Weights below this magnitude are set to exactly zero. The faceplugin embedder has dead channels whose
# weights and biases decayed to 1e-45..1e-12 during training; their products are denormal floats, which
# x86 cores handle in microcode, ~100x slower per operation (a 1x1 Conv of the embedder took 1.1-1.5 ms
# inside the model vs 0.13 ms alone; with denormal input alone, 20.9 ms). Trained weights that matter are
# >= 1e-6 here; at 1e-12 and above no denormal is left in any activation on random and real faces, and the
# embeddings are unchanged (cosine 1.0000000 to the unflushed model).
FLUSH_BELOW = 1e-12


def flush_tiny_weights(model: onnx.ModelProto) -> int:
    """Set every float32 initializer value with magnitude under ``FLUSH_BELOW`` to zero; how many were."""
    flushed = 0
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(tensor)
        tiny = (values != 0) & (np.abs(values) < FLUSH_BELOW)
        if tiny.any():
            flushed += int(tiny.sum())
            model.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(np.where(tiny, np.float32(0), values).astype(np.float32), tensor.name)
            )
    return flushed


def decompose_prelu(model: onnx.ModelProto) -> int:
    """Rewrite each PRelu with a constant per-channel slope s as Relu(x) * (1 - s) + x * s; how many.

    Exact for every s (where x > 0: x - x s + x s; elsewhere: 0 + x s). ONNX Runtime has no blocked-layout
    (NCHWc) PRelu kernel, so at ENABLE_ALL each PRelu forced a layout reorder on both sides and ran its own
    slow broadcast loop; Relu, Mul and Add stay in the blocked layout and fuse into the convolutions.
    """
    constants = {tensor.name: tensor for tensor in model.graph.initializer}
    nodes: list[onnx.NodeProto] = []
    rewritten = 0
    for node in model.graph.node:
        if node.op_type != "PRelu" or node.input[1] not in constants:
            nodes.append(node)
            continue
        x, slope_name = node.input
        (y,) = node.output
        slope = numpy_helper.to_array(constants[slope_name]).astype(np.float32)
        # A slope of shape (C,) or (C, 1, 1) broadcasts per channel of (N, C, H, W) as (1, C, 1, 1).
        slope = slope.reshape(1, -1, 1, 1) if slope.size > 1 else slope.reshape(())
        stem = node.name or y
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(slope, f"{stem}_slope"),
                numpy_helper.from_array((1.0 - slope).astype(np.float32), f"{stem}_one_minus_slope"),
            ]
        )
        nodes += [
            helper.make_node("Relu", [x], [f"{stem}_relu"]),
            helper.make_node("Mul", [f"{stem}_relu", f"{stem}_one_minus_slope"], [f"{stem}_positive"]),
            helper.make_node("Mul", [x, f"{stem}_slope"], [f"{stem}_sloped"]),
            helper.make_node("Add", [f"{stem}_positive", f"{stem}_sloped"], [y], name=stem),
        ]
        rewritten += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in model.graph.node for name in node.input}
    kept = [tensor for tensor in model.graph.initializer if tensor.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return rewritten
