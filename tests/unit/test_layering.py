"""The import graph runs door -> protocol -> operations -> vision/store, with no cycles (read from source)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import facesearch

SRC = Path(facesearch.__file__).parent
PACKAGE = "facesearch"
# What each layer may not import. protocol.shapes and protocol.context are the wire's data types, which
# the operations take and return; the rest of protocol (doors, dispatch, validate, wire) is above them.
FORBIDDEN = {
    "facesearch.vision": ("facesearch.protocol", "facesearch.operations", "facesearch.store"),
    "facesearch.store": ("facesearch.protocol", "facesearch.operations", "facesearch.vision"),
    "facesearch.operations": (
        "facesearch.protocol.doors",
        "facesearch.protocol.dispatch",
        "facesearch.protocol.wire",
        "facesearch.handler",
    ),
    "facesearch.protocol": ("facesearch.handler",),
}
DEVTOOLS = "facesearch.devtools"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every facesearch module ``path`` imports, at any depth of the file (lazy imports count).

    ``from pkg import name`` is an import of the module ``pkg.name`` when there is one, else of ``pkg``.
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _is_module(candidate) else node.module)
    return {name for name in found if name.split(".")[0] == PACKAGE}


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (SRC / relative).with_suffix(".py").is_file() or (SRC / relative / "__init__.py").is_file()


GRAPH = {module_name(path): imports_of(path) for path in SRC.rglob("*.py")}
MODULES = set(GRAPH)


def edges(name: str) -> set[str]:
    return {target for target in GRAPH[name] if target in MODULES and target != name}


def closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in edges(todo.pop()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_graph_was_read():
    assert {"facesearch.handler", "facesearch.protocol.doors", "facesearch.operations.faces"} <= MODULES
    assert "facesearch.protocol.dispatch" in edges("facesearch.protocol.doors")


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer):
    wrong = {
        (name, target)
        for name in MODULES
        if name == layer or name.startswith(layer + ".")
        for target in edges(name)
        if any(target == bad or target.startswith(bad + ".") for bad in FORBIDDEN[layer])
    }
    assert wrong == set()


def test_no_module_imports_itself_through_others():
    assert sorted(name for name in MODULES if name in closure(name)) == []


def test_the_lambda_handler_never_reaches_developer_tooling():
    reached = closure("facesearch.handler")
    assert "facesearch.operations.faces" in reached
    assert sorted(name for name in reached if name.startswith(DEVTOOLS)) == []


def test_only_devtools_imports_devtools():
    outside = {
        name
        for name in MODULES
        if not name.startswith(DEVTOOLS) and name != "facesearch.__main__"
        if any(target.startswith(DEVTOOLS) for target in edges(name))
    }
    assert outside == set()
