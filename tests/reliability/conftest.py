"""Reliability suite fixtures: `facesearch serve` processes, the demo photos, a folder-store snapshot, and the
report every test adds its figures to (printed at the end, written to build/reliability/report.json)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from PIL import Image

from facesearch.devtools.registry import FACE_API, extract
from facesearch.settings import ENV_STORE, REPO_ROOT

REPORT_PATH = REPO_ROOT / "build" / "reliability" / "report.json"
DEMO_PHOTOS = [f"package/demo/sample{i}.jpg" for i in range(1, 7)]
REGION = "us-east-1"
SERVE_START_SECONDS = 60.0
_REPORT: dict[str, dict] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: the reliability suite (`make reliability`, run once by CI)"
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _REPORT:
        return
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(REPORT_PATH.read_text()) if REPORT_PATH.exists() else {}
    REPORT_PATH.write_text(json.dumps({**previous, **_REPORT}, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def report():
    """``report(section, **figures)``: figures for the README's Reliability section."""

    def add(section: str, **figures) -> None:
        _REPORT.setdefault(section, {}).update(figures)
        sys.stderr.write(f"\nreliability {section}: {json.dumps(figures, sort_keys=True)}\n")

    return add


@pytest.fixture(scope="session")
def demo_photos(tmp_path_factory) -> list[bytes]:
    """The MIT demo photos of @vladmandic/face-api (group photos, 3-4 faces each), from the registry."""
    folder = tmp_path_factory.mktemp("face-api-demo")
    return [path.read_bytes() for path in extract(FACE_API, DEMO_PHOTOS, folder)]


@pytest.fixture(scope="session")
def small_face(demo_photos) -> bytes:
    """Demo photo 1 scaled down: faces still found, the pipeline faster."""
    image = Image.open(io.BytesIO(demo_photos[0]))
    image.thumbnail((480, 480))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=90)
    return out.getvalue()


def rekognition(url: str, attempts: int = 1, read_timeout: float = 120.0):
    """An unchanged boto3 client; ``attempts`` 1 shows every answer as the server gave it."""
    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="a",
        aws_secret_access_key="b",
        config=Config(retries={"mode": "standard", "max_attempts": attempts}, read_timeout=read_timeout),
    )


@dataclass
class ServeProcess:
    """One `facesearch serve` child process."""

    process: subprocess.Popen
    url: str

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the server."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_serve(store: Path | str, idle_timeout: float = 5.0) -> ServeProcess:
    """`python -m facesearch serve --port 0` on ``store``; returns once it printed its URL."""
    command = [sys.executable, "-m", "facesearch", "serve", "--store", str(store), "--port", "0"]
    process = subprocess.Popen(
        [*command, "--idle-timeout", str(idle_timeout)],
        cwd=REPO_ROOT,
        env={**os.environ, "AWS_REGION": REGION, "POWERTOOLS_LOG_LEVEL": "CRITICAL"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + SERVE_START_SECONDS
    banner = process.stdout.readline() if process.stdout else ""
    match = re.search(r"http://127\.0\.0\.1:\d+", banner)
    if not match or time.monotonic() > deadline:
        process.kill()
        raise RuntimeError(f"facesearch serve did not start: {banner!r}")
    return ServeProcess(process, match.group(0))


@contextlib.contextmanager
def serving(store: Path | str, count: int = 1, idle_timeout: float = 5.0) -> Iterator[list[ServeProcess]]:
    servers = [start_serve(store, idle_timeout) for _ in range(count)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def snapshot(root: Path, skip: tuple[str, ...] = ("/idempotency/",)) -> dict[str, str]:
    """sha256 of every object file of a folder store (locks, temp files and ``skip`` paths left out)."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if not path.is_file() or any(part.startswith(".") for part in relative.split("/")):
            continue
        if any(fragment in f"/{relative}" for fragment in skip):
            continue
        found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def folder_store(tmp_path, monkeypatch) -> Path:
    store = tmp_path / "store"
    monkeypatch.setenv(ENV_STORE, str(store))
    return store
