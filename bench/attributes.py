"""Accuracy and cost of the face attributes (Attributes=["ALL"]) on the labelled sets at hand; last line JSON.

    .venv/bin/python bench/attributes.py --manifest ../shared/facedata/dev/manifest.json

Sets: the dev face set's per-identity ``labels.gender`` (largest face of each photo) and hand labels of
EyesOpen for 48 of its photos (bench/labels/dev_eyes.json), and the hand labels of the 22 faces of the
face-api demo photos (bench/labels/demo_faces.json: Gender, EyesOpen, MouthOpen), and the hand labels of Smile
and the dominant expression of all 194 dev photos (bench/labels/dev_expression.json).
Per attribute: accuracy of the binary ones, and for AgeRange the range widths (no age labels exist here,
so neither MAE nor the share of true ages inside AgeRange can be measured). Cost: milliseconds per face of
ALL over DEFAULT, and DetectFaces' analysis of a mosaic of all six demo photos, DEFAULT and ALL.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from facesearch.devtools import registry
from facesearch.settings import REPO_ROOT
from facesearch.vision import expressions
from facesearch.vision.attributes import EMOTIONS, MEASURED, SMILE, get_attribute_pack
from facesearch.vision.decode import decode_pil
from facesearch.vision.faces import DetectedFace
from facesearch.vision.pipeline import analyze, get_pipeline

DEMO_LABELS = REPO_ROOT / "bench" / "labels" / "demo_faces.json"
DEV_EYE_LABELS = REPO_ROOT / "bench" / "labels" / "dev_eyes.json"
DEV_EXPRESSION_LABELS = REPO_ROOT / "bench" / "labels" / "dev_expression.json"
EXPRESSION_SEED = 0  # the shuffle of the dev set's people into two halves (Smile threshold two-fold check)
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


def _fit_threshold(pairs: list[tuple[bool, float]]) -> float:
    """The P(happy) cut that best separates labelled smiles (midpoints; ties: the one nearest 0.5)."""
    values = sorted({p for _, p in pairs})
    cuts = [(a + b) / 2 for a, b in itertools.pairwise(values)] or [0.5]
    return max(cuts, key=lambda t: (sum((p >= t) == label for label, p in pairs), -abs(t - 0.5)))


def dev_expressions(manifest_path: Path) -> dict:
    """Smile accuracy, Emotions confusion (dominant type vs label) and a two-fold Smile threshold check."""
    manifest = json.loads(manifest_path.read_text())
    labels = json.loads(DEV_EXPRESSION_LABELS.read_text())["faces"]
    threshold = float(get_attribute_pack().preprocessing["expression"]["smile_happy_threshold"])
    smiles, moods, happy_by_person, no_face = [], [], {}, 0
    for name, paths in manifest["identities"].items():
        for path in paths:
            data = (manifest_path.parent / path).read_bytes()
            faces = analyze(data, embed=False, max_faces=1, attributes=frozenset({EMOTIONS, SMILE})).faces
            if not faces:
                no_face += 1
                continue
            measured, label = faces[0].attributes, labels[path]
            if label["smile"] is not None:
                smiles.append((label["smile"], measured.smile.value))
                p_happy = dict(measured.emotions)["HAPPY"] / 100
                happy_by_person.setdefault(name, []).append((label["smile"], p_happy))
            if label["expression"] is not None:
                moods.append((expressions.EMOTION_OF_CLASS[label["expression"]], measured.emotions[0][0]))
    people = sorted(happy_by_person)
    random.Random(EXPRESSION_SEED).shuffle(people)
    halves = [people[::2], people[1::2]]
    folds = []
    for fit, held in (halves, halves[::-1]):
        cut = _fit_threshold([pair for person in fit for pair in happy_by_person[person]])
        held_pairs = [pair for person in held for pair in happy_by_person[person]]
        right = sum((p >= cut) == label for label, p in held_pairs)
        folds.append({"fitted_threshold": round(cut, 4), "held_out": f"{right}/{len(held_pairs)}"})
    return {
        "photos": sum(len(p) for p in manifest["identities"].values()),
        "no_face": no_face,
        f"smile (P(happy) >= {threshold}, not fitted)": score(smiles),
        "smile threshold fitted on half the people, measured on the other half": folds,
        "emotions (label -> dominant type)": score(moods),
    }


def expression_cost(cache: Path, repeat: int) -> dict:
    """Milliseconds per face the expression net adds (DetectFaces with EMOTIONS against DEFAULT), and the
    net alone (crop + resize + ONNX run), medians over the demo photos' faces."""
    images = [p.read_bytes() for p in registry.extract(registry.FACE_API, DEMO_MEMBERS, cache)]
    wanted = frozenset({EMOTIONS, SMILE})
    analyze(images[0], embed=False, attributes=wanted)  # loads the model once
    extra = []
    for data in images:
        runs: dict[frozenset, list[float]] = {frozenset(): [], wanted: []}
        faces = 0
        for _ in range(repeat):
            for key in runs:
                started = time.perf_counter()
                faces = len(analyze(data, embed=False, attributes=key).faces)
                runs[key].append((time.perf_counter() - started) * 1000)
        if faces:
            extra.append((statistics.median(runs[wanted]) - statistics.median(runs[frozenset()])) / faces)
    pack = get_attribute_pack()
    model = expressions.ExpressionModel(pack.files["expression"], pack.preprocessing["expression"], 1)
    pipeline, alone = get_pipeline(), []
    for data in images:
        image = decode_pil(data, 100_000_000)
        for box in pipeline.detect(image)[0]:
            points = pipeline.landmark_model.locate(image, box)
            for _ in range(repeat):
                started = time.perf_counter()
                model.probabilities(image, points)
                alone.append((time.perf_counter() - started) * 1000)
    return {
        "emotions_smile_extra_ms_per_face": round(statistics.median(extra), 1),
        "net_alone_ms_per_face (one thread, crop + resize + run)": round(statistics.median(alone), 2),
        "model_bytes": pack.files["expression"].stat().st_size,
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
    parser.add_argument("--expressions", action="store_true", help="only the Emotions and Smile sections")
    args = parser.parse_args(argv)
    if args.expressions:
        return expressions_only(args)
    result = {"measured": sorted(MEASURED), "demo_faces": demo_set(args.cache)}
    print(f"demo faces (hand labels): {result['demo_faces']}", file=sys.stderr)
    if args.manifest:
        result["dev_set"] = dev_set(args.manifest)
        print(f"dev set: {result['dev_set']}", file=sys.stderr)
    result["cost"] = cost(args.cache, args.repeat)
    print(f"cost: {result['cost']}", file=sys.stderr)
    print(json.dumps(result))
    return 0


def expressions_only(args: argparse.Namespace) -> int:
    result = {}
    if args.manifest:
        result["dev_expressions"] = dev_expressions(args.manifest)
        print(f"dev set expressions: {result['dev_expressions']}", file=sys.stderr)
    result["expression_cost"] = expression_cost(args.cache, args.repeat)
    print(f"expression cost: {result['expression_cost']}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
