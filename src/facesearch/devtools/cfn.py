"""A local CloudFormation resolver: template values as SAM CLI resolves them when it runs a function."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

# What SAM CLI substitutes for pseudo parameters when invoking locally (account id is its placeholder).
PSEUDO_PARAMETERS = {
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "local",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/local/local",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}
# ``Fn::GetAtt <Resource>.Arn`` of the resource types whose ARN follows from their name alone.
ARN_FORMATS = {"AWS::S3::Bucket": "arn:{partition}:s3:::{name}"}
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


def function_properties(template: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A function's properties with ``Globals.Function`` merged in as SAM merges them: the function's own
    values win, maps merge (``Environment.Variables`` too), lists are the global items then the function's."""
    merged: dict[str, Any] = {}
    own = (template["Resources"][name].get("Properties") or {}).items()
    for key, value in [*((template.get("Globals") or {}).get("Function") or {}).items(), *own]:
        merged[key] = _merge(merged[key], value) if key in merged else value
    return merged


def _merge(base: Any, value: Any) -> Any:
    if isinstance(base, dict) and isinstance(value, dict):
        merged = dict(base)
        for key, item in value.items():
            merged[key] = _merge(base[key], item) if key in base else item
        return merged
    if isinstance(base, list) and isinstance(value, list):
        return [*base, *value]
    return value


class Resolver:
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
