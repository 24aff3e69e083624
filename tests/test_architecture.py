"""The layers of ARCHITECTURE.md hold: `pipelines` -> steps (`components/<step>.py`) -> libraries
(`components/<library>/`), each library importing only the libraries below it, and no import cycle anywhere.
Every import counts, also those inside functions and under TYPE_CHECKING."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Which libraries each library may import (besides itself). A new edge belongs in ARCHITECTURE.md too.
LIBRARY_DEPENDENCIES: dict[str, set[str]] = {
    "core": set(),
    "storage": {"core"},
    "tasks": {"core", "storage"},
    "models": {"core", "storage"},
    "generation": {"core", "models"},
    "training": {"core", "storage", "models"},
    "demo": {"core", "tasks", "models", "training"},
    "settings": {"core", "storage", "tasks", "generation", "training", "demo"},
    "published": {"core", "storage"},
    "reporting": {"core"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for top in ("components", "pipelines") for p in (ROOT / top).rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The project modules (and `kfp`) a file imports: `from a.b import c` counts as a.b.c when that is a module."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "kfp":
                yield "kfp"
            elif name in modules:
                yield name


def layer(module: str) -> tuple[str, str]:
    """("pipelines", name), ("step", name) or ("library", package)."""
    parts = module.split(".")
    if parts[0] == "pipelines":
        return "pipelines", module
    if len(parts) == 2 and not (ROOT / "components" / parts[1]).is_dir():
        return "step", parts[1]
    return ("library", parts[1]) if len(parts) > 1 else ("package", "components")


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports. A step's KFP wrapper imports its own module (KFP runs the wrapper's body
    alone): that is not an edge."""
    modules = project_modules()
    return {m: set(imports_of(p, modules)) - {m} for m, p in modules.items()}


def test_every_library_package_has_a_place_in_the_layer_table():
    packages = {p.name for p in (ROOT / "components").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LIBRARY_DEPENDENCIES)


def test_imports_point_down_the_layers():
    wrong = []
    for module, targets in import_graph().items():
        kind, name = layer(module)
        for target in targets:
            if target == "kfp":
                if kind == "library":
                    wrong.append(f"{module} imports kfp (libraries know nothing of KFP)")
                continue
            t_kind, t_name = layer(target)
            if kind in ("library", "step") and t_kind == "pipelines":
                wrong.append(f"{module} imports {target} (only pipelines/ may import pipelines/)")
            if kind == "library" and t_kind == "step":
                wrong.append(f"{module} imports the step {target} (libraries never import steps)")
            if kind == "library" and t_kind == "library" and t_name != name \
                    and t_name not in LIBRARY_DEPENDENCIES[name]:
                wrong.append(f"{module} imports {target}: library {name} may import only "
                             f"{sorted(LIBRARY_DEPENDENCIES[name]) or 'no other library'}")
    assert not wrong, "\n".join(sorted(wrong))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a list of modules, first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("graph", "expected"),
    [({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]), ({"a": {"b"}, "b": {"c"}, "c": set()}, None)],
)
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert find_cycle(graph) == expected


def test_the_layer_check_sees_a_library_importing_a_step(tmp_path, monkeypatch):
    """The check itself can fail: a library module that imports a step is reported."""
    modules = project_modules()
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from components.train import train\n")
    assert "components.train" in set(imports_of(bad, modules))
    assert layer("components.train") == ("step", "train")
    assert layer("components.storage.folders")[0] == "library"
