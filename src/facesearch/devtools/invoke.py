"""``facesearch invoke EVENT.json``: run a function's handler on an event as ``sam local invoke -e`` would.

The function's environment comes from template.yaml (its ``Environment.Variables``, with parameters at
their defaults or ``--parameter-overrides``, pseudo parameters, ``Ref``/``Fn::Sub``/``Fn::Join``/``Fn::If``
resolved the way SAM CLI resolves them locally: a ``Ref`` to a resource gives its logical id), then
``--env-vars`` (SAM CLI's JSON format) on top. Paths under a layer's mount point (``/opt/models``) are
mapped to where the layer's content is built locally. The shell's own environment (credentials,
``AWS_ENDPOINT_URL_S3``) stays visible, as in a Lambda sandbox that has its own.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from facesearch import lazy
from facesearch.devtools.cfn import Resolver, TemplateError, function_properties, load_template
from facesearch.settings import LOCAL_MODELS_DIR, REPO_ROOT

DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
FUNCTION_TYPE = "AWS::Serverless::Function"
# The function an event goes to when the template has several and none is named: the API's.
DEFAULT_FUNCTION = "FaceSearchFunction"
# What SAM CLI sets in the container besides the template's variables (the handler, the timeout in s).
HANDLER_ENV = "AWS_LAMBDA_FUNCTION_HANDLER"
TIMEOUT_ENV = "AWS_LAMBDA_FUNCTION_TIMEOUT"
# Lambda's defaults for a function that does not set them.
DEFAULT_HANDLER = "facesearch.handler.lambda_handler"
DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_REGION = "us-east-1"
# Layer mount points in Lambda and the local folders that hold the same content (the models layer's
# Makefile copies LOCAL_MODELS_DIR into the layer).
LAYER_MOUNTS = {"/opt/models": LOCAL_MODELS_DIR}


def find_function(template: Mapping[str, Any], name: str | None = None) -> str:
    """The function's logical id: ``name`` if given, else the only function, or DEFAULT_FUNCTION."""
    functions = [
        key for key, res in (template.get("Resources") or {}).items() if res.get("Type") == FUNCTION_TYPE
    ]
    if name is not None:
        if name not in functions:
            raise TemplateError(f"no function {name} in the template (functions: {', '.join(functions)})")
        return name
    if len(functions) > 1 and DEFAULT_FUNCTION in functions:
        return DEFAULT_FUNCTION
    if len(functions) != 1:
        raise TemplateError(f"the template has {len(functions)} functions: name one ({', '.join(functions)})")
    return functions[0]


def function_environment(
    template_path: Path = DEFAULT_TEMPLATE,
    function: str | None = None,
    parameters: Mapping[str, str] | None = None,
    env_vars: Mapping[str, Any] | None = None,
    region: str | None = None,
) -> dict[str, str]:
    """The variables the function sees: template values resolved, ``env_vars`` (SAM's format) on top.

    ``env_vars`` is ``{"<FunctionLogicalId>": {...}, "Parameters": {...}}`` as ``sam local invoke --env-vars``
    takes it: ``Parameters`` apply to every function, the function's own entry wins.
    """
    template = load_template(template_path)
    name = find_function(template, function)
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    resolver = Resolver(template, parameters or {}, region)
    properties = function_properties(template, name)
    variables = resolver.resolve((properties.get("Environment") or {}).get("Variables") or {})
    environment = {key: str(value) for key, value in variables.items() if value is not None}
    overrides = env_vars or {}
    for scope in ("Parameters", name):
        environment.update({key: str(value) for key, value in (overrides.get(scope) or {}).items()})
    for key, value in list(environment.items()):
        for mount, local in LAYER_MOUNTS.items():
            if (value == mount or value.startswith(mount + "/")) and not Path(mount).exists():
                environment[key] = str(local) + value[len(mount) :]
    memory = resolver.resolve(properties.get("MemorySize", 128))
    environment.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            HANDLER_ENV: str(resolver.resolve(properties.get("Handler", DEFAULT_HANDLER))),
            TIMEOUT_ENV: str(resolver.resolve(properties.get("Timeout", DEFAULT_TIMEOUT_SECONDS))),
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
        }
    )
    return environment


@contextmanager
def function_sandbox(environment: Mapping[str, str]) -> Iterator[None]:
    """The process environment with the function's variables set, as a cold container; restored after."""
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    lazy.reset_all()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        lazy.reset_all()


def invoke(event: Mapping[str, Any], environment: Mapping[str, str]) -> dict[str, Any]:
    """Run the function's handler on ``event`` inside its environment; returns its result.

    The handler is the template's ``Handler`` (``facesearch.handler.lambda_handler`` if the environment
    does not name one); the context has the function's ``Timeout`` left, as at the start of an invocation.

    What the function prints (JSON logs, EMF metrics) is its log stream: it goes to stderr, as
    ``sam local invoke`` shows it, so that stdout carries only the result.
    """
    from facesearch.devtools.server import LocalLambdaContext

    module_name, _, attribute = environment.get(HANDLER_ENV, DEFAULT_HANDLER).rpartition(".")
    with function_sandbox(environment), contextlib.redirect_stdout(sys.stderr):
        handler = getattr(importlib.import_module(module_name), attribute)
        context = LocalLambdaContext(
            function_name=environment.get("AWS_LAMBDA_FUNCTION_NAME", "facesearch-local"),
            memory_limit_in_mb=int(environment.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "0")),
            remaining_millis=int(environment.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_SECONDS)) * 1000,
        )
        return handler(dict(event), context)


def _parameter_overrides(pairs: list[str]) -> dict[str, str]:
    parameters = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--parameter-overrides takes Name=Value pairs, got {pair!r}")
        parameters[key.removeprefix("ParameterKey=")] = value
    return parameters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("event", type=Path, help="event JSON file, e.g. events/direct-list-collections.json")
    parser.add_argument("--template", "-t", type=Path, default=DEFAULT_TEMPLATE, help="SAM template")
    parser.add_argument(
        "--function", help=f"function logical id (default: the only function, else {DEFAULT_FUNCTION})"
    )
    parser.add_argument("--env-vars", "-n", type=Path, help="JSON file of variables, as for sam local invoke")
    parser.add_argument("--parameter-overrides", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1)")


def run(args: argparse.Namespace) -> int:
    """Print the handler's result as JSON, as ``sam local invoke`` prints the function's response."""
    event = json.loads(args.event.read_text())
    env_vars = json.loads(args.env_vars.read_text()) if args.env_vars else None
    environment = function_environment(
        args.template, args.function, _parameter_overrides(args.parameter_overrides), env_vars, args.region
    )
    shown = {key: value for key, value in environment.items() if key.startswith("FACESEARCH_")}
    print(f"facesearch invoke: {args.event} with {json.dumps(shown)}", file=sys.stderr)
    print(json.dumps(invoke(event, environment)))
    return 0
