"""Per-stage code fingerprints, so that Snakemake reruns a stage when its code changes.

Snakemake tracks a rule's shell command and params, not the Python code that a shell command
imports. Each rule runs one CLI command (`python -m saliency_bench <stage>`) and puts
`stage_fingerprint(stage)` into its params. The fingerprint hashes the source of every module
in the command's import closure, found by reading the `import` statements of the package's own
modules (including imports inside functions), so it cannot drift from the code: editing a module
reruns exactly the stages that import it, directly or not, and nothing else.
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PACKAGE_NAME = PACKAGE.name
# What `python -m saliency_bench <stage>` runs before the command's own module.
ENTRY_MODULES = (f"{PACKAGE_NAME}.__main__", f"{PACKAGE_NAME}.cli", f"{PACKAGE_NAME}.commands")


def module_file(module: str, root: Path) -> Path | None:
    """The source file of `module` (dotted, inside the package at `root`), or None if it is not one."""
    parts = module.split(".")[1:]
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path, module: str) -> frozenset[str]:
    """Dotted names that `module` (at `path`) imports from the package, wherever the import stands."""
    return _imported_names(path.read_text(), module, path.name == "__init__.py")


@lru_cache(maxsize=None)
def _imported_names(source: str, module: str, is_package: bool) -> frozenset[str]:
    # cached by source text: every stage's closure shares most modules, and an edited file is parsed anew
    here = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
            base = node.module if not node.level else (f"{anchor}.{node.module}" if node.module else anchor)
            names.add(base)
            # `from . import commands` imports a submodule, `from .x import y` may too
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(name for name in names if name == PACKAGE_NAME or name.startswith(PACKAGE_NAME + "."))


def with_parents(module: str) -> list[str]:
    """A module and the packages it lives in (importing it runs their __init__ first)."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


def import_closure(stage: str, root: Path = PACKAGE) -> list[Path]:
    """Source files that `saliency-bench <stage>` imports, directly or not, sorted."""
    command = f"{PACKAGE_NAME}.commands.{stage}"
    if module_file(command, root) is None:
        raise KeyError(f"no CLI command module for stage {stage!r} ({command})")
    pending, seen, files = [*ENTRY_MODULES, command], set(), set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_file(module, root)
        if path is None:  # a name imported from a module, not a module itself
            continue
        files.add(path)
        pending.extend(name for imported in imported_names(path, module) for name in with_parents(imported))
    return sorted(files)


@lru_cache(maxsize=None)
def stage_fingerprint(stage: str, root: Path = PACKAGE) -> str:
    """A short hash of the source of every module in `stage`'s import closure."""
    digest = hashlib.sha256()
    for path in import_closure(stage, root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
