"""Run every event in events/ through `sam local invoke`, then boto3 through `sam local start-api`.

Usage (what ``make sam-local`` runs after ``sam build``, with a Docker engine and the runtime's base image)::

    python tools/sam-local/run.py --sam build/sam-venv/bin/sam

The functions need a store: an S3 one, as deployed. A moto S3 server runs in this process, listening on
the Docker bridge's gateway address (the host as the containers see it), with the store's bucket and the
bucket the S3Object event reads (holding that photo). `sam local` passes a function only the environment
variables its template declares, so the runner writes ``template.sam-local.yaml`` beside the built
template, the same plus a declared ``AWS_ENDPOINT_URL_S3``; ``env.json`` (SAM's --env-vars format) then
points it, and FACESEARCH_STORE, at moto. Each event's response is checked against ``expected.json``.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import yaml
from api_check import conformance, warm_up
from moto.server import ThreadedMotoServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EVENTS = ROOT / "events"
STORE_BUCKET = "facesearch-local"
IMAGES_BUCKET = "facesearch-demo-images"  # what events/apigw-rest-index-faces-s3.json names
# With a local stand-in of the base image, SAM must not try the registry (main() clears this for --pull).
PULL = ["--skip-pull-image"]
# The S3-event indexing block is off by default; its events need PhotoIndexFunction in the template.
PARAMETERS = ["PhotoIndexing=Enabled", f"PhotoBucketName={IMAGES_BUCKET}"]
SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}


def registry():
    """The project's registry module (it moves under facesearch.devtools in the restructured layout)."""
    try:
        from facesearch.devtools import registry as module
    except ImportError:
        from facesearch import registry as module
    return module


def demo_photo(name: str) -> bytes:
    module = registry()
    folder = ROOT / "build" / "sam-local" / "photos"
    return module.extract(module.FACE_API, [f"package/demo/{name}"], folder)[0].read_bytes()


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def host_address() -> tuple[str, str]:
    """(address moto listens on, host name the containers reach it by)."""
    if platform.system() != "Linux":
        # Docker Desktop: containers reach the host's loopback by this name.
        return "127.0.0.1", "host.docker.internal"
    inspect = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{json .}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    network = json.loads(inspect.stdout)
    gateways = [config.get("Gateway") for config in network["IPAM"]["Config"] or [] if config.get("Gateway")]
    if gateways:
        return gateways[0], gateways[0]
    # Older engines leave the gateway out of the default bridge's IPAM: it is the bridge interface's address.
    name = network["Options"].get("com.docker.network.bridge.name", "docker0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("256s", name.encode()[:15])
        address = socket.inet_ntoa(fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)[20:24])
    return address, address


def start_moto() -> tuple[ThreadedMotoServer, str, str]:
    """A moto server with the two buckets; (server, endpoint for this host, endpoint for the containers)."""
    listen, seen_as = host_address()
    port = free_port(listen)
    server = ThreadedMotoServer(ip_address=listen, port=port, verbose=False)
    server.start()
    local = f"http://{listen}:{port}"
    s3 = boto3.client(
        "s3", endpoint_url=local, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    for bucket in (STORE_BUCKET, IMAGES_BUCKET):
        s3.create_bucket(Bucket=bucket)
    for key in ("images/sample1.jpg", "photos/sample1.jpg"):  # the S3Object event's and the S3 events' photo
        s3.put_object(Bucket=IMAGES_BUCKET, Key=key, Body=demo_photo("sample1.jpg"))
    return server, local, f"http://{seen_as}:{port}"


def write_overlay(build_dir: Path, endpoint: str) -> tuple[Path, Path]:
    """The built template with AWS_ENDPOINT_URL_S3 declared, and the --env-vars file for both functions."""
    template = yaml.safe_load((build_dir / "template.yaml").read_text())
    # Declared once for every function, in Globals (SAM merges it into each function's variables).
    function_globals = template.setdefault("Globals", {}).setdefault("Function", {})
    function_globals.setdefault("Environment", {}).setdefault("Variables", {})["AWS_ENDPOINT_URL_S3"] = ""
    overlay = build_dir / "template.sam-local.yaml"
    overlay.write_text(yaml.safe_dump(template, sort_keys=False))
    common = {"FACESEARCH_STORE": f"s3://{STORE_BUCKET}", "AWS_ENDPOINT_URL_S3": endpoint}
    env = {
        "FaceSearchFunction": {
            **common,
            "FACESEARCH_ALLOWED_IMAGE_BUCKETS": f"{STORE_BUCKET},{IMAGES_BUCKET}",
        },
        "MaintenanceFunction": common,
        "PhotoIndexFunction": {**common, "FACESEARCH_ALLOWED_IMAGE_BUCKETS": IMAGES_BUCKET},
    }
    env_file = build_dir / "env.sam-local.json"
    env_file.write_text(json.dumps(env, indent=2))
    return overlay, env_file


def sam_env() -> dict:
    return {**os.environ, **CREDENTIALS, "SAM_CLI_TELEMETRY": "0"}


def response_of(result: dict) -> tuple[int | None, dict]:
    """(status, body) of a door's answer: API Gateway, direct invoke or the maintenance report."""
    if "statusCode" in result:
        body = result.get("body") or "{}"
        if result.get("isBase64Encoded"):
            body = base64.b64decode(body)
        return result["statusCode"], json.loads(body)
    if "StatusCode" in result:
        return result["StatusCode"], result.get("Body") or result.get("Error") or {}
    return None, result


def lookup(body, path: str):
    for part in path.split("."):
        body = body[int(part)] if isinstance(body, list) else body[part]
    return body


CHECKS = {
    "==": lambda got, want: got == want,
    "!=": lambda got, want: got != want,
    ">=": lambda got, want: got >= want,
    "<=": lambda got, want: got <= want,
    "endswith": lambda got, want: str(got).endswith(want),
    "contains": lambda got, want: want in got,
    "len==": lambda got, want: len(got) == want,
    "len>=": lambda got, want: len(got) >= want,
}


def failures(spec: dict, status, body) -> list[str]:
    found = []
    if status != spec["status"]:
        found.append(f"status {status}, expected {spec['status']}")
    for path, (check, want) in spec["body"].items():
        try:
            got = lookup(body, path)
        except (KeyError, IndexError, TypeError):
            found.append(f"{path} missing")
            continue
        if not CHECKS[check](got, want):
            found.append(f"{path} = {json.dumps(got)[:80]}, expected {check} {json.dumps(want)}")
    return found


def summary(body: dict) -> str:
    """A few words on what the response holds, for the per-event line."""
    for key in ("FaceMatches", "FaceRecords", "Faces", "FaceDetails", "CollectionIds"):
        if key in body:
            extra = (
                f", top Similarity {body[key][0]['Similarity']:.1f}"
                if key == "FaceMatches" and body[key]
                else ""
            )
            return f"{len(body[key])} {key}{extra}"
    if "__type" in body:
        return body["__type"]
    if "CollectionArn" in body:
        return body["CollectionArn"]
    return json.dumps(body)[:100]


def invoke_events(sam: str, overlay: Path, env_file: Path, expected: dict) -> int:
    """Every event through `sam local invoke`; one line each. Returns the number that failed."""
    names = sorted(path.stem for path in EVENTS.glob("*.json") if not path.stem.startswith("env"))
    missing = sorted(set(names) - set(expected))
    if missing:
        print(f"sam-local: events without an expected response in expected.json: {', '.join(missing)}")
        return len(missing)
    failed = 0
    for name, spec in expected.items():
        if name.startswith("_"):
            continue
        start = time.monotonic()
        done = subprocess.run(
            [
                sam,
                "local",
                "invoke",
                spec["function"],
                "--template",
                str(overlay),
                "--event",
                str(EVENTS / f"{name}.json"),
                "--env-vars",
                str(env_file),
                *PULL,
                "--parameter-overrides",
                " ".join(PARAMETERS),
            ],
            capture_output=True,
            text=True,
            env=sam_env(),
            cwd=ROOT,
        )
        seconds = time.monotonic() - start
        try:
            result = json.loads(done.stdout.strip().splitlines()[-1])
            status, body = response_of(result)
            problems = failures(spec, status, body)
        except (IndexError, ValueError) as error:
            status, body, problems = None, {}, [f"no JSON response ({error}); exit {done.returncode}"]
        verdict = "ok  " if not problems else "FAIL"
        print(
            f"  {verdict} {name:<40} {spec['function']:<20} {status!s:>4}  {seconds:5.1f}s  {summary(body)}"
        )
        for problem in problems:
            print(f"         {problem}")
        if problems:
            failed += 1
            print("\n".join("         | " + line for line in done.stderr.splitlines()[-25:]))
    return failed


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"sam local start-api exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise SystemExit(f"sam local start-api did not listen on {port} within {seconds} s")


def start_api(sam: str, overlay: Path, env_file: Path) -> int:
    port = free_port("127.0.0.1")
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [
                sam,
                "local",
                "start-api",
                "--template",
                str(overlay),
                "--env-vars",
                str(env_file),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *PULL,
                "--warm-containers",
                "LAZY",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=sam_env(),
            cwd=ROOT,
        )
        try:
            wait_for_port(port, process)
            warm_up(port)
            start = time.monotonic()
            for name, line in conformance(f"http://127.0.0.1:{port}", demo_photo("sample1.jpg")):
                print(f"  ok   {name:<30} {line}")
            print(f"  boto3 through sam local start-api: {time.monotonic() - start:.1f}s")
            return 0
        except Exception as error:
            log.seek(0)
            print(f"  FAIL start-api: {error}")
            print("\n".join("         | " + line for line in log.read().decode().splitlines()[-30:]))
            return 1
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default="sam")
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--skip-api", action="store_true", help="only the events")
    parser.add_argument("--skip-events", action="store_true", help="only boto3 through start-api")
    parser.add_argument("--pull", action="store_true", help="let SAM pull the base image (no local stand-in)")
    args = parser.parse_args(argv)
    # One line per event as it finishes, also when the output goes to a CI log file.
    sys.stdout.reconfigure(line_buffering=True)
    if args.pull:
        PULL.clear()
    expected = json.loads((HERE / "expected.json").read_text())
    start = time.monotonic()
    server, local, seen_by_containers = start_moto()
    try:
        print(f"sam-local: moto S3 at {local} (containers use {seen_by_containers})")
        overlay, env_file = write_overlay(args.build_dir.resolve(), seen_by_containers)
        if not args.skip_events:
            print("sam-local: sam local invoke, every event in events/:")
        failed = 0 if args.skip_events else invoke_events(args.sam, overlay, env_file, expected)
        api_failed = 0
        if not args.skip_api:
            print("sam-local: sam local start-api, boto3's Rekognition client unchanged:")
            api_failed = start_api(args.sam, overlay, env_file)
    finally:
        server.stop()
    events = sum(1 for name in expected if not name.startswith("_"))
    verdict = "OK" if not failed and not api_failed else "FAILED"
    tally = "events skipped" if args.skip_events else f"{events - failed}/{events} events as expected"
    print(
        f"sam-local: {verdict}: {tally}, start-api "
        f"{'skipped' if args.skip_api else ('ok' if not api_failed else 'FAILED')}, "
        f"{time.monotonic() - start:.0f} s"
    )
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
