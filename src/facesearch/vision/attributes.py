"""Face attributes beyond Rekognition's DEFAULT set, from the attribute pack: one wrapper per model, one verb.

The pack (``<models_dir>/<pack>/attributes.json`` + ONNX files, built by layers/models/build_attributes.py)
is loaded on the first request that asks for an attribute, and each model on the first request that
needs it, so requests for the DEFAULT attributes never pay for them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from facesearch import errors
from facesearch.lazy import once
from facesearch.settings import get_settings
from facesearch.vision import align, expressions, mouth
from facesearch.vision.faces import BinaryAttribute, FaceAttributes
from facesearch.vision.models import create_session
from facesearch.vision.pack import sha256_file

ATTRIBUTES_MANIFEST = "attributes.json"
ATTRIBUTES_SCHEMA = 1
# Rekognition's Attribute names this service measures (the rest of the enum is accepted and not answered).
AGE_RANGE, GENDER, EYES_OPEN = "AGE_RANGE", "GENDER", "EYES_OPEN"
MOUTH_OPEN = "MOUTH_OPEN"  # landmark geometry (vision/mouth.py): no model, no attribute pack
EMOTIONS, SMILE = "EMOTIONS", "SMILE"
MEASURED = frozenset({AGE_RANGE, GENDER, EYES_OPEN, MOUTH_OPEN, EMOTIONS, SMILE})
# The model each measured attribute needs (manifest["models"] keys).
MODEL_OF = {AGE_RANGE: "age", GENDER: "gender", EYES_OPEN: "eye", EMOTIONS: "expression", SMILE: "expression"}

# dlib's chip geometry for a 5-point shape (dlib/image_transforms/interpolation.h, get_face_chip_details):
# template positions of the eye corners and the nose base in a unit chip, before padding. Points in the
# order of dlib's 5-point model: subject's left eye outer, inner; right eye outer, inner; nose base.
DLIB_CHIP_TEMPLATE = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2282036130719),
    (0.4901123135653, 0.6277975316023),
)
# The iBUG 68-point indices of the same five points.
DLIB_FIVE_FROM_68 = (45, 42, 36, 39, 33)
# dlib extracts a chip from an image pyramid so that no level is shrunk by 2x or more in one bilinear step;
# we shrink by box-averaging (Pillow's reduce) to the same bound.
MAX_BILINEAR_SHRINK = 2.0
# faceplugin's eye crop (lib/fr_eye.js): a square on the mean of the four lid points, this many eye widths.
EYE_BOX_WIDTHS = 1.6
LEFT_EYE = {"lids": (37, 38, 40, 41), "corners": (36, 39)}  # viewer's left (iBUG 36-41)
RIGHT_EYE = {"lids": (43, 44, 46, 47), "corners": (42, 45)}


@dataclass(frozen=True)
class AttributePack:
    """The attribute models' files and constants, from attributes.json (sha256-checked at load)."""

    root: Path
    pack_name: str
    files: dict[str, Path]
    preprocessing: dict[str, Any]

    @classmethod
    def load(cls, root: Path) -> AttributePack:
        manifest = json.loads((root / ATTRIBUTES_MANIFEST).read_text())
        if manifest.get("schema") != ATTRIBUTES_SCHEMA:
            raise errors.InternalServerError(
                f"attribute pack {root}: schema {manifest.get('schema')!r}, expected {ATTRIBUTES_SCHEMA}"
            )
        files = {}
        for role, entry in manifest["models"].items():
            path = root / entry["file"]
            if sha256_file(path) != entry["sha256"]:
                raise errors.InternalServerError(
                    f"attribute pack {root}: {entry['file']} differs from its manifest's sha256"
                )
            files[role] = path
        return cls(root, manifest["pack_name"], files, manifest["preprocessing"])


@once
def get_attribute_pack() -> AttributePack:
    """The newest attribute pack under ``settings.models_dir`` (by folder name), loaded once."""
    models_dir = get_settings().models_dir
    found = sorted(
        path.parent
        for path in models_dir.glob(f"*/{ATTRIBUTES_MANIFEST}")
        if not path.parent.name.startswith(".")
    )
    if not found:
        raise errors.InternalServerError(
            f"no face attribute pack under {models_dir}; build one with `make models`"
        )
    return AttributePack.load(found[-1])


def _box_reduce(image: Image.Image, matrix: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    """``image`` shrunk by an integer factor so ``matrix`` (image -> chip) shrinks it less than 2x."""
    shrink = 1.0 / math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    factor = int(shrink // MAX_BILINEAR_SHRINK) + 1 if shrink >= MAX_BILINEAR_SHRINK else 1
    if factor == 1:
        return image, matrix
    # Pixel centres move from x to (x + 0.5) / factor - 0.5 under a box reduce.
    to_reduced = np.array([[factor, 0.0, (factor - 1) / 2], [0.0, factor, (factor - 1) / 2]])
    reduced_to_chip = matrix[:, :2] @ to_reduced[:, :2]
    offset = matrix[:, :2] @ to_reduced[:, 2] + matrix[:, 2]
    return image.reduce(factor), np.hstack([reduced_to_chip, offset[:, None]])


def dlib_chip(image: Image.Image, points68: np.ndarray, size: int, padding: float) -> np.ndarray:
    """The ``size`` x ``size`` RGB chip dlib's get_face_chip_details + extract_image_chip would cut."""
    template = (np.asarray(DLIB_CHIP_TEMPLATE) + padding) / (2 * padding + 1) * size
    matrix = align.similarity_transform(points68[list(DLIB_FIVE_FROM_68)], template)
    # Only the chip's footprint (plus a pixel for the bilinear taps) is shrunk, not the whole photo.
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    corners = align.apply_transform(inverse, np.array([[-1, -1], [size, -1], [-1, size], [size, size]]))
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
    crop = image.crop((int(x0), int(y0), int(x1), int(y1)))
    shifted = np.hstack([matrix[:, :2], (matrix[:, 2] + matrix[:, :2] @ np.array([x0, y0]))[:, None]])
    source, shifted = _box_reduce(crop, shifted)
    return align.warp(source, shifted, size)


class _Classifier:
    """An ONNX classifier whose input and output names are read from its session."""

    def __init__(self, path: Path, threads: int) -> None:
        self.session = create_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def _run(self, x: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(x)})
        return np.asarray(out[0], dtype=np.float64)


class DlibChipModel(_Classifier):
    """dlib's age (81 classes) or gender (2 classes) network: class probabilities of an aligned chip."""

    def __init__(self, path: Path, config: dict[str, Any], threads: int) -> None:
        super().__init__(path, threads)
        self.size = int(config["chip_size"])
        self.padding = float(config["padding"])
        self.means = np.asarray(config["means"], dtype=np.float32)
        self.scale = float(config["scale"])

    def classify(self, image: Image.Image, points68: np.ndarray) -> np.ndarray:
        chip = dlib_chip(image, points68, self.size, self.padding).astype(np.float32)
        x = ((chip - self.means) * self.scale).transpose(2, 0, 1)[np.newaxis]
        return self._run(x)


class EyeModel(_Classifier):
    """faceplugin's 24x24 grey eye classifier: the probability that one eye is open."""

    def __init__(self, path: Path, config: dict[str, Any], threads: int) -> None:
        super().__init__(path, threads)
        self.size = int(config["input_size"])
        self.scale = float(config["scale"])
        self.open_class = int(config["open_class"])

    def open_probability(self, image: Image.Image, points68: np.ndarray, eye: dict) -> float:
        cx, cy = points68[list(eye["lids"])].mean(axis=0)
        left, right = eye["corners"]
        side = max(2.0, EYE_BOX_WIDTHS * float(points68[right][0] - points68[left][0]))
        box = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
        crop = image.crop(box).convert("L").resize((self.size, self.size), Image.Resampling.BILINEAR)
        logits = self._run((np.asarray(crop, dtype=np.float32) / self.scale)[np.newaxis, np.newaxis])
        probabilities = np.exp(logits - logits.max())
        return float(probabilities[self.open_class] / probabilities.sum())


@once
def _model(role: str) -> Any:
    pack = get_attribute_pack()
    threads = get_settings().intra_op_threads
    kinds = {"eye": EyeModel, "expression": expressions.ExpressionModel}
    return kinds.get(role, DlibChipModel)(pack.files[role], pack.preprocessing[role], threads)


def _binary(probability_true: float) -> BinaryAttribute:
    confidence = 100.0 * max(probability_true, 1.0 - probability_true)
    return BinaryAttribute(value=probability_true >= 0.5, confidence=confidence)


def age_range(
    probabilities: np.ndarray, ages: np.ndarray, mass: float, min_half_width: float
) -> tuple[int, int]:
    """Whole years (Low, High): the narrowest run of ages holding ``mass`` of the distribution, widened to
    at least ``min_half_width`` either side of the expected age (the network is sharper than it is right)."""
    cumulative = np.concatenate([[0.0], np.cumsum(probabilities)])
    best, best_key = (0, len(ages) - 1), (len(ages), 0.0)
    for start in range(len(ages)):
        end = int(np.searchsorted(cumulative, cumulative[start] + mass * cumulative[-1]))
        if end > len(ages):
            break
        # Narrowest first; of equally narrow runs, the one holding the most.
        key = (end - 1 - start, -(cumulative[end] - cumulative[start]))
        if key < best_key:
            best, best_key = (start, end - 1), key
    expected = float(probabilities @ ages / cumulative[-1])
    low = min(float(ages[best[0]]), expected - min_half_width)
    high = max(float(ages[best[1]]), expected + min_half_width)
    return max(0, math.floor(low)), math.ceil(high)


def measure(image: Image.Image, points68: np.ndarray, wanted: frozenset[str]) -> FaceAttributes:
    """The attributes in ``wanted`` (names of MEASURED) of the face with these 68 landmarks (image px)."""
    found: dict[str, Any] = {}
    if MOUTH_OPEN in wanted:
        found["mouth_open"] = mouth.mouth_open(points68)
    if not wanted - {MOUTH_OPEN}:
        return FaceAttributes(**found)  # the attribute pack is loaded only for its models
    pack = get_attribute_pack()
    if AGE_RANGE in wanted:
        config = pack.preprocessing["age"]
        probabilities = _model("age").classify(image, points68)
        found["age_range"] = age_range(
            probabilities,
            np.asarray(config["ages"]),
            float(config["range_mass"]),
            float(config["range_min_half_width"]),
        )
    if GENDER in wanted:
        config = pack.preprocessing["gender"]
        probabilities = _model("gender").classify(image, points68)
        best = int(np.argmax(probabilities))
        found["gender"] = (config["labels"][best], 100.0 * float(probabilities[best]))
    if EYES_OPEN in wanted:
        model = _model("eye")
        both = [model.open_probability(image, points68, eye) for eye in (LEFT_EYE, RIGHT_EYE)]
        found["eyes_open"] = _binary(float(np.mean(both)))
    if wanted & {EMOTIONS, SMILE}:
        found |= _expression(pack, image, points68, wanted)
    return FaceAttributes(**found)


def _expression(
    pack: AttributePack, image: Image.Image, points68: np.ndarray, wanted: frozenset[str]
) -> dict:
    """Emotions and Smile, from one run of the expression net."""
    config = pack.preprocessing["expression"]
    probabilities = _model("expression").probabilities(image, points68)
    found: dict[str, Any] = {}
    if EMOTIONS in wanted:
        found["emotions"] = expressions.emotions(probabilities, config["labels"])
    if SMILE in wanted:
        p_happy = float(probabilities[config["labels"].index("happy")])
        value, confidence = expressions.smile(p_happy, float(config["smile_happy_threshold"]))
        found["smile"] = BinaryAttribute(value=value, confidence=confidence)
    return found
