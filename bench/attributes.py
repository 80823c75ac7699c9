"""Accuracy and cost of the face attributes (Attributes=["ALL"]) on the labelled sets at hand; last line JSON.

    .venv/bin/python bench/attributes.py --manifest ../shared/facedata/dev/manifest.json

Sets: the dev face set's per-identity ``labels.gender`` (largest face of each photo) and hand labels of
EyesOpen for 48 of its photos (bench/labels/dev_eyes.json), and the hand labels of the 22 faces of the
face-api demo photos (bench/labels/demo_faces.json: Gender, EyesOpen, MouthOpen).
Per attribute: accuracy of the binary ones, and for AgeRange the range widths (no age labels exist here,
so neither MAE nor the share of true ages inside AgeRange can be measured). Cost: milliseconds per face of
ALL over DEFAULT, and DetectFaces' analysis of a mosaic of all six demo photos, DEFAULT and ALL.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from facesearch.devtools import registry
from facesearch.settings import REPO_ROOT
from facesearch.vision.attributes import MEASURED
from facesearch.vision.faces import DetectedFace
from facesearch.vision.pipeline import analyze

DEMO_LABELS = REPO_ROOT / "bench" / "labels" / "demo_faces.json"
DEV_EYE_LABELS = REPO_ROOT / "bench" / "labels" / "dev_eyes.json"
DEMO_MEMBERS = [f"package/demo/sample{i}.jpg" for i in range(1, 7)]
# A detected face is the labelled one when their box centres are this close (image ratios).
MATCH_DISTANCE = 0.05
# Label key -> how to read the model's answer from a face's attributes.
BINARY = {
    "gender": lambda a: a.gender[0] if a.gender else None,
    "eyes_open": lambda a: a.eyes_open.value if a.eyes_open else None,
}


def centre(face: DetectedFace) -> np.ndarray:
    box = face.bounding_box
    return np.array([box.left + box.width / 2, box.top + box.height / 2])


def score(pairs: list[tuple[object, object]]) -> dict:
    """Accuracy and confusion (label -> answer -> count) of (label, answer) pairs."""
    confusion: dict[str, dict[str, int]] = {}
    for label, answer in pairs:
        row = confusion.setdefault(str(label), {})
        row[str(answer)] = row.get(str(answer), 0) + 1
    right = sum(label == answer for label, answer in pairs)
    return {
        "n": len(pairs),
        "accuracy": round(right / len(pairs), 4) if pairs else None,
        "confusion": confusion,
    }


def demo_set(cache: Path) -> dict:
    labels = json.loads(DEMO_LABELS.read_text())["faces"]
    photos = registry.extract(registry.FACE_API, DEMO_MEMBERS, cache)
    pairs: dict[str, list] = {key: [] for key in BINARY}
    widths, unmatched = [], 0
    for photo in photos:
        faces = analyze(photo.read_bytes(), embed=False, attributes=MEASURED).faces
        for entry in labels[photo.name]:
            distances = [float(np.linalg.norm(centre(f) - entry["center"])) for f in faces]
            if not distances or min(distances) > MATCH_DISTANCE:
                unmatched += 1
                continue
            measured = faces[int(np.argmin(distances))].attributes
            widths.append(measured.age_range[1] - measured.age_range[0])
            for key, read in BINARY.items():
                if entry.get(key) is not None:
                    pairs[key].append((entry[key], read(measured)))
    return {
        "faces_labelled": sum(len(v) for v in labels.values()),
        "unmatched": unmatched,
        **{key: score(value) for key, value in pairs.items()},
        "age_range_width": {"median": statistics.median(widths), "max": max(widths)},
    }


def dev_set(manifest_path: Path) -> dict:
    manifest = json.loads(manifest_path.read_text())
    root = manifest_path.parent
    genders = manifest["labels"]["gender"]
    eyes = json.loads(DEV_EYE_LABELS.read_text())["eyes_open"]
    pairs, eye_pairs, widths, no_face = [], [], [], 0
    for name, paths in manifest["identities"].items():
        for path in paths:
            faces = analyze((root / path).read_bytes(), embed=False, max_faces=1, attributes=MEASURED).faces
            if not faces:
                no_face += 1
                continue
            measured = faces[0].attributes
            pairs.append((genders[name], measured.gender[0]))
            if eyes.get(path) is not None:
                eye_pairs.append((eyes[path], measured.eyes_open.value))
            widths.append(measured.age_range[1] - measured.age_range[0])
    return {
        "photos": sum(len(p) for p in manifest["identities"].values()),
        "no_face": no_face,
        "gender": score(pairs),
        "eyes_open (hand labels of 48 photos)": score(eye_pairs),
        "age_range_width": {"median": statistics.median(widths), "max": max(widths)},
        "age": "no age labels in this set: MAE and AgeRange coverage not measurable",
    }


def mosaic(cache: Path) -> bytes:
    """The six demo photos side by side (3 x 2, each 1280 px wide): 22 faces in one JPEG."""
    photos = [Image.open(p).convert("RGB") for p in registry.extract(registry.FACE_API, DEMO_MEMBERS, cache)]
    tiles = [p.resize((1280, round(p.height * 1280 / p.width))) for p in photos]
    height = max(t.height for t in tiles)
    sheet = Image.new("RGB", (3 * 1280, 2 * height))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % 3) * 1280, (i // 3) * height))
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=90)
    return out.getvalue()


def cost(cache: Path, repeat: int) -> dict:
    """Median ms of the analysis of each demo photo and of the mosaic, DEFAULT against ALL."""
    images = {p.name: p.read_bytes() for p in registry.extract(registry.FACE_API, DEMO_MEMBERS, cache)}
    images["mosaic"] = mosaic(cache)
    analyze(images["mosaic"], embed=False, attributes=MEASURED)  # loads every model once
    out, extra_per_face = {}, []
    for name, data in images.items():
        runs: dict[str, list[float]] = {"default": [], "all": []}
        faces = 0
        for _ in range(repeat):
            for key, wanted in (("default", frozenset()), ("all", MEASURED)):
                started = time.perf_counter()
                faces = len(analyze(data, embed=False, attributes=wanted).faces)
                runs[key].append((time.perf_counter() - started) * 1000)
        default, everything = statistics.median(runs["default"]), statistics.median(runs["all"])
        out[name] = {"faces": faces, "default_ms": round(default, 1), "all_ms": round(everything, 1)}
        if name != "mosaic" and faces:
            extra_per_face.append((everything - default) / faces)
    out["all_extra_ms_per_face"] = round(statistics.median(extra_per_face), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, help="the labelled dev set's manifest.json")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per image")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "build" / "cache" / "samples")
    args = parser.parse_args(argv)
    result = {"measured": sorted(MEASURED), "demo_faces": demo_set(args.cache)}
    print(f"demo faces (hand labels): {result['demo_faces']}", file=sys.stderr)
    if args.manifest:
        result["dev_set"] = dev_set(args.manifest)
        print(f"dev set: {result['dev_set']}", file=sys.stderr)
    result["cost"] = cost(args.cache, args.repeat)
    print(f"cost: {result['cost']}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
