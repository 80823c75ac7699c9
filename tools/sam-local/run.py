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
import urllib.request
from pathlib import Path

import boto3
import yaml
from moto.server import ThreadedMotoServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EVENTS = ROOT / "events"
STORE_BUCKET = "facesearch-local"
IMAGES_BUCKET = "facesearch-demo-images"  # what events/apigw-rest-index-faces-s3.json names
FUNCTIONS = ("FaceSearchFunction", "MaintenanceFunction")
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
    s3.put_object(Bucket=IMAGES_BUCKET, Key="images/sample1.jpg", Body=demo_photo("sample1.jpg"))
    return server, local, f"http://{seen_as}:{port}"


def write_overlay(build_dir: Path, endpoint: str) -> tuple[Path, Path]:
    """The built template with AWS_ENDPOINT_URL_S3 declared, and the --env-vars file for both functions."""
    template = yaml.safe_load((build_dir / "template.yaml").read_text())
    for name in FUNCTIONS:
        variables = template["Resources"][name]["Properties"]["Environment"]["Variables"]
        variables["AWS_ENDPOINT_URL_S3"] = ""
    overlay = build_dir / "template.sam-local.yaml"
    overlay.write_text(yaml.safe_dump(template, sort_keys=False))
    common = {"FACESEARCH_STORE": f"s3://{STORE_BUCKET}", "AWS_ENDPOINT_URL_S3": endpoint}
    env = {
        "FaceSearchFunction": {
            **common,
            "FACESEARCH_ALLOWED_IMAGE_BUCKETS": f"{STORE_BUCKET},{IMAGES_BUCKET}",
        },
        "MaintenanceFunction": common,
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
                "--skip-pull-image",
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


def warm_up(port: int) -> None:
    """One raw request first: the first one builds the runtime image and starts the container, which can
    take longer than botocore's 60 s read timeout (its retry would then repeat a CreateCollection)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/",
        data=b"{}",
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "RekognitionService.ListCollections",
        },
    )
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=600) as response:
        json.loads(response.read())
    print(f"  warm-up ListCollections (image build, container start): {time.monotonic() - start:.1f}s")


def conformance(endpoint: str) -> list[tuple[str, str]]:
    """A boto3 conformance subset through the local API, with the client exactly as a user writes it."""
    from botocore.exceptions import ClientError

    client = boto3.client(
        "rekognition",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    photo = demo_photo("sample1.jpg")
    crop = json.loads((EVENTS / "direct-detect-faces.json").read_text())["Parameters"]["Image"]["Bytes"]
    lines = []

    def step(name: str, call, check) -> dict | None:
        start = time.monotonic()
        response = call()
        verdict = check(response)
        lines.append((name, f"{verdict} ({time.monotonic() - start:.1f}s)"))
        return response

    step(
        "CreateCollection",
        lambda: client.create_collection(CollectionId="sam-local"),
        lambda r: f"{r['StatusCode']} {r['CollectionArn']}",
    )
    indexed = step(
        "IndexFaces",
        lambda: client.index_faces(
            CollectionId="sam-local", Image={"Bytes": photo}, ExternalImageId="sample1"
        ),
        lambda r: f"{len(r['FaceRecords'])} faces indexed",
    )
    ids = {record["Face"]["FaceId"] for record in indexed["FaceRecords"]}
    if not ids:
        raise SystemExit("IndexFaces indexed no face of sample1.jpg")
    found = step(
        "SearchFacesByImage",
        lambda: client.search_faces_by_image(
            CollectionId="sam-local", Image={"Bytes": base64.b64decode(crop)}
        ),
        lambda r: f"top match Similarity {r['FaceMatches'][0]['Similarity']:.1f}",
    )
    if found["FaceMatches"][0]["Face"]["FaceId"] not in ids:
        raise SystemExit(f"SearchFacesByImage did not find an indexed face: {found['FaceMatches'][0]}")
    listed = step(
        "ListFaces", lambda: client.list_faces(CollectionId="sam-local"), lambda r: f"{len(r['Faces'])} faces"
    )
    if {face["FaceId"] for face in listed["Faces"]} != ids:
        raise SystemExit("ListFaces does not list the indexed faces")
    try:
        client.describe_collection(CollectionId="no-such-collection")
    except client.exceptions.ResourceNotFoundException as error:
        lines.append(("DescribeCollection (missing)", f"{error.response['Error']['Code']} as expected"))
    except ClientError as error:
        raise SystemExit(f"DescribeCollection of a missing collection raised {error}") from error
    else:
        raise SystemExit("DescribeCollection of a missing collection answered")
    step(
        "DeleteCollection",
        lambda: client.delete_collection(CollectionId="sam-local"),
        lambda r: f"StatusCode {r['StatusCode']}",
    )
    if "sam-local" in client.list_collections()["CollectionIds"]:
        raise SystemExit("DeleteCollection left the collection listed")
    return lines


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
                "--skip-pull-image",
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
            for name, line in conformance(f"http://127.0.0.1:{port}"):
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
    args = parser.parse_args(argv)
    expected = json.loads((HERE / "expected.json").read_text())
    start = time.monotonic()
    server, local, seen_by_containers = start_moto()
    try:
        print(f"sam-local: moto S3 at {local} (containers use {seen_by_containers})")
        overlay, env_file = write_overlay(args.build_dir.resolve(), seen_by_containers)
        print("sam-local: sam local invoke, every event in events/:")
        failed = invoke_events(args.sam, overlay, env_file, expected)
        api_failed = 0
        if not args.skip_api:
            print("sam-local: sam local start-api, boto3's Rekognition client unchanged:")
            api_failed = start_api(args.sam, overlay, env_file)
    finally:
        server.stop()
    events = sum(1 for name in expected if not name.startswith("_"))
    verdict = "OK" if not failed and not api_failed else "FAILED"
    print(
        f"sam-local: {verdict}: {events - failed}/{events} events as expected, start-api "
        f"{'skipped' if args.skip_api else ('ok' if not api_failed else 'FAILED')}, "
        f"{time.monotonic() - start:.0f} s"
    )
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
