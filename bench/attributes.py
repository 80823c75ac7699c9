"""Accuracy and cost of the face attributes (Attributes=["ALL"]) on the labelled sets at hand; last line JSON.

    .venv/bin/python bench/attributes.py --manifest ../shared/facedata/dev/manifest.json

Sets: the dev face set's per-identity ``labels.gender`` (largest face of each photo) and hand labels of
EyesOpen for 48 of its photos (bench/labels/dev_eyes.json), and the hand labels of the 22 faces of the
face-api demo photos (bench/labels/demo_faces.json: Gender, EyesOpen, MouthOpen), and the hand labels of Smile
and the dominant expression of all 194 dev photos (bench/labels/dev_expression.json).
Per attribute: accuracy of the binary ones; for AgeRange against the apparent ages labelled by eye on all dev
photos (bench/labels/dev_age.json), the midpoint's MAE, the share of labels inside [Low, High] and the mean
width, beside a constant range of that width on the labels' median; for MouthOpen (bench/labels/
dev_mouth.json), the threshold fitted on a seeded half and the accuracy on the other half; with
--expressions, Smile accuracy and the Emotions confusion. Cost: milliseconds per face of ALL over DEFAULT,
and DetectFaces' analysis of a mosaic of all six demo photos (22 faces) and of one of them five times over
(110 faces, of which an image reports at most 100), DEFAULT and ALL.
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
from facesearch.settings import REPO_ROOT, get_settings
from facesearch.vision import expressions
from facesearch.vision.attributes import AGE_RANGE, EMOTIONS, MEASURED, MOUTH_OPEN, SMILE, get_attribute_pack
from facesearch.vision.decode import Picture, decode_pil
from facesearch.vision.faces import DetectedFace
from facesearch.vision.mouth import MOUTH_OPEN_THRESHOLD, mouth_gap_ratio
from facesearch.vision.pipeline import analyze, get_pipeline

DEMO_LABELS = REPO_ROOT / "bench" / "labels" / "demo_faces.json"
DEV_EYE_LABELS = REPO_ROOT / "bench" / "labels" / "dev_eyes.json"
DEV_AGE_LABELS = REPO_ROOT / "bench" / "labels" / "dev_age.json"
DEV_MOUTH_LABELS = REPO_ROOT / "bench" / "labels" / "dev_mouth.json"
# The seed of the split of the mouth labels into the half the threshold is fitted on and the held-out half.
MOUTH_SPLIT_SEED = 0
DEV_EXPRESSION_LABELS = REPO_ROOT / "bench" / "labels" / "dev_expression.json"
EXPRESSION_SEED = 0  # the shuffle of the dev set's people into two halves (Smile threshold two-fold check)
DEMO_MEMBERS = [f"package/demo/sample{i}.jpg" for i in range(1, 7)]
# A detected face is the labelled one when their box centres are this close (image ratios).
MATCH_DISTANCE = 0.05
# Label key -> how to read the model's answer from a face's attributes.
BINARY = {
    "gender": lambda a: a.gender[0] if a.gender else None,
    "eyes_open": lambda a: a.eyes_open.value if a.eyes_open else None,
    "mouth_open": lambda a: a.mouth_open.value if a.mouth_open else None,
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
        "age": "against labels by eye: see dev_labels_by_eye",
    }


# --- AgeRange and MouthOpen against the by-eye labels of all dev photos (bench/labels/dev_age.json,
# dev_mouth.json) ---------------------------------------------------------------------------------------


def largest_face_points(data: bytes) -> np.ndarray | None:
    """The 68 landmarks of the face analyze(max_faces=1) answers (the largest box), in image pixels."""
    pipeline = get_pipeline()
    picture = Picture(data, get_settings().max_image_pixels)
    boxes, _ = pipeline.detect(picture, True, enough=1)
    if not len(boxes):
        return None
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return pipeline.locate(picture, boxes[int(np.argsort(-areas, kind="stable")[0])])


def age_scores(triples: list[tuple[int, int, int, int]]) -> dict:
    """(label, label's +-, Low, High) -> MAE of the range's midpoint, share of labels inside, mean width."""
    labels = np.array([t[0] for t in triples], dtype=float)
    own = np.array([t[1] for t in triples], dtype=float)
    low = np.array([t[2] for t in triples], dtype=float)
    high = np.array([t[3] for t in triples], dtype=float)
    middle = (low + high) / 2
    return {
        "n": len(triples),
        "midpoint_mae": round(float(np.mean(np.abs(middle - labels))), 2),
        "midpoint_bias": round(float(np.mean(middle - labels)), 2),
        "label_inside": round(float(np.mean((low <= labels) & (labels <= high))), 4),
        "label_range_overlaps": round(float(np.mean((low <= labels + own) & (labels - own <= high))), 4),
        "mean_width": round(float(np.mean(high - low)), 2),
    }


def age_report(rows: list[dict]) -> dict:
    """The model's AgeRange against the labels, and a constant range of its mean width on their median."""
    triples = [(r["age"], r["plus_minus"], *r["age_range"]) for r in rows]
    model = age_scores(triples)
    median, half = statistics.median(t[0] for t in triples), model["mean_width"] / 2
    baseline = [(t[0], t[1], median - half, median + half) for t in triples]
    return {
        "model": model,
        f"constant [{median - half:g}, {median + half:g}]": age_scores(baseline),
        "labels": "apparent age by eye (one labeller; expect ~5 years of error of their own)",
    }


def fit_threshold(pairs: list[tuple[float, bool]]) -> float:
    """The threshold (ratio > threshold = open) with the most right on ``pairs``: the middle of the best
    candidates among midpoints between neighbouring ratios."""
    ratios = sorted({ratio for ratio, _ in pairs})
    candidates = [(a + b) / 2 for a, b in itertools.pairwise(ratios)]
    right = [sum((ratio > t) == label for ratio, label in pairs) for t in candidates]
    best = [t for t, r in zip(candidates, right, strict=True) if r == max(right)]
    return best[len(best) // 2]


def mouth_report(rows: list[dict]) -> dict:
    """Threshold fitted on a seeded half of the decidable labels, accuracy on the other half; the shipped
    constant's answers (through analyze) scored on the same halves."""
    decided = sorted((r for r in rows if r["mouth_open"] is not None), key=lambda r: r["path"])
    random.Random(MOUTH_SPLIT_SEED).shuffle(decided)
    fit, held = decided[: len(decided) // 2], decided[len(decided) // 2 :]
    threshold = fit_threshold([(r["ratio"], r["mouth_open"]) for r in fit])

    def fitted(half: list[dict]) -> dict:
        return score([(r["mouth_open"], r["ratio"] > threshold) for r in half])

    def shipped(half: list[dict]) -> dict:
        return score([(r["mouth_open"], r["answer"].value) for r in half])

    return {
        "decidable": len(decided),
        "unclear": len(rows) - len(decided),
        "threshold_fitted_on_half": round(threshold, 4),
        "fitted_threshold": {"fit_half": fitted(fit), "held_out": fitted(held)},
        f"shipped_threshold {MOUTH_OPEN_THRESHOLD}": {
            "fit_half": shipped(fit),
            "held_out": shipped(held),
            "held_out_confidence_ge_75": shipped([r for r in held if r["answer"].confidence >= 75]),
            "held_out_confidence_lt_75": shipped([r for r in held if r["answer"].confidence < 75]),
        },
    }


def labelled_dev(manifest_path: Path) -> dict:
    """AgeRange and MouthOpen of the largest face of every labelled dev photo, against the labels."""
    ages = json.loads(DEV_AGE_LABELS.read_text())["ages"]
    mouths = json.loads(DEV_MOUTH_LABELS.read_text())["mouth_open"]
    wanted = frozenset({AGE_RANGE, MOUTH_OPEN})
    rows, no_face = [], 0
    for path in sorted(ages):
        data = (manifest_path.parent / path).read_bytes()
        faces = analyze(data, embed=False, max_faces=1, attributes=wanted).faces
        points = largest_face_points(data)
        if not faces or points is None:
            no_face += 1
            continue
        measured = faces[0].attributes
        rows.append(
            {
                "path": path,
                **ages[path],
                "age_range": measured.age_range,
                "mouth_open": mouths[path],
                "answer": measured.mouth_open,
                "ratio": mouth_gap_ratio(points),
            }
        )
    # The service's answer is the geometry at the shipped threshold: a mismatch means the bench reads
    # another face than the service answers.
    mismatched = sum(r["answer"].value != (r["ratio"] > MOUTH_OPEN_THRESHOLD) for r in rows)
    return {
        "photos": len(ages),
        "no_face": no_face,
        "answer_geometry_mismatches": mismatched,
        "age_range": age_report(rows),
        "mouth_open": mouth_report(rows),
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


def mosaic(cache: Path, copies: int = 1) -> bytes:
    """The six demo photos ``copies`` times over in one JPEG at most 3 840 px wide (22 faces per copy)."""
    photos = [Image.open(p).convert("RGB") for p in registry.extract(registry.FACE_API, DEMO_MEMBERS, cache)]
    columns = 3 if copies == 1 else 6
    width = 3840 // columns
    tiles = [p.resize((width, round(p.height * width / p.width))) for p in photos * copies]
    height = max(t.height for t in tiles)
    sheet = Image.new("RGB", (columns * width, -(-len(tiles) // columns) * height))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * width, (i // columns) * height))
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=90)
    return out.getvalue()


def cost(cache: Path, repeat: int) -> dict:
    """Median ms of the analysis of each demo photo and of the mosaic, DEFAULT against ALL."""
    images = {p.name: p.read_bytes() for p in registry.extract(registry.FACE_API, DEMO_MEMBERS, cache)}
    images["mosaic"] = mosaic(cache)
    images["mosaic_x5"] = mosaic(cache, copies=5)
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
        if not name.startswith("mosaic") and faces:
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
        result["dev_labels_by_eye"] = labelled_dev(args.manifest)
        print(f"dev set, labels by eye: {result['dev_labels_by_eye']}", file=sys.stderr)
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
