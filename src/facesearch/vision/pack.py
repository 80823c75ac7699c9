"""Model packs: a folder of ONNX models plus manifest.json, one folder per FaceModelVersion."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facesearch import errors
from facesearch.lazy import once
from facesearch.settings import get_settings

MANIFEST_NAME = "manifest.json"
# Bumped when the manifest layout changes incompatibly; a reader refuses packs it does not understand.
MANIFEST_SCHEMA = 1
# The three model roles every pack provides (keys of manifest["models"]).
ROLES = ("detect", "landmark", "embed")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class DetectConfig:
    """Detector preprocessing and decoding constants (UltraFace RFB-320)."""

    input_width: int
    input_height: int
    mean: float
    scale: float
    score_threshold: float
    nms_iou: float
    min_face_px: float  # smallest face (px at detector input) the detector finds reliably: sets the tiling


@dataclass(frozen=True)
class LandmarkConfig:
    """Landmark model preprocessing constants (68-point, grey crop)."""

    input_size: int
    scale: float


@dataclass(frozen=True)
class EmbedConfig:
    """Embedder preprocessing constants and the 5-point alignment template."""

    input_size: int
    mean: float
    scale: float
    channel_order: str  # "BGR" or "RGB"
    template: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class ModelPack:
    """One model pack, built from its manifest.json; a collection is pinned to its ``face_model_version``."""

    face_model_version: str  # what Rekognition calls FaceModelVersion, e.g. "1.0"
    dim: int
    root: Path
    released: str
    detect_file: Path
    landmark_file: Path
    embed_file: Path
    detect: DetectConfig
    landmark: LandmarkConfig
    embed: EmbedConfig
    similarity_c50: float  # cosine at which Similarity is 50
    similarity_k: float  # logistic slope

    @classmethod
    def load(cls, root: Path, verify: bool = True) -> ModelPack:
        """Read ``root/manifest.json``; with ``verify``, check every model file against its sha256."""
        manifest = json.loads((root / MANIFEST_NAME).read_text())
        if manifest.get("schema") != MANIFEST_SCHEMA:
            raise errors.InternalServerError(
                f"model pack {root}: manifest schema {manifest.get('schema')!r}, expected {MANIFEST_SCHEMA}"
            )
        models = manifest["models"]
        if verify:
            for role in ROLES:
                actual = sha256_file(root / models[role]["file"])
                if actual != models[role]["sha256"]:
                    raise errors.InternalServerError(
                        f"model pack {root}: {models[role]['file']} sha256 {actual} differs from its manifest"
                    )
        pre = manifest["preprocessing"]
        sim = manifest["similarity"]
        return cls(
            face_model_version=manifest["face_model_version"],
            dim=int(manifest["dim"]),
            root=root,
            released=manifest["released"],
            detect_file=root / models["detect"]["file"],
            landmark_file=root / models["landmark"]["file"],
            embed_file=root / models["embed"]["file"],
            detect=DetectConfig(**pre["detect"]),
            landmark=LandmarkConfig(**pre["landmark"]),
            embed=EmbedConfig(**{**pre["embed"], "template": tuple(map(tuple, pre["embed"]["template"]))}),
            similarity_c50=float(sim["c50"]),
            similarity_k=float(sim["k"]),
        )

    def similarity(self, cosine):
        """Calibrated Similarity 0..100 of a cosine (float or array): 50 at FAR 1e-2, 80 at FAR 1e-3."""
        z = np.clip(
            -self.similarity_k * (np.asarray(cosine, dtype=np.float64) - self.similarity_c50), -700, 700
        )
        result = 100.0 / (1.0 + np.exp(z))
        return float(result) if np.ndim(result) == 0 else result

    def cosine_for_similarity(self, similarity: float) -> float:
        """The smallest cosine whose Similarity reaches ``similarity`` (inverse map), within [-1, 1]."""
        if similarity <= 0:
            return -1.0
        if similarity >= 100:
            return 1.0
        cosine = self.similarity_c50 - math.log(100.0 / similarity - 1.0) / self.similarity_k
        return min(1.0, max(-1.0, cosine))


@once
def _installed() -> dict[str, Path]:
    """FaceModelVersion -> pack folder under ``settings.models_dir``, newest first (read once)."""
    found = {}
    for manifest in sorted(get_settings().models_dir.glob(f"*/{MANIFEST_NAME}")):
        if manifest.parent.name.startswith("."):
            continue  # a build's staging folder, not an installed pack
        data = json.loads(manifest.read_text())
        found[data["face_model_version"]] = (data.get("released", ""), manifest.parent)
    # Newest first: by release date, then by name, so the default is deterministic.
    ordered = sorted(found.items(), key=lambda item: (item[1][0], item[0]), reverse=True)
    return {version: root for version, (_, root) in ordered}


@once
def _load(face_model_version: str) -> ModelPack:
    return ModelPack.load(_installed()[face_model_version])


def available_versions() -> list[str]:
    """FaceModelVersions of the packs installed under ``settings.models_dir``, newest first."""
    return list(_installed())


@once
def get_pack(face_model_version: str | None = None) -> ModelPack:
    """The pack for ``face_model_version`` (default: ``settings.face_model_version``, else the newest).

    The default and its explicit name return the same object, so nothing is loaded twice.
    """
    settings = get_settings()
    packs = _installed()
    wanted = face_model_version or settings.face_model_version
    if not packs:
        raise errors.InternalServerError(
            f"no model pack found under {settings.models_dir}; build one with `make models`"
        )
    if wanted is None:
        wanted = next(iter(packs))
    if wanted not in packs:
        raise errors.InternalServerError(
            f"face model version {wanted!r} is not installed under {settings.models_dir} "
            f"(installed: {', '.join(packs)})"
        )
    return _load(wanted)
