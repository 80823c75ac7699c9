"""Fetch a pinned npm package tarball by name with the npm client, verify its sha256 and extract members."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from facesearch.settings import REPO_ROOT
from facesearch.vision.pack import sha256_file

DEFAULT_CACHE = REPO_ROOT / "build" / "registry"


@dataclass(frozen=True)
class NpmPackage:
    """A package pinned by version and by the sha256 of the tarball ``npm pack`` returns."""

    name: str
    version: str
    sha256: str
    license: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


# The registry packages this project takes files from (weights, demo and test photos).
FACEPLUGIN = NpmPackage(
    name="faceplugin-face-recognition-js",
    version="0.0.1",
    sha256="7ea06031d9a3f83753254fcff60506a07b81b46fc84d4ee024cd041f260ec1ba",
    license="MIT",
)
FACE_API = NpmPackage(
    name="@vladmandic/face-api",
    version="1.7.15",
    sha256="0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
    license="MIT",
)


def fetch_tarball(package: NpmPackage, cache: Path = DEFAULT_CACHE) -> Path:
    """Return the verified tarball, running ``npm pack`` only when the cache lacks it."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / package.tarball_name
    if not target.exists():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            subprocess.run(
                ["npm", "pack", package.spec, "--pack-destination", tmp, "--silent"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            shutil.move(str(Path(tmp) / package.tarball_name), target)
    actual = sha256_file(target)
    if actual != package.sha256:
        target.unlink()
        raise RuntimeError(f"{package.spec}: tarball sha256 {actual} does not match the pin {package.sha256}")
    return target


def extract(package: NpmPackage, members: list[str], dest: Path, cache: Path = DEFAULT_CACHE) -> list[Path]:
    """Extract ``members`` (paths inside the tarball, e.g. ``package/model/x.onnx``) flat into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    with tarfile.open(fetch_tarball(package, cache)) as tar:
        for member in members:
            target = dest / Path(member).name
            if not target.exists():
                source = tar.extractfile(member)
                if source is None:
                    raise RuntimeError(f"{package.spec}: {member} is not a file")
                tmp = target.with_suffix(target.suffix + ".part")
                tmp.write_bytes(source.read())
                tmp.replace(target)
            out.append(target)
    return out
