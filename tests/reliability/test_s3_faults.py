"""The S3 store against a moto server behind a fault-injecting proxy: every fault at every step of a write
(IndexFaces, CreateUser) and a read (SearchFaces, ListFaces), once (botocore's retry sees it) and
persistently (the retries fail too).

After every run, with the faults off: nothing acknowledged is lost, no face is listed twice, every object
the manifest references exists (no dangling reference), the orphans a failed write left are unreferenced and
collected by maintenance; the client got success or a declared, retryable error."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import boto3
import pytest
from botocore.config import Config
from botocore.retries.standard import ExponentialBackoff

from facesearch import aws, settings
from facesearch.devtools.server import LocalLambdaContext
from facesearch.handler import lambda_handler
from facesearch.protocol import model
from facesearch.settings import ENV_CACHE_DIR, ENV_STORE
from facesearch.store import get_store
from facesearch.store.manifest import Manifest
from tests.support.events import rest_event
from tests.support.faultproxy import FAULTS, FaultProxy, Plan

pytestmark = pytest.mark.reliability

PREFIX = "facesearch"
# The client gives up on a silent S3 after this long (the store's client keeps its retry policy).
READ_TIMEOUT_SECONDS = 1.0
# Fewer attempts than the store's 5, so persistent faults give up sooner (standard mode backs off 1, 2, 4 s).
ATTEMPTS = 3
BACKOFF_SECONDS = 0.05
RETRYABLE = {"InternalServerError", "ThrottlingException", "ProvisionedThroughputExceededException"}
# Persistent timeouts cost READ_TIMEOUT x attempts per run: tried once (transient) only.
PERSISTENT_FAULTS = [fault for fault in FAULTS if fault != "timeout"]


@dataclass
class Tally:
    runs: int = 0
    faults_injected: int = 0
    outcomes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    orphans_collected: int = 0


@pytest.fixture(scope="module")
def proxy(moto_s3_server):
    running = FaultProxy(moto_s3_server, timeout_seconds=READ_TIMEOUT_SECONDS + 0.5).start()
    yield running
    running.stop()


@pytest.fixture
def world(proxy, s3_env, monkeypatch, tmp_path):
    """The handler's S3 store goes through the proxy; ``direct`` talks to moto without faults."""
    bucket = f"faults-{uuid.uuid4().hex[:16]}"
    direct = boto3.client("s3", endpoint_url=s3_env)
    direct.create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    monkeypatch.setenv(ENV_STORE, f"s3://{bucket}/{PREFIX}")
    monkeypatch.setattr(
        aws,
        "_CONFIG",
        Config(
            retries={"mode": "standard", "max_attempts": ATTEMPTS},
            read_timeout=READ_TIMEOUT_SECONDS,
            connect_timeout=READ_TIMEOUT_SECONDS,
            max_pool_connections=32,
        ),
    )
    # botocore's standard backoff (up to 1, 2, 4 s) shortened: what is under test is what the store does
    # when retries fail or succeed, not how long botocore waits between them.
    monkeypatch.setattr(
        ExponentialBackoff, "delay_amount", lambda self, context: BACKOFF_SECONDS * context.attempt_number
    )
    return {"bucket": bucket, "direct": direct, "tmp": tmp_path, "monkeypatch": monkeypatch}


def cold(world) -> None:
    """A cold store (new S3 client, empty disk cache; the models stay loaded): every run sees the same
    sequence of S3 requests."""
    world["monkeypatch"].setenv(ENV_CACHE_DIR, str(world["tmp"] / f"cache-{uuid.uuid4().hex[:8]}"))
    for factory in (settings.get_settings, get_store, aws.s3_client):
        factory.cache_clear()


def call(operation: str, params: dict) -> tuple[int, dict]:
    answer = lambda_handler(rest_event(operation, params), LocalLambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


def listed(world, collection_id: str) -> list[str]:
    cold(world)
    status, body = call("ListFaces", {"CollectionId": collection_id, "MaxResults": 4096})
    assert status == 200, body
    return [face["FaceId"] for face in body["Faces"]]


def check_references(world, collection_id: str) -> tuple[int, int]:
    """(segments referenced, orphan objects); asserts every referenced object exists."""
    direct, bucket = world["direct"], world["bucket"]
    root = f"{PREFIX}/collections/{collection_id}/"
    body = direct.get_object(Bucket=bucket, Key=root + "manifest.json")["Body"].read()
    manifest = Manifest.from_json(body, "under test")
    keys = {
        item["Key"]
        for page in direct.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root)
        for item in page.get("Contents", [])
    }
    referenced = {
        f"{root}segments/{ref.segment_id}.{ext}" for ref in manifest.segments for ext in ("json", "bin")
    }
    assert referenced <= keys, f"dangling references: {sorted(referenced - keys)}"
    orphans = {key for key in keys if "/segments/" in key} - referenced
    return len(manifest.segments), len(orphans)


def run_case(
    world, proxy, tally: Tally, operation: str, params: dict, plan: Plan, collection_id: str, acked: set[str]
) -> None:
    cold(world)
    proxy.arm(plan)
    began = time.monotonic()
    status, body = call(operation, params)
    injected = len(proxy.injected)
    proxy.arm()
    if os.environ.get("FACESEARCH_RELIABILITY_TRACE"):
        sys.stderr.write(f"{operation} {plan} -> {status} in {time.monotonic() - began:.1f}s\n")
    tally.runs += 1
    tally.faults_injected += injected
    assert injected > 0, f"{operation} {plan}: no fault injected (the request sequence changed?)"
    label = f"{operation} {plan.fault}@{plan.step}{' persistent' if plan.persistent else ''}"
    if status == 200:
        tally.outcomes["success"] += 1
        if operation == "IndexFaces":
            acked.update(record["Face"]["FaceId"] for record in body["FaceRecords"])
        if operation == "CreateUser":
            users = call("ListUsers", {"CollectionId": collection_id})[1]["Users"]
            if params["UserId"] not in [user["UserId"] for user in users]:
                tally.failures.append(f"{label}: acknowledged user {params['UserId']} missing")
    else:
        tally.outcomes[body["__type"]] += 1
        if body["__type"] not in RETRYABLE or body["__type"] not in model.declared_errors(operation):
            tally.failures.append(f"{label}: {status} {body['__type']}: {body['Message'][:160]}")
    faces = listed(world, collection_id)
    if len(faces) != len(set(faces)):
        tally.failures.append(f"{label}: {len(faces) - len(set(faces))} faces listed twice")
    if not acked <= set(faces):
        tally.failures.append(f"{label}: {len(acked - set(faces))} acknowledged faces lost")
    _, orphans = check_references(world, collection_id)
    if orphans:
        cold(world)
        collected = get_store().collect_garbage(collection_id, grace_seconds=0)
        tally.orphans_collected += len(collected)
        assert check_references(world, collection_id)[1] == 0


def steps_of(world, proxy, operation: str, params: dict) -> list[tuple[str, str]]:
    cold(world)
    proxy.arm()
    status, body = call(operation, params)
    assert status == 200, body
    return list(proxy.seen)


def plans(steps: int) -> list[Plan]:
    once = [Plan(step, fault) for step in range(steps) for fault in FAULTS]
    return once + [Plan(step, fault, persistent=True) for step in range(steps) for fault in PERSISTENT_FAULTS]


def fresh_collection(counter: Counter) -> str:
    counter["collections"] += 1
    collection_id = f"faults-{counter['collections']}"
    proxy_free = call("CreateCollection", {"CollectionId": collection_id})
    assert proxy_free[0] == 200, proxy_free
    return collection_id


@pytest.fixture
def memo_analysis(monkeypatch):
    """The vision pipeline's answer for an image computed once: what is under test is the store."""
    from facesearch.operations import common

    memo: dict = {}
    real = common.analyze

    def analyze(image: bytes, **kwargs):
        key = (hash(image), tuple(sorted(kwargs.items())))
        if key not in memo:
            memo[key] = real(image, **kwargs)
        return memo[key]

    monkeypatch.setattr(common, "analyze", analyze)


def test_s3_faults_at_every_step(world, proxy, small_face, memo_analysis, report):
    tally = Tally()
    counter: Counter = Counter()
    image = {"Bytes": base64.b64encode(small_face).decode()}
    sequences = {}

    # Writes on a fresh collection each run (the same S3 requests every time): IndexFaces (two segment
    # objects, then the manifest swap) and CreateUser (a manifest swap).
    index = {"Image": image, "MaxFaces": 1}
    sequences["IndexFaces"] = steps_of(
        world, proxy, "IndexFaces", {**index, "CollectionId": fresh_collection(counter)}
    )
    for plan in plans(len(sequences["IndexFaces"])):
        collection_id = fresh_collection(counter)
        run_case(
            world,
            proxy,
            tally,
            "IndexFaces",
            {**index, "CollectionId": collection_id},
            plan,
            collection_id,
            set(),
        )
    user = {"UserId": "u1"}
    sequences["CreateUser"] = steps_of(
        world, proxy, "CreateUser", {**user, "CollectionId": fresh_collection(counter)}
    )
    for plan in plans(len(sequences["CreateUser"])):
        collection_id = fresh_collection(counter)
        run_case(
            world,
            proxy,
            tally,
            "CreateUser",
            {**user, "CollectionId": collection_id},
            plan,
            collection_id,
            set(),
        )

    # Reads of one collection holding acknowledged faces: SearchFaces (manifest, segment records and
    # graph) and ListFaces.
    reads = fresh_collection(counter)
    status, body = call("IndexFaces", {**index, "MaxFaces": 4, "CollectionId": reads})
    assert status == 200, body
    acked = {record["Face"]["FaceId"] for record in body["FaceRecords"]}
    for operation, params in (
        ("SearchFaces", {"CollectionId": reads, "FaceId": sorted(acked)[0], "MaxFaces": 10}),
        ("ListFaces", {"CollectionId": reads, "MaxResults": 10}),
    ):
        sequences[operation] = steps_of(world, proxy, operation, params)
        for plan in plans(len(sequences[operation])):
            run_case(world, proxy, tally, operation, params, plan, reads, acked)

    report(
        "s3_faults",
        runs=tally.runs,
        faults_injected=tally.faults_injected,
        fault_kinds=list(FAULTS),
        steps={operation: len(seq) for operation, seq in sequences.items()},
        outcomes=dict(tally.outcomes),
        orphans_collected=tally.orphans_collected,
        problems=len(tally.failures),
        problem_examples=tally.failures[:12],
    )
    assert tally.failures == []
