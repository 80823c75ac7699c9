"""Shared fixtures: a fresh container per test, and the labelled face set when it is present."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from facesearch import lazy
from facesearch.settings import ENV_FACEDATA_DIR, REPO_ROOT

FACEDATA_DIR = Path(os.environ.get(ENV_FACEDATA_DIR) or REPO_ROOT.parent / "shared" / "facedata" / "dev")


@pytest.fixture(autouse=True)
def fresh_container():
    """Every test starts as a cold Lambda container: no cached sessions, clients, indexes or settings."""
    lazy.reset_all()
    yield
    lazy.reset_all()


@pytest.fixture(scope="session")
def facedata() -> dict:
    """The labelled dev face set (../shared/facedata/dev); tests that need it skip on a fresh clone."""
    manifest = FACEDATA_DIR / "manifest.json"
    if not manifest.exists():
        pytest.skip(
            f"labelled face set not found at {FACEDATA_DIR} (set {ENV_FACEDATA_DIR}); it is not shipped"
        )
    data = json.loads(manifest.read_text())
    data["root"] = FACEDATA_DIR
    return data


@pytest.fixture(scope="session")
def model_pack() -> Path:
    """The INT8 model pack under build/models, built by `make models` (or here, once, if it is missing)."""
    import subprocess
    import sys

    models_dir = REPO_ROOT / "build" / "models"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "layers" / "models" / "build_pack.py"), "--out", str(models_dir)],
        check=True,
    )
    return models_dir
