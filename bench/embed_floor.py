"""The embedder at its floor: graph optimisation levels and static INT8, timed and scored; last line is JSON.

    .venv/bin/python bench/embed_floor.py --manifest ../shared/facedata/dev/manifest.json [--repeat 200]

Variants of the 512-D embedder, each timed on one aligned 112x112 face (1 intra-op thread, median):
  fp32 original; the pack's weight-only INT8 (dequantized at load) at every ORT graph optimisation level;
  static INT8 QDQ (per-channel weights, activations calibrated on the faces of the face-api demo photos
  and their mirror images, never the dev set) with MinMax and Percentile calibration.
Each variant embeds every dev-set image's aligned largest face; reported: its cosine to the pack's
embedder, and the dev accuracy (10-fold, as bench/accuracy.py). The floor: the model's multiply-adds
(from the ONNX graph's inferred shapes) at this core's single-thread fp32 rate (a numpy matmul).
"""

from __future__ import annotations

import os

# One thread for BLAS too: the floor is per core.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import shape_inference, version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from facesearch.devtools import registry
from facesearch.settings import REPO_ROOT, get_settings
from facesearch.vision.decode import Picture
from facesearch.vision.models import DISABLE_QUANT_QDQ
from facesearch.vision.pack import ModelPack, get_pack
from facesearch.vision.pipeline import FacePipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import ten_fold_accuracy

FP32_PACK = REPO_ROOT / "build" / "cache" / "packs-fp32" / "faceplugin-fr-fp32-1.0"
DEMO = [f"package/demo/sample{i}.jpg" for i in range(1, 7)]
QDQ_OPSET = 13
LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session(path: Path, level: str = "all", dequantize_at_load: bool = True) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = LEVELS[level]
    if dequantize_at_load:
        options.add_session_config_entry(*DISABLE_QUANT_QDQ)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def to_input(face: np.ndarray, pack: ModelPack) -> np.ndarray:
    c = pack.embed
    pixels = face[:, :, ::-1] if c.channel_order == "BGR" else face
    x = ((pixels.astype(np.float32) - c.mean) / c.scale).transpose(2, 0, 1)[np.newaxis]
    return np.ascontiguousarray(x)


def embed_all(sess: ort.InferenceSession, inputs: list[np.ndarray]) -> np.ndarray:
    name = sess.get_inputs()[0].name
    out = np.stack([sess.run(None, {name: x})[0][0] for x in inputs]).astype(np.float64)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def median_ms(sess: ort.InferenceSession, x: np.ndarray, repeat: int) -> float:
    name = sess.get_inputs()[0].name
    for _ in range(10):
        sess.run(None, {name: x})
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 3)


def multiply_adds(path: Path) -> int:
    """Conv and Gemm/MatMul multiply-adds of one inference, from the inferred shapes."""
    model = shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)
    }
    shapes |= {i.name: list(i.dims) for i in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]
            weight = shapes[node.input[1]]  # (out_c, in_c / group, kh, kw)
            total += int(np.prod(out)) * int(np.prod(weight[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            total += int(np.prod(a)) * int(b[-1] if node.op_type == "MatMul" else max(b))
    return total


def core_gflops(seconds: float = 1.0) -> float:
    """This core's fp32 multiply-add rate through numpy's BLAS, in GFLOP/s (2 flops per multiply-add)."""
    n = 512
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


class Faces(CalibrationDataReader):
    def __init__(self, inputs: list[np.ndarray], name: str) -> None:
        self.items = iter([{name: x} for x in inputs])

    def get_next(self):
        return next(self.items, None)


def aligned_faces(pipeline: FacePipeline, images: list[bytes], largest_only: bool) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for data in images:
        picture = Picture(data, get_settings().max_image_pixels)
        boxes, _ = pipeline.detect(picture, enough=1 if largest_only else None)
        if len(boxes) == 0:
            out.append(None)
            continue
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        for i in np.argsort(-areas)[: 1 if largest_only else len(boxes)]:
            out.append(pipeline.align(picture, pipeline.locate(picture, boxes[i])))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args(argv)
    pack = get_pack()
    pipeline = FacePipeline(pack, 1)
    fp32_file = FP32_PACK / "fr_feature.onnx"
    manifest = json.loads(args.manifest.read_text())
    root = args.manifest.parent
    pairs = manifest["pairs"]
    images = sorted({p for a, b, _ in pairs for p in (a, b)})
    dev_faces = aligned_faces(pipeline, [(root / p).read_bytes() for p in images], largest_only=True)
    demo = registry.extract(registry.FACE_API, DEMO, REPO_ROOT / "build" / "cache" / "samples")
    calibration = [f for f in aligned_faces(pipeline, [p.read_bytes() for p in demo], False) if f is not None]
    calibration += [f[:, ::-1].copy() for f in calibration]
    dev_inputs = [to_input(f, pack) for f in dev_faces if f is not None]
    found = [f is not None for f in dev_faces]
    same = np.array([bool(s) for _, _, s in pairs])
    index = {p: i for i, p in enumerate(images)}

    def accuracy(vectors: np.ndarray) -> float:
        full = np.full((len(images), vectors.shape[1]), np.nan)
        full[np.array(found)] = vectors
        scores = []
        for a, b, _ in pairs:
            va, vb = full[index[a]], full[index[b]]
            scores.append(-1.0 if np.isnan(va).any() or np.isnan(vb).any() else float(va @ vb))
        return round(ten_fold_accuracy(np.array(scores), same), 4)

    x = dev_inputs[0]
    baseline = embed_all(session(pack.embed_file), dev_inputs)
    variants: dict[str, dict] = {}

    def record(name: str, sess: ort.InferenceSession) -> None:
        vectors = embed_all(sess, dev_inputs)
        cosines = (vectors * baseline).sum(axis=1)
        variants[name] = {
            "ms": median_ms(sess, x, args.repeat),
            "dev_accuracy": accuracy(vectors),
            "min_cosine_to_pack": round(float(cosines.min()), 4),
            "mean_cosine_to_pack": round(float(cosines.mean()), 4),
        }
        print(f"{name}: {variants[name]}", file=sys.stderr)

    record("fp32", session(fp32_file))
    for level in LEVELS:
        record(f"int8_weights_{level}", session(pack.embed_file, level))
    with tempfile.TemporaryDirectory() as tmp:
        converted = Path(tmp) / "fp32_opset13.onnx"
        onnx.save(version_converter.convert_version(onnx.load(str(fp32_file)), QDQ_OPSET), str(converted))
        name = session(converted).get_inputs()[0].name
        calib_inputs = [to_input(f, pack) for f in calibration]
        for method in (CalibrationMethod.MinMax, CalibrationMethod.Percentile):
            out = Path(tmp) / f"static_{method.name}.onnx"
            quantize_static(
                str(converted),
                str(out),
                Faces(calib_inputs, name),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=method,
            )
            record(f"static_int8_qdq_{method.name.lower()}", session(out, dequantize_at_load=False))
    macs = multiply_adds(fp32_file)
    gflops = core_gflops()
    result = {
        "bench": "embed_floor",
        "calibration_faces": len(calibration),
        "dev_faces": len(dev_inputs),
        "embedder_multiply_adds": macs,
        "core_fp32_gflops_numpy": round(gflops, 1),
        "floor_ms_fp32": round(2 * macs / (gflops * 1e9) * 1000, 3),
        "variants": variants,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
