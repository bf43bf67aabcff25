"""The shape of the package, read from its source: imports go down the layers (README, "Architecture"), no module
imports itself back through others, the device side needs nothing TensorFlow-bound, and no module outgrows a read."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edge_fer"

# bottom up: a module may import its own layer and those below, never one above
LAYERS = (
    ("ground", ("edge_fer", "errors", "registry", "atomic", "status", "ui", "quiet", "tomllib_compat", "versions")),
    ("artifacts", ("formats", "artifacts", "engine_info")),
    ("config", ("config",)),
    ("data", ("data",)),
    ("models", ("models",)),
    ("runtimes", ("runtimes", "compare", "evaluate")),
    ("train", ("train",)),
    ("quantize", ("quantize",)),
    ("targets", ("targets",)),
    ("export", ("export",)),
    ("bench", ("bench",)),
    ("apps", ("predict", "report", "doctor", "debug")),
    ("pipeline", ("pipeline",)),
    ("cli", ("cli",)),
)
NEVER = {  # (importer, imported): below each other in the layers, yet a dependency the design rules out
    ("runtimes", "export"), ("runtimes", "train"), ("bench", "train"), ("data", "models"),
}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = ["edge_fer", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every edge_fer module a file imports, at the top or inside a function ('from edge_fer.x import y' counts
    y where y is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("edge_fer"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in known}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("edge_fer")}
    return found


@functools.cache
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) - {name} for name, path in found.items()}


def layer_of(module: str) -> tuple[int, str]:
    top = module.split(".")[1] if "." in module else "edge_fer"
    for index, (name, members) in enumerate(LAYERS):
        if top in members:
            return index, name
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to the README's architecture)")


def test_every_import_goes_down_the_layers():
    upward = []
    for module, imported in graph().items():
        level, name = layer_of(module)
        for target in imported:
            target_level, target_name = layer_of(target)
            if target_level > level or (name, target_name) in NEVER:
                upward.append(f"{module} ({name}) imports {target} ({target_name})")
    assert not upward, "\n".join(sorted(upward))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                cycle = visit(nxt, [*path, nxt])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_no_module_imports_itself_back():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_device_side_imports_only_the_device_side():
    from edge_fer.bench.remote import runner_modules

    carried = {module_name(PACKAGE / path) for path in runner_modules()}
    edges = graph()
    outside = {f"{module} imports {target}" for module in carried for target in edges[module]
               if target not in carried and not target.startswith("edge_fer.runtimes.")}
    assert not outside, sorted(outside)


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_module_outgrows_a_read(module):
    lines = modules()[module].read_text().count("\n")
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it (at most {MAX_LINES})"
