"""Per-stage latency of the face pipeline (warm, 1 and 2 threads), vs face_recognition; last line is JSON.

    .venv/bin/python bench/latency.py [--repeat 20] [--threads 1 2] [--peer [PYTHON]]

Photos: the demo photo sample1.jpg of the registry package @vladmandic/face-api (3 faces), centre-cropped
and LANCZOS-resized to 640x480 and 1920x1080, re-encoded as JPEG q95. Stages of the largest-face path
(what SearchFacesByImage runs): decode (every decode the steps asked for, at their scales), detect (whole
image; tiles only if it found no large face), landmarks, align, embed. ``reference`` is the pre-change
path on the same photo in the same run: one full-size decode, every step on the full-size image, and
the package's embedder graph as it ships (no rewrites: dead channels' denormal weights and PRelu kept;
the fp32 original, which computes what the int8-weight-only pack did, its weights dequantized at load).
The all-faces path (IndexFaces/DetectFaces) always runs the small-face tiles; its detect cost is
reported separately as the tiling cost.

``--peer`` also times face_recognition (dlib HOG detector, upsample 1, + dlib ResNet embedding of the
largest face: its own largest-face pipeline, defaults throughout) on the same JPEG bytes, one thread, in
the Python given (default build/peer-venv/bin/python), and prints the ratio peer / FaceSearch. The peer
lives in its own venv (its dlib and numpy pins must not touch the project's); it needs cmake and a C++
compiler, and dlib builds from source in 10+ minutes on 2 cores:

    python -m venv build/peer-venv && build/peer-venv/bin/pip install face_recognition

(face_recognition pulls its model files as the package face_recognition_models.)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from facesearch.devtools import registry
from facesearch.settings import REPO_ROOT, get_settings
from facesearch.vision.decode import Picture, decode_pil
from facesearch.vision.models import Embedder
from facesearch.vision.pack import ModelPack, get_pack
from facesearch.vision.pipeline import FacePipeline, analyze, plan_tiles

PHOTO = "package/demo/sample1.jpg"
SIZES = {"640x480": (640, 480), "1920x1080": (1920, 1080)}
JPEG_QUALITY = 95
# The untouched fp32 originals, kept by layers/models/build_pack.py in its cache.
FP32_PACK = REPO_ROOT / "build" / "cache" / "packs-fp32" / "faceplugin-fr-fp32-1.0"
PEER_PYTHON = REPO_ROOT / "build" / "peer-venv" / "bin" / "python"
# Every library below the peer and ours gets one thread, as in a 1-vCPU Lambda.
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# A fresh process: imports and the three sessions ("ready"), then the first answer on a photo given as
# argv[1] ("first_answer": what a cold Lambda's first SearchFacesByImage waits for, before HTTP and S3).
COLD_START = (
    "import sys, time; t = time.perf_counter(); "
    "from facesearch.vision.pipeline import analyze, get_pipeline; get_pipeline(); "
    "ready = time.perf_counter() - t; "
    "analyze(open(sys.argv[1], 'rb').read(), max_faces=1); "
    "print(ready, time.perf_counter() - t)"
)
# face_recognition's own largest-face pipeline, timed in its venv: decode, HOG detect, 68-point
# landmarks + ResNet embedding of the largest box. Prints {"decode": [...], ...} in milliseconds.
PEER_SCRIPT = """
import json, sys, time
import face_recognition
paths, repeat = sys.argv[1:-1], int(sys.argv[-1])
def once(path):
    t0 = time.perf_counter()
    image = face_recognition.load_image_file(path)
    t1 = time.perf_counter()
    boxes = face_recognition.face_locations(image)
    t2 = time.perf_counter()
    largest = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
    face_recognition.face_encodings(image, known_face_locations=[largest])
    t3 = time.perf_counter()
    return {"decode": (t1 - t0) * 1e3, "detect": (t2 - t1) * 1e3, "embed": (t3 - t2) * 1e3,
            "total": (t3 - t0) * 1e3, "faces": len(boxes)}
out = {}
for path in paths:
    once(path)
    runs = [once(path) for _ in range(repeat)]
    out[path] = {k: sorted(r[k] for r in runs)[len(runs) // 2] for k in runs[0]}
print(json.dumps(out))
"""


def photo_bytes(size: tuple[int, int]) -> bytes:
    (path,) = registry.extract(registry.FACE_API, [PHOTO], REPO_ROOT / "build" / "cache" / "samples")
    image = Image.open(path).convert("RGB")
    scale = max(size[0] / image.width, size[1] / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    left, top = (image.width - size[0]) // 2, (image.height - size[1]) // 2
    out = io.BytesIO()
    image.crop((left, top, left + size[0], top + size[1])).save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - t) * 1000.0


def largest(boxes: np.ndarray) -> np.ndarray:
    return boxes[((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).argmax()]


def reference_embedder(pack: ModelPack, threads: int) -> Embedder:
    """The embedder as it was before issue 14: the package's graph, unrewritten (its fp32 original)."""
    return Embedder(ModelPack.load(FP32_PACK).embed_file, pack.embed, threads)


def stages(pipeline: FacePipeline, data: bytes, reference: Embedder | None = None) -> dict[str, float]:
    """Milliseconds per stage of one largest-face pass; decodes are moved into ``decode`` wherever they ran.

    ``reference``: run the pre-change path instead (full-size decode, every step on the full-size image,
    this embedder).
    """
    max_pixels = get_settings().max_image_pixels
    picture, ms = timed(Picture if reference is None else decode_pil, data, max_pixels)
    stage = {"decode": ms}
    decoded = 0.0 if reference is not None else picture.decode_seconds * 1000.0

    def step(name, fn, *args, **kwargs):
        nonlocal decoded
        result, ms = timed(fn, *args, **kwargs)
        if reference is None:
            # A step that needed a finer scale decoded it: count that as decoding.
            now = picture.decode_seconds * 1000.0
            ms -= now - decoded
            stage["decode"] += now - decoded
            decoded = now
        stage[name] = ms
        return result

    boxes, _ = step("detect", pipeline.detect, picture, enough=1)
    points = step("landmarks", pipeline.locate, picture, largest(boxes))
    aligned = step("align", pipeline.align, picture, points)
    step("embed", (reference or pipeline.embedder).embed, aligned)
    stage["largest_face_total"] = sum(stage.values())
    return stage


def all_faces(pipeline: FacePipeline, data: bytes) -> dict[str, float]:
    picture = Picture(data, get_settings().max_image_pixels)
    _, whole = timed(pipeline.detect, picture, tiled=False)
    _, tiled = timed(pipeline.detect, picture, tiled=True)
    _, everything = timed(pipeline.analyze_image, Picture(data, get_settings().max_image_pixels))
    return {"detect_whole_image": whole, "detect_with_tiles": tiled, "all_faces_with_decode": everything}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}


def run_peer(python: Path, photos: dict[str, bytes], repeat: int) -> dict[str, dict[str, float]]:
    """face_recognition's medians per photo, in its own venv and process (one thread)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, data in photos.items():
            paths[name] = Path(tmp) / f"{name}.jpg"
            paths[name].write_bytes(data)
        done = subprocess.run(
            [str(python), "-c", PEER_SCRIPT, *map(str, paths.values()), str(repeat)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **ONE_THREAD_ENV},
        )
        out = json.loads(done.stdout.strip().splitlines()[-1])
        return {name: {k: round(v, 1) for k, v in out[str(path)].items()} for name, path in paths.items()}


def peer_importable(python: Path) -> bool:
    if not python.exists():
        return False
    check = subprocess.run([str(python), "-c", "import face_recognition"], capture_output=True, check=False)
    return check.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--peer", nargs="?", const=PEER_PYTHON, type=Path, help="face_recognition's python")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start measurement")
    args = parser.parse_args(argv)
    pack = get_pack()
    # The machine's load when the run started: other processes on the same cores inflate every number.
    result: dict = {
        "model_version": pack.face_model_version,
        "repeat": args.repeat,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "warm_ms": {},
    }
    photos = {name: photo_bytes(size) for name, size in SIZES.items()}
    for threads in args.threads:
        pipeline = FacePipeline(pack, threads)
        before = reference_embedder(pack, threads)
        for name, data in photos.items():
            key = f"{name}_threads{threads}"
            analyze(data, max_faces=1)  # warm-up (and the default pipeline's sessions)
            paths = {False: None, True: before}
            for reference in paths.values():
                stages(pipeline, data, reference)  # warm-up
            # Interleaved, so both paths see the same load.
            runs: dict[bool, list] = {False: [], True: []}
            for _ in range(args.repeat):
                for is_reference, reference in paths.items():
                    runs[is_reference].append(stages(pipeline, data, reference))
            result["warm_ms"][key] = median_of(runs[False])
            result.setdefault("reference_warm_ms", {})[key] = median_of(runs[True])
            tiling = [all_faces(pipeline, data) for _ in range(max(3, args.repeat // 4))]
            result["warm_ms"][key] |= median_of(tiling)
            new, old = (statistics.median(r["largest_face_total"] for r in runs[x]) for x in (False, True))
            result.setdefault("speedup_vs_reference", {})[key] = round(old / new, 2)
            # The fastest run: the code's own cost, least disturbed by other processes on shared cores.
            result.setdefault("largest_face_total_min_ms", {})[key] = round(
                min(r["largest_face_total"] for r in runs[False]), 2
            )
            print(f"{key}: {result['warm_ms'][key]}", file=sys.stderr)
            print(f"{key} reference: {result['reference_warm_ms'][key]}", file=sys.stderr)
    if args.peer is not None:
        if peer_importable(args.peer):
            peer = run_peer(args.peer, photos, args.repeat)
            result["peer_face_recognition_ms"] = peer
            for name, timing in peer.items():
                ours = result["warm_ms"][f"{name}_threads1"]["largest_face_total"]
                result.setdefault("peer_ratio", {})[name] = round(timing["total"] / ours, 1)
            print(f"face_recognition: {peer}; ratio peer/FaceSearch: {result['peer_ratio']}", file=sys.stderr)
        else:
            result["peer_face_recognition_ms"] = f"face_recognition is not importable by {args.peer}"
            print(result["peer_face_recognition_ms"], file=sys.stderr)
    for name, (width, height) in SIZES.items():
        plan = plan_tiles(width, height, pack.detect)
        result.setdefault("tiles", {})[name] = 0 if plan is None else len(plan.boxes)
    if not args.no_cold:
        with tempfile.TemporaryDirectory() as tmp:
            photo = Path(tmp) / "640x480.jpg"
            photo.write_bytes(photos["640x480"])
            command = [sys.executable, "-c", COLD_START, str(photo)]
            outputs = [subprocess.run(command, check=True, capture_output=True, text=True) for _ in range(5)]
            cold = [[float(v) for v in done.stdout.split()] for done in outputs]
        result["cold_start_s"] = {
            "ready": round(statistics.median(c[0] for c in cold), 3),
            "first_answer_640x480": round(statistics.median(c[1] for c in cold), 3),
        }
    result["pack_bytes"] = sum(f.stat().st_size for f in pack.root.iterdir())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
