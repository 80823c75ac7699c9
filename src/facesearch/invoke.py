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
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from facesearch import lazy
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
# What SAM CLI substitutes for pseudo parameters when invoking locally (account id is its placeholder).
PSEUDO_PARAMETERS = {
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "local",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/local/local",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}
DEFAULT_REGION = "us-east-1"
# ``Fn::GetAtt <Resource>.Arn`` of the resource types whose ARN follows from their name alone.
ARN_FORMATS = {"AWS::S3::Bucket": "arn:{partition}:s3:::{name}"}
# Layer mount points in Lambda and the local folders that hold the same content (the models layer's
# Makefile copies LOCAL_MODELS_DIR into the layer).
LAYER_MOUNTS = {"/opt/models": LOCAL_MODELS_DIR}
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """The template uses something this local resolver cannot evaluate."""


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short-form tags (``!Ref x``) into their long form."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    """The template as plain data, short-form tags expanded."""
    return yaml.load(Path(path).read_text(), Loader=_CfnLoader)


class _Resolver:
    """Evaluates the intrinsic functions an environment block uses, as SAM CLI does locally."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str], region: str) -> None:
        self.template = template
        self.values: dict[str, Any] = {**PSEUDO_PARAMETERS, "AWS::Region": region}
        for name, spec in (template.get("Parameters") or {}).items():
            value = parameters.get(name, spec.get("Default"))
            if value is None:
                raise TemplateError(f"parameter {name} has no default: pass --parameter-overrides {name}=...")
            value = str(value)
            self.values[name] = value.split(",") if spec.get("Type") == "CommaDelimitedList" else value
        for name in template.get("Resources") or {}:
            self.values.setdefault(name, name)
        self.conditions = template.get("Conditions") or {}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            raise TemplateError(f"unknown condition {name}")
        return bool(self.resolve(self.conditions[name]))

    def attribute(self, resource: str, name: str) -> str:
        """``Fn::GetAtt``: a resource's ARN where its type makes it follow from its name."""
        kind = ((self.template.get("Resources") or {}).get(resource) or {}).get("Type")
        if name != "Arn" or kind not in ARN_FORMATS:
            raise TemplateError(f"cannot resolve {resource}.{name} locally (a {kind} attribute)")
        return ARN_FORMATS[kind].format(partition=self.values["AWS::Partition"], name=self.values[resource])

    def _sub(self, text: str, extra: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in extra:
                return str(extra[name])
            if "." in name:
                return self.attribute(*name.split(".", 1))
            if name not in self.values:
                raise TemplateError(f"unknown name ${{{name}}} in Fn::Sub")
            return str(self.values[name])

        return _SUB_VARIABLE.sub(replace, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {key: self.resolve(value) for key, value in node.items()}
        ((key, arg),) = node.items()
        if key == "Ref":
            if arg not in self.values:
                raise TemplateError(f"unknown Ref {arg}")
            return self.values[arg]
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
            return self._sub(text, extra)
        if key == "Fn::Join":
            delimiter, items = arg
            return delimiter.join(str(item) for item in _flatten(self.resolve(items)))
        if key == "Fn::Split":
            delimiter, text = arg
            return str(self.resolve(text)).split(delimiter)
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::GetAtt":
            return self.attribute(*arg)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key == "Fn::Equals":
            left, right = self.resolve(arg)
            return left == right
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(arg))
        if key == "Fn::Or":
            return any(self.resolve(arg))
        if key.startswith("Fn::"):
            raise TemplateError(f"{key} is not evaluated locally")
        return {key: self.resolve(arg)}


def _flatten(items: Any) -> Iterator[Any]:
    for item in items if isinstance(items, list) else [items]:
        yield from _flatten(item) if isinstance(item, list) else [item]


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
    resolver = _Resolver(template, parameters or {}, region)
    properties = template["Resources"][name].get("Properties") or {}
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
    from facesearch.server import LocalLambdaContext

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
