"""Face verification accuracy of the full pipeline on a labelled manifest; last line is one JSON object.

    .venv/bin/python bench/accuracy.py --manifest ../shared/facedata/dev/manifest.json [--precision int8|fp32]
        [--flip] [--fit-similarity layers/models/similarity.json]

Every image referenced by the manifest's pairs goes through decode -> detect -> landmarks -> align ->
embed; the largest face stands for the image (none found: a detection failure, cosine -1).
accuracy: 10-fold best-threshold over the manifest's pairs. TAR at FAR: over all pairs of distinct
images referenced by the pairs (genuine = same identity). --fit-similarity writes the Similarity map's
constants (c50 = cosine at FAR 1e-2, k = ln 4 / (cosine at FAR 1e-3 - c50)) for the pack build.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FP32_MODELS_DIR = REPO / "build" / "cache" / "packs-fp32"
FOLDS = 10


def ten_fold_accuracy(scores: np.ndarray, same: np.ndarray) -> float:
    """Mean accuracy over 10 folds, each scored at the threshold best on the other nine."""
    folds = np.array_split(np.arange(len(scores)), FOLDS)
    candidates = np.unique(scores)
    correct = 0
    for fold in folds:
        train = np.setdiff1d(np.arange(len(scores)), fold)
        accuracy = [((scores[train] >= t) == same[train]).mean() for t in candidates]
        threshold = candidates[int(np.argmax(accuracy))]
        correct += int(((scores[fold] >= threshold) == same[fold]).sum())
    return correct / len(scores)


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """The cosine above which a fraction ``far`` of impostor scores lie."""
    ordered = np.sort(impostor)[::-1]
    index = max(0, math.ceil(far * len(ordered)) - 1)
    return float(ordered[index])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    parser.add_argument("--flip", action="store_true", help="test-time augmentation: add the mirrored face")
    parser.add_argument("--fit-similarity", type=Path, help="write the fitted similarity constants here")
    args = parser.parse_args(argv)
    if args.precision == "fp32":
        # The fp32 originals are kept by the pack build in its cache, outside the models layer.
        from facesearch.settings import ENV_MODELS_DIR

        os.environ[ENV_MODELS_DIR] = str(FP32_MODELS_DIR)
    from facesearch.settings import get_settings
    from facesearch.vision.decode import decode_pil
    from facesearch.vision.pipeline import get_pipeline

    started = time.perf_counter()
    manifest = json.loads(args.manifest.read_text())
    root = args.manifest.parent
    identity = {path: name for name, paths in manifest["identities"].items() for path in paths}
    pairs = manifest["pairs"]
    images = sorted({p for a, b, _ in pairs for p in (a, b)})
    pipeline = get_pipeline()
    embeddings: dict[str, np.ndarray | None] = {}
    embed_seconds = 0.0
    for path in images:
        image = decode_pil((root / path).read_bytes(), get_settings().max_image_pixels)
        analysis = pipeline.analyze_image(image, embed=not args.flip, max_faces=1)
        if not analysis.faces:
            embeddings[path] = None
            continue
        if args.flip:
            # Re-run the largest face's landmarks to embed the aligned face and its mirror image.
            boxes, _ = pipeline.detect(image, enough=1)
            largest = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
            aligned = pipeline.align(image, pipeline.landmark_model.locate(image, largest))
            t = time.perf_counter()
            vector = pipeline.embedder.embed(aligned) + pipeline.embedder.embed(aligned[:, ::-1].copy())
            embed_seconds += time.perf_counter() - t
            embeddings[path] = vector / np.linalg.norm(vector)
        else:
            embeddings[path] = analysis.faces[0].embedding

    def cosine(a: str, b: str) -> float:
        ea, eb = embeddings[a], embeddings[b]
        return -1.0 if ea is None or eb is None else float(ea @ eb)

    scores = np.array([cosine(a, b) for a, b, _ in pairs])
    same = np.array([bool(s) for _, _, s in pairs])
    accuracy = ten_fold_accuracy(scores, same)
    genuine, impostor = [], []
    for i, a in enumerate(images):
        for b in images[i + 1 :]:
            (genuine if identity[a] == identity[b] else impostor).append(cosine(a, b))
    genuine, impostor = np.array(genuine), np.array(impostor)
    result = {
        "manifest": str(args.manifest),
        "model_version": pipeline.pack.face_model_version,
        "precision": args.precision,
        "flip": args.flip,
        "images": len(images),
        "pairs": len(pairs),
        "accuracy": round(accuracy, 4),
        "genuine_pairs_all": len(genuine),
        "impostor_pairs_all": len(impostor),
        "detect_fail_rate": round(sum(v is None for v in embeddings.values()) / len(images), 4),
    }
    for exponent in (2, 3, 4):
        threshold = threshold_at_far(impostor, 10.0**-exponent)
        result[f"cos_at_far_1e-{exponent}"] = round(threshold, 4)
        result[f"tar_at_far_1e-{exponent}"] = round(float((genuine > threshold).mean()), 4)
    pack = pipeline.pack
    for level in (50.0, 80.0):
        # What the pack's own Similarity map gives at FaceMatchThreshold = level.
        cut = pack.cosine_for_similarity(level)
        result[f"similarity_{level:.0f}"] = {
            "cosine": round(cut, 4),
            "tar": round(float((genuine >= cut).mean()), 4),
            "far": float((impostor >= cut).mean()),
        }
    if args.flip:
        result["flip_embed_ms_per_face"] = round(1000 * embed_seconds / max(1, len(images)), 2)
    if args.fit_similarity:
        c50, c80 = result["cos_at_far_1e-2"], result["cos_at_far_1e-3"]
        k = math.log(4) / (c80 - c50)
        constants = {
            "function": "logistic",
            "c50": c50,
            "k": round(k, 4),
            "fit": {
                "how": "bench/accuracy.py --fit-similarity: Similarity 50 at FAR 1e-2, 80 at FAR 1e-3",
                "manifest": "/".join(args.manifest.resolve().parts[-3:]),
                "model_version": pack.face_model_version,
                "genuine_pairs": len(genuine),
                "impostor_pairs": len(impostor),
                "at_similarity_80": {"cosine": c80, "far": 1e-3, "tar": result["tar_at_far_1e-3"]},
                "at_similarity_50": {"cosine": c50, "far": 1e-2, "tar": result["tar_at_far_1e-2"]},
            },
        }
        args.fit_similarity.write_text(json.dumps(constants, indent=2) + "\n")
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
