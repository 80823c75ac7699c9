"""face-api's FaceExpressionNet (tfjs weights) rebuilt as an ONNX graph with onnx.helper, layer for layer.

The architecture is face-api's own (npm ``@vladmandic/face-api`` 1.7.15, src/faceFeatureExtractor and
src/faceExpressionNet): four dense blocks of four convolutions (the first a plain 3x3 conv, the rest
depthwise-separable; each block's first conv has stride 2, every conv "same" padding, each conv's input
the ReLU of the sum of the block's earlier outputs), a 7x7 average pool, one fully connected layer
(256 -> 7) and a softmax. Its input preprocessing is in the graph too: RGB pixels 0..255, minus face-api's
mean RGB, over 255. The 7 outputs are FACE_EXPRESSION_LABELS, in face-api's order.

The weights come from ``model/face_expression_model-weights_manifest.json`` + ``.bin``: tensors laid end to
end in manifest order, uint8-quantized ones dequantized as ``q * scale + min`` (tfjs-core io.decodeWeights).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MANIFEST_MEMBER = "package/model/face_expression_model-weights_manifest.json"
WEIGHTS_MEMBER = "package/model/face_expression_model.bin"
# src/faceExpressionNet/FaceExpressions.ts
LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
# src/faceFeatureExtractor/FaceFeatureExtractor.ts: input size, mean RGB, then divided by 255.
INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)
PIXEL_SCALE = 255.0
BLOCKS = (("dense0", 3, 32), ("dense1", 32, 64), ("dense2", 64, 128), ("dense3", 128, 256))
POOL = 7  # tf.avgPool(out, [7, 7], [2, 2], 'valid') on the 7x7 map: one global mean
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"
QUANTIZED_DTYPES = {"uint8": np.uint8, "uint16": np.uint16}
OPSET = 17


def read_weights(manifest_path: Path, weights_path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a tfjs weights manifest, float32, dequantized, by name."""
    (group,) = json.loads(manifest_path.read_text())
    data = weights_path.read_bytes()
    offset, out = 0, {}
    for spec in group["weights"]:
        if spec["dtype"] != "float32":
            raise ValueError(f"{spec['name']}: dtype {spec['dtype']} is not float32")
        count = int(np.prod(spec["shape"], dtype=np.int64))
        quant = spec.get("quantization")
        if quant:
            if "min" not in quant:  # float16 quantization or a scale without min: not in this model
                raise ValueError(f"{spec['name']}: unsupported quantization {quant}")
            stored = np.dtype(QUANTIZED_DTYPES[quant["dtype"]])
            raw = np.frombuffer(data, stored, count, offset)
            values = (raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])).astype(
                np.float32
            )
        else:
            stored = np.dtype(np.float32)
            values = np.frombuffer(data, stored, count, offset).copy()
        offset += count * stored.itemsize
        out[spec["name"]] = values.reshape(spec["shape"])
    if offset != len(data):
        raise ValueError(f"{weights_path.name}: {len(data) - offset} bytes left after the manifest's tensors")
    return out


def same_pads(size: int, kernel: int, stride: int) -> list[int]:
    """TensorFlow's 'same' padding (the odd pixel at the end) as ONNX pads for a square map."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return [total // 2, total // 2, total - total // 2, total - total // 2]


class _Graph:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.used: set[str] = set()
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def weight(self, key: str, value: np.ndarray) -> str:
        self.used.add(key)
        return self.const(key.replace("/", "_"), value)

    def op(self, kind: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(kind)
        self.nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, prefix: str, size: int, stride: int, first: bool) -> str:
        """One conv of a dense block: plain 3x3 (the network's first) or depthwise-separable, plus bias."""
        w = self.weights
        pads = same_pads(size, 3, stride)
        bias = self.weight(f"{prefix}/bias", w[f"{prefix}/bias"])
        if first:  # HWIO -> OIHW
            filters = self.weight(f"{prefix}/filters", w[f"{prefix}/filters"].transpose(3, 2, 0, 1))
            return self.op("Conv", [x, filters, bias], kernel_shape=[3, 3], strides=[stride] * 2, pads=pads)
        depthwise = w[f"{prefix}/depthwise_filter"]  # [3, 3, C, 1] -> [C, 1, 3, 3]
        channels = depthwise.shape[2]
        dw = self.weight(f"{prefix}/depthwise_filter", depthwise.transpose(2, 3, 0, 1))
        x = self.op("Conv", [x, dw], kernel_shape=[3, 3], strides=[stride] * 2, pads=pads, group=channels)
        pw = self.weight(f"{prefix}/pointwise_filter", w[f"{prefix}/pointwise_filter"].transpose(3, 2, 0, 1))
        return self.op("Conv", [x, pw, bias], kernel_shape=[1, 1])

    def dense_block(self, x: str, name: str, size: int, first: bool) -> str:
        """denseBlock4 (src/faceFeatureExtractor/denseBlock.ts), scale-down: stride 2 in conv0."""
        out1 = self.op("Relu", [self.conv(x, f"{name}/conv0", size, 2, first)])
        size = -(-size // 2)
        outs = [out1]
        for i in (1, 2, 3):
            inp = outs[0] if i == 1 else self.op("Relu", [self._sum(outs)])
            outs.append(self.conv(inp, f"{name}/conv{i}", size, 1, False))
        return self.op("Relu", [self._sum(outs)])

    def _sum(self, terms: list[str]) -> str:
        return terms[0] if len(terms) == 1 else self.op("Sum", terms)


def build_model(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The ONNX model: NHWC float RGB 0..255 [N, 112, 112, 3] -> softmax [N, 7]."""
    g = _Graph(weights)
    mean = g.const("mean_rgb", np.asarray(MEAN_RGB, np.float32))
    scale = g.const("inverse_pixel_scale", np.asarray([1.0 / PIXEL_SCALE], np.float32))
    x = g.op("Mul", [g.op("Sub", [INPUT_NAME, mean]), scale])
    x = g.op("Transpose", [x], perm=[0, 3, 1, 2])
    size = INPUT_SIZE
    for index, (name, _, _) in enumerate(BLOCKS):
        x = g.dense_block(x, name, size, index == 0)
        size = -(-size // 2)
    if size != POOL:
        raise ValueError(f"feature map {size}x{size}, expected {POOL}x{POOL}")
    x = g.op("Flatten", [g.op("AveragePool", [x], kernel_shape=[POOL, POOL], strides=[2, 2])])
    fc = g.op(
        "Gemm", [x, g.weight("fc/weights", weights["fc/weights"]), g.weight("fc/bias", weights["fc/bias"])]
    )
    g.nodes.append(helper.make_node("Softmax", [fc], [OUTPUT_NAME], axis=1))
    unused = set(weights) - g.used
    if unused:
        raise ValueError(f"weights the architecture does not use: {sorted(unused)}")
    for name, channels_in, channels_out in BLOCKS:
        first = weights[f"{name}/conv0/" + ("filters" if name == "dense0" else "pointwise_filter")]
        if first.shape[-2:] != (channels_in, channels_out):
            raise ValueError(f"{name}: weights {first.shape} do not match {channels_in} -> {channels_out}")
    graph = helper.make_graph(
        g.nodes,
        "face_api_face_expression_net",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", INPUT_SIZE, INPUT_SIZE, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", len(LABELS)])],
        g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facesearch"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def convert(manifest_path: Path, weights_path: Path, out: Path) -> Path:
    """Write the ONNX model of the tfjs weights at ``out``."""
    onnx.save(build_model(read_weights(manifest_path, weights_path)), str(out))
    return out
