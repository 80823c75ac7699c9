"""Check `sam build`'s artifacts: size limit, architecture, the runtime's glibc/libstdc++, a real invocation.

Usage (what ``make sam-check`` runs after ``sam build``)::

    python layers/check_build.py --build-dir .aws-sam/build --runtime-sdk build/lambda-runtime

1. The unzipped size of the function plus its layers is at most Lambda's 250 MB (printed).
2. Every native library (ELF shared object) in the artifacts is built for ``--architecture`` (its ELF
   e_machine: EM_X86_64 for x86_64, EM_AARCH64 for arm64; the layer is assembled from wheels for the target
   platform, whatever the build host), and none needs a glibc, libstdc++ or C++ ABI newer than the
   runtime's Amazon Linux provides.
3. Only when the host can execute that architecture: the runtime's Python version, with nothing on its
   path but the built function, the built layers' python/ folders and boto3 (which the Lambda runtime
   provides; ``--runtime-sdk`` holds it), imports the handler and answers direct invokes: ListCollections,
   DetectFaces, CreateCollection, IndexFaces and SearchFacesByImage on a folder store with the built
   models layer as FACESEARCH_MODELS_DIR; then the maintenance handler (MaintenanceFunction runs the same
   code) answers the scheduled event.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EVENTS = ROOT / "events"
FUNCTION = "FaceSearchFunction"
LAYERS = {"DepsLayer": "python", "ModelsLayer": "models"}
# Lambda: 250 MB for the function and all its layers, unzipped (262,144,000 bytes).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
# The newest symbol versions each runtime's OS provides. python3.12/3.13 run on Amazon Linux 2023:
# glibc 2.34 and GCC 11's libstdc++ (GLIBCXX_3.4.29, CXXABI_1.3.13).
RUNTIME_LIBRARIES = {
    "python3.12": {"GLIBC": (2, 34), "GLIBCXX": (3, 4, 29), "CXXABI": (1, 3, 13)},
    "python3.13": {"GLIBC": (2, 34), "GLIBCXX": (3, 4, 29), "CXXABI": (1, 3, 13)},
}
# ELF e_machine of each Lambda architecture, and the names `uname -m` gives a host of that architecture.
ELF_MACHINES = {"x86_64": 62, "arm64": 183}
ELF_MACHINE_NAMES = {62: "EM_X86_64 (x86_64)", 183: "EM_AARCH64 (aarch64)", 3: "EM_386", 40: "EM_ARM"}
HOST_MACHINES = {"x86_64": {"x86_64", "amd64"}, "arm64": {"aarch64", "arm64"}}
_SYMBOL_VERSION = re.compile(r"\b(GLIBC|GLIBCXX|CXXABI)_(\d+(?:\.\d+)+)\b")


def tree_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def check_size(build_dir: Path) -> int:
    """Print each artifact's unzipped size and the total; fail over Lambda's limit."""
    total = 0
    for name in [FUNCTION, *LAYERS]:
        size = tree_bytes(build_dir / name)
        total += size
        print(f"  {name:<20} {size / 1e6:8.1f} MB")
    print(f"  {'total unzipped':<20} {total / 1e6:8.1f} MB (limit {MAX_UNZIPPED_BYTES / 1e6:.1f} MB)")
    if total > MAX_UNZIPPED_BYTES:
        raise SystemExit(f"function + layers unzipped is {total} bytes, over Lambda's {MAX_UNZIPPED_BYTES}")
    return total


def required_versions(library: Path) -> dict[str, tuple[int, ...]]:
    """The newest GLIBC/GLIBCXX/CXXABI symbol version ``library`` imports (from its dynamic symbols)."""
    listing = subprocess.run(
        ["objdump", "-T", str(library)], capture_output=True, text=True, check=True
    ).stdout
    newest: dict[str, tuple[int, ...]] = {}
    for line in listing.splitlines():
        if "*UND*" not in line:
            continue
        for family, version in _SYMBOL_VERSION.findall(line):
            parsed = tuple(int(part) for part in version.split("."))
            newest[family] = max(newest.get(family, parsed), parsed)
    return newest


def elf_machine(library: Path) -> int:
    """The ELF header's e_machine; both Lambda architectures run 64-bit little-endian ELF."""
    with library.open("rb") as f:
        header = f.read(20)
    if header[:4] != b"\x7fELF":
        raise SystemExit(f"{library} is not an ELF shared object")
    if header[4] != 2 or header[5] != 1:
        raise SystemExit(f"{library} is not 64-bit little-endian ELF (class {header[4]}, data {header[5]})")
    return int.from_bytes(header[18:20], "little")


def host_runs(architecture: str) -> bool:
    """Whether this host can execute the architecture's binaries natively."""
    return platform.machine().lower() in HOST_MACHINES[architecture]


def check_native_libraries(build_dir: Path, runtime: str, architecture: str) -> None:
    """Fail on libraries for another architecture or needing newer glibc/libstdc++ than the runtime's."""
    limits = RUNTIME_LIBRARIES[runtime]
    newest: dict[str, tuple[tuple[int, ...], Path]] = {}
    failures = []
    machines: dict[int, int] = {}
    for library in sorted(build_dir.rglob("*.so*")):
        if not library.is_file() or library.is_symlink():
            continue
        machine = elf_machine(library)
        machines[machine] = machines.get(machine, 0) + 1
        if machine != ELF_MACHINES[architecture]:
            failures.append(
                f"{library} is {ELF_MACHINE_NAMES.get(machine, machine)}, not built for {architecture}"
            )
        for family, version in required_versions(library).items():
            if family not in newest or version > newest[family][0]:
                newest[family] = (version, library)
    for family, (version, library) in sorted(newest.items()):
        allowed = limits[family]
        shown = ".".join(map(str, version))
        print(f"  newest {family:<8} {shown:<10} ({library.relative_to(build_dir)}); {runtime} has {allowed}")
        if version > allowed:
            failures.append(f"{library} needs {family}_{shown}, newer than {runtime}'s")
    found = ", ".join(f"{n} {ELF_MACHINE_NAMES.get(m, f'e_machine {m}')}" for m, n in machines.items())
    print(f"  {sum(machines.values())} shared objects checked for {architecture}: {found or 'none'}")
    if failures:
        raise SystemExit("\n".join(failures))


def check_invocation(build_dir: Path, runtime: str, runtime_sdk: Path) -> None:
    """Run ``smoke`` under the runtime's Python with only the built artifacts (and boto3) importable."""
    python_path = [build_dir / FUNCTION, build_dir / "DepsLayer" / "python", runtime_sdk]
    with tempfile.TemporaryDirectory(prefix="facesearch-smoke-") as scratch:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": scratch,
            "PYTHONPATH": os.pathsep.join(str(path) for path in python_path),
            "PYTHONNOUSERSITE": "1",
            # Leave the artifacts as sam build made them (their size was measured above).
            "PYTHONDONTWRITEBYTECODE": "1",
            "FACESEARCH_MODELS_DIR": str(build_dir / "ModelsLayer" / "models"),
            "FACESEARCH_STORE": str(Path(scratch) / "store"),
            "FACESEARCH_CACHE_DIR": str(Path(scratch) / "cache"),
            "POWERTOOLS_SERVICE_NAME": "facesearch",
            "POWERTOOLS_METRICS_NAMESPACE": "FaceSearch",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        command = [runtime, "-s", str(Path(__file__).resolve()), "smoke"]
        subprocess.run(command, env=env, check=True, cwd=scratch)


class _Context:
    """The Lambda context attributes the handler and Powertools read."""

    aws_request_id = "00000000-0000-0000-0000-000000000000"
    function_name = FUNCTION
    function_version = "$LATEST"
    memory_limit_in_mb = 3008
    invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
    log_group_name = f"/aws/lambda/{FUNCTION}"
    log_stream_name = "smoke"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


class _MaintenanceContext(_Context):
    """MaintenanceFunction's context: its 900 s timeout still ahead."""

    function_name = "MaintenanceFunction"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def smoke() -> None:
    """Inside the runtime's Python: import from the artifacts only, then answer real direct invokes."""
    import hnswlib
    import numpy
    import onnxruntime
    import PIL

    import facesearch
    from facesearch.handler import lambda_handler, maintenance_handler

    for module in (facesearch, numpy, onnxruntime, PIL, hnswlib):
        where = Path(module.__file__).resolve()
        if not any(str(where).startswith(path) for path in os.environ["PYTHONPATH"].split(os.pathsep)):
            raise SystemExit(f"{module.__name__} imported from {where}, not from the built artifacts")

    def call(event: dict) -> dict:
        result = lambda_handler(event, _Context())
        print(f"  {event['Operation']}: StatusCode {result['StatusCode']}")
        if result["StatusCode"] != 200:
            raise SystemExit(f"{event['Operation']} failed: {json.dumps(result)}")
        return result["Body"]

    def load(name: str) -> dict:
        return json.loads((EVENTS / f"{name}.json").read_text())

    face = load("direct-detect-faces")["Parameters"]["Image"]
    if call(load("direct-list-collections"))["CollectionIds"] != []:
        raise SystemExit("ListCollections on an empty store listed collections")
    if len(call(load("direct-detect-faces"))["FaceDetails"]) != 1:
        raise SystemExit("DetectFaces did not find the one face of the event's image")
    call(load("direct-create-collection"))
    indexed = call({"Operation": "IndexFaces", "Parameters": {"CollectionId": "demo", "Image": face}})
    found = call({"Operation": "SearchFacesByImage", "Parameters": {"CollectionId": "demo", "Image": face}})
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    if [match["Face"]["FaceId"] for match in found["FaceMatches"]] != [face_id]:
        raise SystemExit(f"SearchFacesByImage did not find the indexed face: {json.dumps(found)}")
    print(f"  the built function answers; image {len(base64.b64decode(face['Bytes']))} bytes, face {face_id}")
    report = maintenance_handler(load("scheduled-maintenance"), _MaintenanceContext())
    print(f"  maintenance: {json.dumps(report)}")
    if report["collections_visited"] != 1 or report["stopped_early"]:
        raise SystemExit(f"the maintenance handler did not visit the one collection: {json.dumps(report)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="check", choices=["check", "smoke"])
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--runtime-sdk", type=Path, default=ROOT / "build" / "lambda-runtime")
    parser.add_argument("--runtime", default="python3.12", choices=sorted(RUNTIME_LIBRARIES))
    parser.add_argument("--architecture", default="x86_64", choices=sorted(ELF_MACHINES))
    args = parser.parse_args(argv)
    if args.command == "smoke":
        smoke()
        return 0
    build_dir = args.build_dir.resolve()
    print(f"sam build artifacts in {build_dir}:")
    check_size(build_dir)
    check_native_libraries(build_dir, args.runtime, args.architecture)
    if host_runs(args.architecture):
        check_invocation(build_dir, args.runtime, args.runtime_sdk.resolve())
    else:
        print(
            f"  invocation smoke test SKIPPED: this {platform.machine()} host cannot execute "
            f"{args.architecture} binaries (size, ELF machine, glibc/libstdc++ versions were checked above)"
        )
    print("sam build artifacts: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
