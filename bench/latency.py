"""Per-stage latency of the face pipeline (warm, 1 and 2 threads) and cold start; last line is JSON.

    .venv/bin/python bench/latency.py [--repeat 30]

Photos: a demo photo of the registry package @vladmandic/face-api, scaled and cropped to 640x480 and
1920x1080 and re-encoded as JPEG. Stages of the largest-face path (what SearchFacesByImage runs):
decode, detect (whole image; tiles only if it found no large face), landmarks, align, embed. The
all-faces path (IndexFaces/DetectFaces) always runs the small-face tiles; its detect cost is reported
separately as the tiling cost.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time

from PIL import Image

from facesearch.devtools import registry
from facesearch.settings import REPO_ROOT, get_settings
from facesearch.vision.decode import decode_pil
from facesearch.vision.pack import get_pack
from facesearch.vision.pipeline import FacePipeline, plan_tiles

PHOTO = "package/demo/sample1.jpg"
SIZES = {"640x480": (640, 480), "1920x1080": (1920, 1080)}
COLD_START = (
    "import time; t = time.perf_counter(); "
    "from facesearch.vision.pipeline import get_pipeline; get_pipeline(); "
    "print(time.perf_counter() - t)"
)


def photo_bytes(size: tuple[int, int]) -> bytes:
    (path,) = registry.extract(registry.FACE_API, [PHOTO], REPO_ROOT / "build" / "cache" / "samples")
    image = Image.open(path).convert("RGB")
    scale = max(size[0] / image.width, size[1] / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    left, top = (image.width - size[0]) // 2, (image.height - size[1]) // 2
    out = io.BytesIO()
    image.crop((left, top, left + size[0], top + size[1])).save(out, "JPEG", quality=90)
    return out.getvalue()


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - t) * 1000.0


def stages(pipeline: FacePipeline, data: bytes) -> dict[str, float]:
    """Milliseconds per stage of one largest-face pass, plus the all-faces detect with tiles."""
    image, decode = timed(decode_pil, data, get_settings().max_image_pixels)
    (boxes, _), detect = timed(pipeline.detect, image, enough=1)
    largest = boxes[((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).argmax()]
    points, landmarks = timed(pipeline.landmark_model.locate, image, largest)
    aligned, align = timed(pipeline.align, image, points)
    _, embed = timed(pipeline.embedder.embed, aligned)
    _, detect_whole = timed(pipeline.detect, image, tiled=False)
    _, detect_tiled = timed(pipeline.detect, image, tiled=True)
    _, all_faces = timed(pipeline.analyze_image, image)
    return {
        "decode": decode,
        "detect": detect,
        "landmarks": landmarks,
        "align": align,
        "embed": embed,
        "largest_face_total": decode + detect + landmarks + align + embed,
        "detect_whole_image": detect_whole,
        "detect_with_tiles": detect_tiled,
        "all_faces_after_decode": all_faces,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
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
    for threads in (1, 2):
        pipeline = FacePipeline(pack, threads)
        for name, data in photos.items():
            stages(pipeline, data)  # warm-up
            runs = [stages(pipeline, data) for _ in range(args.repeat)]
            median = {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}
            result["warm_ms"][f"{name}_threads{threads}"] = median
            # The fastest run: the code's own cost, least disturbed by other processes on shared cores.
            fastest = round(min(r["largest_face_total"] for r in runs), 2)
            result.setdefault("largest_face_total_min_ms", {})[f"{name}_threads{threads}"] = fastest
            print(f"{name} threads={threads}: {median}", file=sys.stderr)
    for name, (width, height) in SIZES.items():
        plan = plan_tiles(width, height, pack.detect)
        result.setdefault("tiles", {})[name] = 0 if plan is None else len(plan.boxes)
    cold = [
        float(
            subprocess.run(
                [sys.executable, "-c", COLD_START], check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(3)
    ]
    result["cold_start_s"] = round(min(cold), 3)
    result["pack_bytes"] = sum(f.stat().st_size for f in pack.root.iterdir())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
