"""Check the ONNX expression net against face-api's own JavaScript on tfjs: same face crops, both outputs.

    npm install --prefix build/tfjs-check @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 \\
        @tensorflow/tfjs-backend-webgl@4.22.0
    .venv/bin/python layers/models/check_expression_tfjs.py --node-modules build/tfjs-check/node_modules \\
        [--manifest ../shared/facedata/dev/manifest.json]

face-api's ESM build without tfjs bundled (dist/face-api.esm-nobundle.js) imports tfjs by file paths that
Node's ESM loader cannot resolve; a copy naming the packages instead is run (nothing else is changed). Each
face crop (face-api's own box around our 68 landmarks) goes to face-api's predictExpressions as an int32
tensor, so face-api does its own square padding, resize and normalisation; the ONNX side does ours. Prints the
largest probability difference and how often the two agree on the top class; exits 1 above MAX_DIFFERENCE.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from facesearch.devtools import registry
from facesearch.settings import REPO_ROOT
from facesearch.vision import expressions
from facesearch.vision.attributes import get_attribute_pack
from facesearch.vision.decode import decode_pil
from facesearch.vision.pipeline import get_pipeline

HERE = Path(__file__).resolve().parent
CACHE = REPO_ROOT / "build" / "cache"
NOBUNDLE = "package/dist/face-api.esm-nobundle.js"
MODEL_MEMBERS = [
    "package/model/face_expression_model-weights_manifest.json",
    "package/model/face_expression_model.bin",
]
SAMPLES = [f"package/demo/sample{i}.jpg" for i in range(1, 7)]
# float32 on two runtimes with different op orders: agreement to this is the same network.
MAX_DIFFERENCE = 1e-3
DEV_PHOTOS = 40  # the first photos of the dev manifest, in its order, when --manifest is given


def crops(photos: list[Path]) -> list[np.ndarray]:
    pipeline = get_pipeline()
    out = []
    for photo in photos:
        image = decode_pil(photo.read_bytes(), 100_000_000)
        boxes, _ = pipeline.detect(image)
        for box in boxes:
            points = pipeline.landmark_model.locate(image, box)
            out.append(np.asarray(image.crop(expressions.face_box(points, image.width, image.height))))
    return out


def run_face_api(node_modules: Path, faces: list[np.ndarray]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (source,) = registry.extract(registry.FACE_API, [NOBUNDLE], work / "dist")
        text = source.read_text()
        for package in ("tfjs", "tfjs-backend-wasm", "tfjs-backend-webgl"):
            text = text.replace(f'"@tensorflow/{package}/dist/index.js"', f'"@tensorflow/{package}"')
        module = work / "face-api.mjs"
        module.write_text(text)
        (work / "node_modules").symlink_to(node_modules.resolve())
        models = registry.extract(registry.FACE_API, MODEL_MEMBERS, work / "model")
        request = {
            "dir": str(models[0].parent),
            "inputs": [
                {"h": f.shape[0], "w": f.shape[1], "data": base64.b64encode(f.tobytes()).decode()}
                for f in faces
            ],
        }
        result = subprocess.run(
            ["node", str(HERE / "expression_tfjs.mjs"), str(module)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-modules", type=Path, required=True, help="holds @tensorflow/tfjs 4.22.0")
    parser.add_argument("--manifest", type=Path, help="also the first photos of this dev set")
    args = parser.parse_args(argv)
    photos = registry.extract(registry.FACE_API, SAMPLES, CACHE / "samples")
    if args.manifest:
        manifest = json.loads(args.manifest.read_text())
        paths = [p for ps in manifest["identities"].values() for p in ps]
        photos += [args.manifest.parent / p for p in paths[:DEV_PHOTOS]]
    faces = crops(photos)
    pack = get_attribute_pack()
    model = expressions.ExpressionModel(pack.files["expression"], pack.preprocessing["expression"], 1)
    ours = np.array([model.probabilities_of(face) for face in faces])
    theirs_run = run_face_api(args.node_modules, faces)
    theirs = np.array(theirs_run["probabilities"])
    difference = float(np.abs(ours - theirs).max())
    agree = int((ours.argmax(axis=1) == theirs.argmax(axis=1)).sum())
    sizes = [f"{f.shape[1]}x{f.shape[0]}" for f in sorted(faces, key=lambda f: f.shape[0] * f.shape[1])]
    result = {
        "photos": len(photos),
        "faces": len(faces),
        "crop_sizes": f"{sizes[0]} .. {sizes[-1]}",
        "tfjs": f"{theirs_run['version']} ({theirs_run['backend']})",
        "max_abs_difference": difference,
        "top_class_agreement": f"{agree}/{len(faces)}",
        "bar": MAX_DIFFERENCE,
    }
    print(json.dumps(result))
    return 0 if difference <= MAX_DIFFERENCE else 1


if __name__ == "__main__":
    sys.exit(main())
