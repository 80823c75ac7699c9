"""template.yaml against the code: env names are settings constants, runtime and limits agree, IAM is tight.

The template is read with ``facesearch invoke``'s own loader and resolver, which these tests also cover.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from facesearch import handler, settings, telemetry
from facesearch.devtools import cfn, invoke
from facesearch.settings import REPO_ROOT, Settings

TEMPLATE = cfn.load_template(REPO_ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]
# Each function's properties as SAM deploys them: Globals.Function merged in.
FUNCTION = cfn.function_properties(TEMPLATE, "FaceSearchFunction")
VARIABLES = FUNCTION["Environment"]["Variables"]
MAINTENANCE = cfn.function_properties(TEMPLATE, "MaintenanceFunction")
MAINTENANCE_VARIABLES = MAINTENANCE["Environment"]["Variables"]
# Lambda's maximum timeout, in seconds.
LAMBDA_MAX_TIMEOUT = 900


def _check_build():
    spec = importlib.util.spec_from_file_location("check_build", REPO_ROOT / "layers" / "check_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _resolve(node, **parameters):
    return cfn.Resolver(TEMPLATE, parameters, "eu-west-1").resolve(node)


def test_every_facesearch_variable_is_a_settings_constant():
    constants = {value for name, value in vars(settings).items() if name.startswith("ENV_")}
    named = {name for name in VARIABLES if name.startswith("FACESEARCH_")}
    assert named <= constants
    assert {settings.ENV_STORE, settings.ENV_MODELS_DIR, settings.ENV_ALLOWED_IMAGE_BUCKETS} <= named


def test_template_defaults_make_valid_settings():
    environment = {name: str(_resolve(value)) for name, value in VARIABLES.items()}

    resolved = Settings.from_env(environment)

    assert VARIABLES[settings.ENV_MODELS_DIR] == str(settings.LAMBDA_MODELS_DIR)
    assert resolved.store == "s3://CollectionsBucket"  # a Ref resolves to the logical id locally, as in SAM
    assert resolved.allowed_image_buckets == ("CollectionsBucket",)
    tmp_bytes = int(TEMPLATE["Parameters"]["EphemeralStorage"]["Default"]) * 1024 * 1024
    assert 0.9 * tmp_bytes < resolved.cache_max_bytes < tmp_bytes
    assert str(resolved.cache_dir).startswith("/tmp/")
    assert resolved.intra_op_threads == TEMPLATE["Parameters"]["OnnxThreads"]["Default"]


def test_powertools_names_match_the_telemetry_defaults():
    assert VARIABLES["POWERTOOLS_SERVICE_NAME"] == telemetry.SERVICE_NAME
    assert VARIABLES["POWERTOOLS_METRICS_NAMESPACE"] == telemetry.METRICS_NAMESPACE
    assert _resolve(VARIABLES["POWERTOOLS_LOG_LEVEL"]) == "INFO"
    assert FUNCTION["Tracing"] == "Active"


def test_runtime_agrees_with_layers_makefile_and_build_check():
    runtime = FUNCTION["Runtime"]
    makefile = (REPO_ROOT / "Makefile").read_text()
    version = re.search(r"^LAMBDA_PYTHON_VERSION := (\S+)$", makefile, re.MULTILINE).group(1)
    deps_makefile = (REPO_ROOT / "layers" / "deps" / "Makefile").read_text()

    assert runtime == f"python{version}"
    assert f"LAMBDA_PYTHON_VERSION ?= {version}" in deps_makefile
    for layer in ("DepsLayer", "ModelsLayer"):
        assert RESOURCES[layer]["Properties"]["CompatibleRuntimes"] == [runtime]
        assert RESOURCES[layer]["Metadata"]["BuildMethod"] == "makefile"
    assert runtime in _check_build().RUNTIME_LIBRARIES


def test_architecture_is_a_parameter_x86_64_by_default_arm64_allowed():
    parameter = TEMPLATE["Parameters"]["Architecture"]
    assert parameter["Default"] == "x86_64"
    assert parameter["AllowedValues"] == ["x86_64", "arm64"]
    assert FUNCTION["Architectures"] == [{"Ref": "Architecture"}]


def test_api_is_iam_authenticated_post_root_without_binary_media_types():
    api = RESOURCES["FaceSearchApi"]["Properties"]
    event = FUNCTION["Events"]["Rekognition"]

    assert api["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    assert api["Auth"]["InvokeRole"] == "NONE"  # else SAM invokes with the caller's credentials
    assert "BinaryMediaTypes" not in api
    assert event["Type"] == "Api"
    assert (event["Properties"]["Path"], event["Properties"]["Method"]) == ("/", "POST")
    too_large = api["GatewayResponses"]["REQUEST_TOO_LARGE"]
    assert too_large["ResponseParameters"]["Headers"]["x-amzn-ErrorType"] == "'ImageTooLargeException'"


@pytest.mark.parametrize("response_type", ["REQUEST_TOO_LARGE", "DEFAULT_5XX"])
def test_gateway_responses_speak_the_json_error_shape_boto3_parses(response_type):
    """What API Gateway answers itself (oversized bodies, failed invocations) is a declared wire error."""
    response = RESOURCES["FaceSearchApi"]["Properties"]["GatewayResponses"][response_type]
    code = response["ResponseParameters"]["Headers"]["x-amzn-ErrorType"].strip("'")
    body = json.loads(response["ResponseTemplates"]["application/json"])

    assert body["__type"] == code
    assert code in {"ImageTooLargeException", "InternalServerError"}
    assert "Image.S3Object" in body["Message"]


def test_bucket_is_encrypted_and_private():
    bucket = RESOURCES["CollectionsBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())


def _statements(function=FUNCTION, **parameters) -> list[dict]:
    statements = []
    for policy in _resolve(function["Policies"], **parameters):
        if policy is not None:
            statements.extend(policy["Statement"])
    return statements


def test_policies_reach_only_the_collections_prefix_and_the_allowed_image_buckets():
    default = {statement["Sid"]: statement for statement in _statements()}
    listed = {
        statement["Sid"]: statement for statement in _statements(AllowedImageBuckets="photos-a,photos-b")
    }

    assert default["CollectionsReadWrite"]["Resource"] == "arn:aws:s3:::CollectionsBucket/collections/*"
    assert default["CollectionsList"]["Condition"]["StringLike"]["s3:prefix"] == [
        "collections/",
        "collections/*",
    ]
    assert default["OwnImagesRead"] == {
        "Sid": "OwnImagesRead",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::CollectionsBucket/images/*",
    }
    assert "AllowedImageBucketsRead" not in default
    assert listed["AllowedImageBucketsRead"]["Resource"] == [
        "arn:aws:s3:::photos-a/*",
        "arn:aws:s3:::photos-b/*",
    ]
    assert listed["AllowedImageBucketsRead"]["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    for statement in [*default.values(), *listed.values()]:
        assert "*" not in statement["Action"]


def test_an_existing_bucket_replaces_the_stacks_own_everywhere():
    environment = {name: _resolve(value, BucketName="my-faces") for name, value in VARIABLES.items()}
    statements = {statement["Sid"]: statement for statement in _statements(BucketName="my-faces")}
    outputs = TEMPLATE["Outputs"]

    assert environment[settings.ENV_STORE] == "s3://my-faces"
    assert environment[settings.ENV_ALLOWED_IMAGE_BUCKETS] == "my-faces"
    assert statements["CollectionsReadWrite"]["Resource"] == "arn:aws:s3:::my-faces/collections/*"
    assert statements["CollectionsList"]["Resource"] == "arn:aws:s3:::my-faces"
    assert statements["OwnImagesRead"]["Resource"] == "arn:aws:s3:::my-faces/images/*"
    assert _resolve(outputs["CollectionsBucketName"]["Value"], BucketName="my-faces") == "my-faces"
    for resource in ("CollectionsBucket", "CollectionsBucketPolicy"):
        assert RESOURCES[resource]["Condition"] == "CreateBucket"


def test_function_environment_layers_overrides_like_sam_local():
    environment = invoke.function_environment(
        parameters={"AllowedImageBuckets": "photos", "LogLevel": "DEBUG"},
        env_vars={
            "Parameters": {"FACESEARCH_STORE": "/everyone"},
            "FaceSearchFunction": {"FACESEARCH_STORE": "/mine"},
        },
        region="eu-west-1",
    )

    assert environment[settings.ENV_STORE] == "/mine"
    assert environment[settings.ENV_ALLOWED_IMAGE_BUCKETS] == "CollectionsBucket,photos"
    assert environment["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert environment["AWS_REGION"] == "eu-west-1"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "FaceSearchFunction"
    assert environment[invoke.HANDLER_ENV] == FUNCTION["Handler"]
    assert environment[invoke.TIMEOUT_ENV] == str(FUNCTION["Timeout"])
    if not settings.LAMBDA_MODELS_DIR.exists():
        assert environment[settings.ENV_MODELS_DIR] == str(settings.LOCAL_MODELS_DIR)


def test_resolver_refuses_what_it_cannot_evaluate():
    with pytest.raises(cfn.TemplateError, match="Fn::GetAZs is not evaluated locally"):
        _resolve({"Fn::GetAZs": ""})
    with pytest.raises(cfn.TemplateError, match="unknown Ref Nowhere"):
        _resolve({"Ref": "Nowhere"})


def test_invoke_runs_a_direct_event_in_the_function_environment(tmp_path):
    environment = invoke.function_environment(
        env_vars={
            "FaceSearchFunction": {"FACESEARCH_STORE": str(tmp_path), "POWERTOOLS_METRICS_DISABLED": "true"}
        }
    )
    event = {"Operation": "ListCollections", "Parameters": {}}

    assert invoke.invoke(event, environment) == {
        "StatusCode": 200,
        "Body": {"CollectionIds": [], "FaceModelVersions": []},
    }
    assert Path(tmp_path).is_dir()


def test_facesearch_invoke_command_prints_the_handler_result(tmp_path, capsys):
    from facesearch.devtools import cli

    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"FaceSearchFunction": {"FACESEARCH_STORE": str(tmp_path / "store")}}))
    event = REPO_ROOT / "events" / "direct-create-collection.json"

    status = cli.main(
        ["invoke", str(event), "--env-vars", str(env_vars), "--parameter-overrides", "LogLevel=ERROR"]
    )

    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert status == 0
    assert result["StatusCode"] == 200
    assert result["Body"]["CollectionArn"].endswith(":collection/demo")
    assert str(tmp_path / "store") in captured.err
    assert (tmp_path / "store" / "collections" / "demo" / "manifest.json").is_file()


def test_maintenance_function_runs_the_api_functions_code_with_the_longest_timeout():
    for key in ("CodeUri", "Runtime", "Architectures", "MemorySize", "Layers", "EphemeralStorage", "Tracing"):
        assert MAINTENANCE[key] == FUNCTION[key], key
    module, _, name = MAINTENANCE["Handler"].rpartition(".")
    assert (module, name) == ("facesearch.handler", "maintenance_handler")
    assert callable(getattr(handler, name))
    assert MAINTENANCE["Timeout"] == LAMBDA_MAX_TIMEOUT
    assert MAINTENANCE["Timeout"] * 1000 > 2 * handler.MAINTENANCE_SAFETY_MARGIN_MS
    assert MAINTENANCE["EventInvokeConfig"]["MaximumRetryAttempts"] == 0


def test_maintenance_function_is_scheduled_by_a_parameter_hourly_by_default():
    (event,) = MAINTENANCE["Events"].values()
    parameter = TEMPLATE["Parameters"]["MaintenanceSchedule"]

    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {"Ref": "MaintenanceSchedule"}
    assert parameter["Default"] == "rate(1 hour)"
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.fullmatch("rate(15 minutes)") and pattern.fullmatch("cron(0 3 * * ? *)")
    assert not pattern.fullmatch("hourly")


def test_maintenance_function_gets_only_the_store_cache_and_powertools_variables():
    constants = {value for name, value in vars(settings).items() if name.startswith("ENV_")}
    environment = {name: _resolve(value) for name, value in MAINTENANCE_VARIABLES.items()}

    named = {name for name in environment if name.startswith("FACESEARCH_")}
    assert named <= constants
    assert named == {settings.ENV_STORE, settings.ENV_CACHE_DIR, settings.ENV_CACHE_MAX_BYTES}
    for name in (settings.ENV_STORE, settings.ENV_CACHE_DIR, settings.ENV_CACHE_MAX_BYTES):
        assert environment[name] == _resolve(VARIABLES[name])
    assert _resolve(MAINTENANCE_VARIABLES[settings.ENV_STORE], BucketName="my-faces") == "s3://my-faces"
    assert environment["POWERTOOLS_SERVICE_NAME"] == telemetry.SERVICE_NAME
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == telemetry.METRICS_NAMESPACE
    assert environment["POWERTOOLS_LOG_LEVEL"] == "INFO"
    assert environment["OPENBLAS_NUM_THREADS"] == "1"  # see template.yaml's Globals
    assert set(environment) == {
        settings.ENV_STORE,
        settings.ENV_CACHE_DIR,
        settings.ENV_CACHE_MAX_BYTES,
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
        "OPENBLAS_NUM_THREADS",
    }


@pytest.mark.parametrize(
    "parameters", [{}, {"BucketName": "my-faces"}, {"AllowedImageBuckets": "photos-a,photos-b"}]
)
def test_maintenance_policies_reach_only_the_collections_prefix(parameters):
    bucket = parameters.get("BucketName", "CollectionsBucket")
    statements = {statement["Sid"]: statement for statement in _statements(MAINTENANCE, **parameters)}

    assert statements == {
        "CollectionsReadWrite": {
            "Sid": "CollectionsReadWrite",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": f"arn:aws:s3:::{bucket}/collections/*",
        },
        "CollectionsList": {
            "Sid": "CollectionsList",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": ["collections/", "collections/*"]}},
        },
    }


def test_find_function_defaults_to_the_api_function_and_refuses_unknown_names():
    assert invoke.find_function(TEMPLATE) == invoke.DEFAULT_FUNCTION == "FaceSearchFunction"
    assert invoke.find_function(TEMPLATE, "MaintenanceFunction") == "MaintenanceFunction"
    with pytest.raises(cfn.TemplateError, match="no function Nowhere in the template"):
        invoke.find_function(TEMPLATE, "Nowhere")


def test_facesearch_invoke_runs_the_maintenance_function_on_the_scheduled_event(tmp_path, capsys):
    from facesearch.devtools import cli

    env_vars = tmp_path / "env.json"
    store = tmp_path / "store"
    env_vars.write_text(
        json.dumps(
            {
                "MaintenanceFunction": {
                    "FACESEARCH_STORE": str(store),
                    "FACESEARCH_CACHE_DIR": str(tmp_path / "cache"),
                    "POWERTOOLS_METRICS_DISABLED": "true",
                }
            }
        )
    )
    event = REPO_ROOT / "events" / "scheduled-maintenance.json"

    status = cli.main(
        ["invoke", str(event), "--function", "MaintenanceFunction", "--env-vars", str(env_vars)]
    )

    captured = capsys.readouterr()
    assert status == 0
    assert json.loads(captured.out) == {
        "collections_visited": 0,
        "collections_compacted": 0,
        "segments_collected": 0,
        "stopped_early": False,
    }
    assert str(store) in captured.err
