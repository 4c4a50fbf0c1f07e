"""The layers of docs/architecture.md, checked: every module imports only from its own layer and
the layers above it (top-level, function-level and type-checking imports alike), and no two
top-level units (modules or sub-packages) import each other, directly or round a longer cycle."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "saliency_bench"

# docs/architecture.md, in order: a module's layer is that of its longest matching prefix
LAYERS = {
    "": 1, "errors": 1, "argtypes": 1, "console": 1, "numeric": 1, "config": 1, "data": 1, "formats": 1,
    "runtime": 2, "demo": 2,
    "perlin": 3, "masks": 3, "rise": 3, "abscam": 3, "baselines": 3, "methods": 3, "explain": 3,
    "metrics": 4,
    "analysis": 5, "sanity": 5,
    "workflow_config": 6, "plan": 6, "fingerprint": 6,
    "report": 7,
    "cli": 8, "__main__": 8, "commands": 8,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".") if module else []
    for size in range(len(parts), -1, -1):
        prefix = ".".join(parts[:size])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(module)


def imported_modules(path: Path) -> set[str]:
    """Package-relative names of the package modules that `path` imports (a name imported from a
    package counts as the submodule when one exists)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module == "saliency_bench" or (node.module or "").startswith("saliency_bench."):
                target = node.module.removeprefix("saliency_bench").lstrip(".")
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}".lstrip(".")
                is_sub = (PACKAGE / sub.replace(".", "/")).with_suffix(".py").exists() or \
                    (PACKAGE / sub.replace(".", "/") / "__init__.py").exists()
                found.add(sub if is_sub else target)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("saliency_bench").lstrip(".") for a in node.names
                      if a.name.startswith("saliency_bench.")}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    assert all(layer(module_name(path)) for path in MODULES)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_from_its_layer_and_above(path):
    own = layer(module_name(path))
    below = {name: layer(name) for name in imported_modules(path) if layer(name) > own}
    assert below == {}, f"{module_name(path)} (layer {own}) imports from lower layers: {below}"


def test_the_check_sees_a_violation(tmp_path):
    """An import from a lower layer is caught (the same parser on a module placed in runtime/)."""
    global PACKAGE
    saved = PACKAGE
    try:
        PACKAGE = tmp_path
        (tmp_path / "runtime").mkdir()
        (tmp_path / "analysis").mkdir()
        (tmp_path / "analysis" / "stats.py").write_text("")
        probe = tmp_path / "runtime" / "probe.py"
        probe.write_text("def f():\n    from ..analysis import stats\n")
        assert imported_modules(probe) == {"analysis.stats"} and layer("analysis.stats") > layer("runtime.probe")
    finally:
        PACKAGE = saved


def unit(module: str) -> str:
    """A module's top-level unit: its sub-package (`formats`) or its own name (`data`)."""
    return module.split(".")[0]


def unit_imports() -> dict[str, set[str]]:
    """Which other top-level units each unit imports (the package root `""` left out)."""
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        own = unit(module_name(path))
        graph.setdefault(own, set()).update(unit(name) for name in imported_modules(path) if unit(name) not in ("", own))
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of `graph` (its units in order, the first repeated at the end), or [] when there is none."""
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str]:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return trail[trail.index(target):] + [target]
            if target not in state:
                found = visit(target, trail + [target])
                if found:
                    return found
        state[node] = "done"
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return []


def test_no_two_units_import_each_other():
    """Within a layer the units still form a one-way flow (formats never import data, which reads formats)."""
    assert import_cycle(unit_imports()) == []


def test_the_cycle_check_sees_a_cycle():
    assert import_cycle({"data": {"formats"}, "formats": {"errors", "data"}, "errors": set()}) == ["data", "formats", "data"]
    assert import_cycle({"data": {"formats"}, "formats": {"errors"}, "errors": set()}) == []
