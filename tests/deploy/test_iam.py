"""Least privilege, exercised: every operation runs on the S3 store as an IAM user holding only the
function's policy from template.yaml, with moto enforcing IAM; keys outside the grant are denied.

moto checks each S3 request's action and resource (bucket or bucket/key ARN) against the user's policy.
It does not evaluate the ``s3:prefix`` condition of the ListBucket statement (moto ignores condition
operators it does not implement), so every ListObjectsV2 prefix the function sends is recorded and
matched against that condition here, as IAM's StringLike does.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from facesearch import lazy
from facesearch.devtools import cfn
from facesearch.devtools.server import LocalLambdaContext
from facesearch.handler import maintenance_handler
from facesearch.settings import REPO_ROOT
from tests.support.transport import HandlerTransport, rekognition_client

TEMPLATE = cfn.load_template(REPO_ROOT / "template.yaml")
BUCKET = "facesearch-iam-test"
PHOTOS_BUCKET = "facesearch-iam-photos"  # an AllowedImageBuckets entry
REGION = "us-east-1"
EVENT_PHOTO = json.loads((REPO_ROOT / "events" / "direct-detect-faces.json").read_text())["Parameters"][
    "Image"
]


def function_policy(function: str) -> dict:
    """The function's policy document as CloudFormation would create it for this stack."""
    parameters = {"BucketName": BUCKET, "AllowedImageBuckets": PHOTOS_BUCKET}
    resolved = cfn.Resolver(TEMPLATE, parameters, REGION).resolve(
        TEMPLATE["Resources"][function]["Properties"]
    )
    statements = [s for policy in resolved["Policies"] if policy is not None for s in policy["Statement"]]
    return {"Version": "2012-10-17", "Statement": statements}


def list_prefix_allowed(policy: dict, bucket: str, prefix: str) -> bool:
    """IAM's answer to ListBucket of ``prefix``: an Allow on the bucket whose s3:prefix StringLike matches."""
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if statement["Effect"] != "Allow" or "s3:ListBucket" not in actions:
            continue
        if f"arn:aws:s3:::{bucket}" not in resources:
            continue
        patterns = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if patterns is None or any(fnmatch.fnmatchcase(prefix, pattern) for pattern in patterns):
            return True
    return False


@pytest.fixture
def aws(monkeypatch) -> Iterator[None]:
    """In-process moto, with the two buckets and a photo in each place Image.S3Object may read."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "setup")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "setup")
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        photo = base64.b64decode(EVENT_PHOTO["Bytes"])
        for bucket, key in ((BUCKET, "images/face.jpg"), (PHOTOS_BUCKET, "face.jpg")):
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=key, Body=photo)
        yield


def identity(function: str, monkeypatch) -> dict:
    """An IAM user with only ``function``'s policy; the environment now carries its credentials."""
    iam = boto3.client("iam", region_name=REGION)
    name = f"{function}-{uuid.uuid4().hex[:8]}"
    policy = function_policy(function)
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="function", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    # A new default session: the old one has the previous credentials cached.
    boto3.setup_default_session()
    lazy.reset_all()
    return policy


def run_enforced(body, prefixes: list[tuple[str, str]]):
    """Run ``body()`` with moto's IAM enforcement on (no request is let through unauthenticated)."""

    def register(params: dict, **_) -> None:
        prefixes.append((params["Bucket"], params.get("Prefix", "")))

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    events = boto3.DEFAULT_SESSION.events
    events.register("provide-client-params.s3.ListObjectsV2", register)
    try:
        return set_initial_no_auth_action_count(0)(body)()
    finally:
        events.unregister("provide-client-params.s3.ListObjectsV2", register)


def every_operation(client) -> dict:
    """Each operation's happy path, as an unchanged boto3 client sends it (tokens included)."""
    done = {}
    done["CreateCollection"] = client.create_collection(CollectionId="staff")
    done["ListCollections"] = client.list_collections()
    done["DescribeCollection"] = client.describe_collection(CollectionId="staff")
    indexed = client.index_faces(
        CollectionId="staff", Image={"Bytes": base64.b64decode(EVENT_PHOTO["Bytes"])}
    )
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    done["IndexFaces"] = indexed
    done["IndexFaces S3Object images/"] = client.index_faces(
        CollectionId="staff", Image={"S3Object": {"Bucket": BUCKET, "Name": "images/face.jpg"}}
    )
    done["IndexFaces S3Object AllowedImageBuckets"] = client.index_faces(
        CollectionId="staff", Image={"S3Object": {"Bucket": PHOTOS_BUCKET, "Name": "face.jpg"}}
    )
    done["ListFaces"] = client.list_faces(CollectionId="staff")
    done["SearchFaces"] = client.search_faces(CollectionId="staff", FaceId=face_id)
    done["SearchFacesByImage"] = client.search_faces_by_image(
        CollectionId="staff", Image={"Bytes": base64.b64decode(EVENT_PHOTO["Bytes"])}
    )
    done["CreateUser"] = client.create_user(CollectionId="staff", UserId="alice")
    done["AssociateFaces"] = client.associate_faces(CollectionId="staff", UserId="alice", FaceIds=[face_id])
    done["ListUsers"] = client.list_users(CollectionId="staff")
    done["SearchUsers"] = client.search_users(CollectionId="staff", UserId="alice")
    done["SearchUsersByImage"] = client.search_users_by_image(
        CollectionId="staff", Image={"Bytes": base64.b64decode(EVENT_PHOTO["Bytes"])}
    )
    done["DisassociateFaces"] = client.disassociate_faces(
        CollectionId="staff", UserId="alice", FaceIds=[face_id]
    )
    done["DeleteUser"] = client.delete_user(CollectionId="staff", UserId="alice")
    done["DeleteFaces"] = client.delete_faces(CollectionId="staff", FaceIds=[face_id])
    done["DeleteCollection"] = client.delete_collection(CollectionId="staff")
    return done


def test_every_operation_runs_with_only_the_function_policy(aws, model_pack, monkeypatch):
    monkeypatch.setenv("FACESEARCH_STORE", f"s3://{BUCKET}")
    monkeypatch.setenv("FACESEARCH_ALLOWED_IMAGE_BUCKETS", f"{BUCKET},{PHOTOS_BUCKET}")
    monkeypatch.setenv("FACESEARCH_MODELS_DIR", str(model_pack))
    policy = identity("FaceSearchFunction", monkeypatch)
    client = rekognition_client("https://facesearch.test", HandlerTransport("rest"))
    sent = []
    client.meta.events.register(
        "before-call.rekognition", lambda params, model, **_: sent.append((model.name, params))
    )
    prefixes: list[tuple[str, str]] = []

    done = run_enforced(lambda: every_operation(client), prefixes)

    assert all(response["ResponseMetadata"]["HTTPStatusCode"] == 200 for response in done.values())
    assert done["SearchFacesByImage"]["FaceMatches"]
    assert done["SearchUsersByImage"]["UserMatches"][0]["User"]["UserId"] == "alice"
    tokens = {name for name, params in sent if b"ClientRequestToken" in params["body"]}
    assert {"CreateUser", "AssociateFaces", "DisassociateFaces", "DeleteUser"} <= tokens
    assert prefixes, "the store listed nothing: the ListBucket condition was not exercised"
    for bucket, prefix in prefixes:
        assert list_prefix_allowed(policy, bucket, prefix), f"ListBucket {bucket} prefix {prefix!r} is denied"


def test_the_maintenance_function_runs_with_only_its_policy(aws, model_pack, monkeypatch):
    monkeypatch.setenv("FACESEARCH_STORE", f"s3://{BUCKET}")
    monkeypatch.setenv("FACESEARCH_MODELS_DIR", str(model_pack))
    monkeypatch.setenv("FACESEARCH_ALLOWED_IMAGE_BUCKETS", BUCKET)
    identity("FaceSearchFunction", monkeypatch)
    client = rekognition_client("https://facesearch.test", HandlerTransport("rest"))
    photo = base64.b64decode(EVENT_PHOTO["Bytes"])

    def writes():
        client.create_collection(CollectionId="staff")
        for _ in range(3):
            client.index_faces(CollectionId="staff", Image={"Bytes": photo})

    run_enforced(writes, [])
    policy = identity("MaintenanceFunction", monkeypatch)
    event = json.loads((REPO_ROOT / "events" / "scheduled-maintenance.json").read_text())
    context = LocalLambdaContext(function_name="MaintenanceFunction", remaining_millis=900_000)
    prefixes: list[tuple[str, str]] = []

    report = run_enforced(lambda: maintenance_handler(event, context), prefixes)

    assert report["collections_visited"] == 1
    assert not report["stopped_early"]
    assert prefixes
    for bucket, prefix in prefixes:
        assert list_prefix_allowed(policy, bucket, prefix), f"ListBucket {bucket} prefix {prefix!r} is denied"


@pytest.mark.parametrize("function", ["FaceSearchFunction", "MaintenanceFunction"])
def test_keys_outside_the_grant_are_denied(aws, monkeypatch, function):
    policy = identity(function, monkeypatch)
    s3 = boto3.client("s3", region_name=REGION)

    def attempts():
        denied = []
        for name, call in {
            "PutObject idempotency/": lambda: s3.put_object(
                Bucket=BUCKET, Key="idempotency/x.json", Body=b"{}"
            ),
            "PutObject top level": lambda: s3.put_object(Bucket=BUCKET, Key="x.json", Body=b"{}"),
            "GetObject images/ in another bucket": lambda: s3.get_object(
                Bucket="elsewhere", Key="images/a.jpg"
            ),
            "DeleteObject images/": lambda: s3.delete_object(Bucket=BUCKET, Key="images/face.jpg"),
            "PutObject images/": lambda: s3.put_object(Bucket=BUCKET, Key="images/new.jpg", Body=b"x"),
        }.items():
            try:
                call()
            except ClientError as error:
                if error.response["Error"]["Code"] == "AccessDenied":
                    denied.append(name)
        s3.put_object(Bucket=BUCKET, Key="collections/allowed/probe.json", Body=b"{}")
        return denied

    denied = run_enforced(attempts, [])

    assert denied == [
        "PutObject idempotency/",
        "PutObject top level",
        "GetObject images/ in another bucket",
        "DeleteObject images/",
        "PutObject images/",
    ]
    for prefix in ("", "images/", "idempotency/"):
        assert not list_prefix_allowed(policy, BUCKET, prefix)
    assert list_prefix_allowed(policy, BUCKET, "collections/")
