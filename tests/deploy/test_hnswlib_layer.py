"""Segments written by the local hnswlib install load in the Lambda layer's build of it, and the reverse.

The layer is assembled from prebuilt wheels for the runtime's platform (layers/deps/Makefile) while the
local install comes from the project's dependencies: both must be the same index format. The layer's part
is built here with the layer's own Makefile, pins and platform flags, for this host's architecture, and
run by the runtime's Python (python3.12) with nothing but that folder on its path.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facesearch.domain import BoundingBox, FaceRecord
from facesearch.settings import REPO_ROOT
from facesearch.store import segment
from facesearch.store.manifest import IndexParams, SegmentRef

DEPS = REPO_ROOT / "layers" / "deps"
RUNTIME = re.search(r"Runtime: (python3\.\d+)", (REPO_ROOT / "template.yaml").read_text()).group(1)
ARCHITECTURE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[
    platform.machine().lower()
]
PARAMS = IndexParams(space="cosine", dim=64, m=16, ef_construction=100, ef=64)
COUNT = 300

# Run by the runtime's Python against the layer: build or load an index, answer the queries.
LAYER_SIDE = """
import json, sys
import hnswlib, numpy as np
job = json.load(sys.stdin)
p = job["params"]
index = hnswlib.Index(space=p["space"], dim=p["dim"])
vectors = np.asarray(job["vectors"], dtype=np.float32)
if job["mode"] == "write":
    index.init_index(
        max_elements=len(vectors), ef_construction=p["ef_construction"], M=p["m"], random_seed=100
    )
    index.add_items(vectors, np.arange(len(vectors)))
    index.save_index(job["path"])
else:
    index.load_index(job["path"], max_elements=len(vectors))
index.set_ef(p["ef"])
labels, distances = index.knn_query(vectors[: job["queries"]], k=5)
print(json.dumps({"module": hnswlib.__file__, "count": index.get_current_count(),
                  "labels": labels.tolist(), "distances": distances.tolist()}))
"""


def runtime_python() -> str | None:
    """The runtime's Python: pyenv's build of that version (a shim on PATH may not resolve), else PATH's."""
    if shutil.which("pyenv"):
        prefix = subprocess.run(
            ["pyenv", "prefix", RUNTIME.removeprefix("python")], capture_output=True, text=True
        )
        candidate = Path(prefix.stdout.strip()) / "bin" / RUNTIME
        if prefix.returncode == 0 and candidate.exists():
            return str(candidate)
    return shutil.which(RUNTIME)


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> tuple[str, Path]:
    """(runtime python, the layer's python/ folder holding hnswlib and numpy as the layer pins them)."""
    python = runtime_python()
    if python is None:
        pytest.skip(f"{RUNTIME} (the template's runtime) is not installed")
    folder = tmp_path_factory.mktemp("deps-layer")
    pins = [
        line
        for line in (DEPS / "requirements.txt").read_text().splitlines()
        if re.match(r"(chroma-hnswlib|numpy)==", line)
    ]
    assert len(pins) == 2, pins
    requirements = folder / "requirements.txt"
    requirements.write_text("\n".join(pins) + "\n")
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(DEPS / ARCHITECTURE / "Makefile"),
            "build-DepsLayer",
            f"ARTIFACTS_DIR={folder / 'artifacts'}",
            f"REQUIREMENTS={requirements}",
            f"PYTHON={sys.executable}",
        ],
        check=True,
    )
    return python, folder / "artifacts" / "python"


def run_layer(layer: tuple[str, Path], job: dict) -> dict:
    python, path = layer
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(path), "PYTHONNOUSERSITE": "1"}
    done = subprocess.run(
        [python, "-s", "-c", LAYER_SIDE], input=json.dumps(job), env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert Path(result["module"]).is_relative_to(path), f"hnswlib imported from {result['module']}"
    return result


def unit_vectors(seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((COUNT, PARAMS.dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def records() -> tuple[FaceRecord, ...]:
    box = BoundingBox(left=0.1, top=0.1, width=0.2, height=0.2)
    return tuple(FaceRecord(f"face-{i}", "image", None, box, 99.0, "1.0") for i in range(COUNT))


def job(mode: str, path: Path, vectors: np.ndarray) -> dict:
    params = {
        "space": PARAMS.space,
        "dim": PARAMS.dim,
        "m": PARAMS.m,
        "ef_construction": PARAMS.ef_construction,
        "ef": PARAMS.ef,
    }
    return {"mode": mode, "path": str(path), "vectors": vectors.tolist(), "queries": 20, "params": params}


def test_layer_reads_a_segment_the_local_install_wrote(layer, tmp_path):
    vectors = unit_vectors(1)
    built = segment.build("seg", records(), vectors, PARAMS, "1.0")
    path = tmp_path / "local.bin"
    path.write_bytes(built.bin_body)

    result = run_layer(layer, job("read", path, vectors))

    assert result["count"] == COUNT
    labels, _ = built.index.knn_query(vectors[:20], k=5)
    assert result["labels"] == labels.tolist()
    assert [row[0] for row in result["labels"]] == list(range(20))


def test_local_install_reads_a_segment_the_layer_wrote(layer, tmp_path):
    vectors = unit_vectors(2)
    path = tmp_path / "layer.bin"

    written = run_layer(layer, job("write", path, vectors))

    ref = SegmentRef(
        segment_id="seg", count=COUNT, bin_sha256="", json_sha256="", bin_bytes=path.stat().st_size
    )
    index = segment.load_graph(path, ref, PARAMS)
    labels, distances = index.knn_query(vectors[:20], k=5)
    assert labels.tolist() == written["labels"]
    assert np.allclose(distances, np.asarray(written["distances"]), atol=1e-5)
