"""samconfig.toml pins only what differs from the defaults; what the functions share is in Globals once."""

from __future__ import annotations

import shlex
import tomllib

from facesearch.devtools import cfn
from facesearch.settings import REPO_ROOT

TEMPLATE = cfn.load_template(REPO_ROOT / "template.yaml")
SAMCONFIG = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
FUNCTIONS = [
    name
    for name, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
]


def overrides() -> dict[str, str]:
    """Every ``parameter_overrides`` pair of every environment and command of samconfig.toml."""
    pairs = {}
    for environment in SAMCONFIG.values():
        if not isinstance(environment, dict):
            continue
        for command in environment.values():
            value = command.get("parameters", {}).get("parameter_overrides", "")
            items = value if isinstance(value, list) else shlex.split(value)
            pairs.update(item.split("=", 1) for item in items)
    return pairs


def test_samconfig_repins_no_template_default():
    parameters = TEMPLATE["Parameters"]
    for name, value in overrides().items():
        assert name in parameters, f"samconfig.toml overrides {name}, which template.yaml does not declare"
        assert value != str(parameters[name].get("Default")), (
            f"samconfig.toml pins {name}={value}, template.yaml's default: a later change of that default "
            "would have no effect"
        )


def test_samconfig_keeps_a_working_deploy_profile():
    deploy = SAMCONFIG["default"]["deploy"]["parameters"]
    assert SAMCONFIG["default"]["global"]["parameters"]["stack_name"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"  # the functions' roles
    assert deploy["resolve_s3"] is True


def test_what_the_functions_share_is_declared_once_in_globals():
    shared = TEMPLATE["Globals"]["Function"]
    for name in FUNCTIONS:
        own = TEMPLATE["Resources"][name]["Properties"]
        repeated = {key for key in own if key in shared and key != "Environment"}
        assert not repeated, f"{name} repeats Globals.Function's {sorted(repeated)}"
        variables = (own.get("Environment") or {}).get("Variables") or {}
        assert not set(variables) & set(shared["Environment"]["Variables"]), name
    assert len(FUNCTIONS) >= 2
    for key in ("CodeUri", "Runtime", "Architectures", "MemorySize", "EphemeralStorage", "Tracing", "Layers"):
        assert all(cfn.function_properties(TEMPLATE, name)[key] == shared[key] for name in FUNCTIONS), key
