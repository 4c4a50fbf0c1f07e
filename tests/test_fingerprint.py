"""Rerun fingerprints: computed from each stage's import closure, so they cannot drift from the code."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from saliency_bench.fingerprint import PACKAGE, import_closure, stage_fingerprint

STAGES = sorted(p.stem for p in (PACKAGE / "commands").glob("*.py") if not p.name.startswith("_"))


def relative(paths, root=PACKAGE) -> set[str]:
    return {path.relative_to(root).as_posix() for path in paths}


def loaded_package_modules(stage: str) -> set[str]:
    """Package source files a fresh interpreter has loaded after building `saliency-bench <stage>`'s parser."""
    code = ("import json, sys; from saliency_bench.cli import build_parser; build_parser([sys.argv[1]]);"
            "print(json.dumps([m.__file__ for n, m in sys.modules.items() if n.startswith('saliency_bench')"
            " and getattr(m, '__file__', None)]))")
    result = subprocess.run([sys.executable, "-c", code, stage], capture_output=True, text=True, check=True)
    return relative(Path(path).resolve() for path in json.loads(result.stdout))


# a fresh interpreter per stage costs seconds: stages with light, model and demo imports
@pytest.mark.parametrize("stage", ["images", "aggregate", "explain", "train_demo"])
def test_closure_holds_every_module_the_command_loads(stage):
    assert loaded_package_modules(stage) <= relative(import_closure(stage))


def test_closure_follows_imports_into_subpackages_and_functions():
    closure = relative(import_closure("train_demo"))
    # train_demo's command reaches demo/synth.py only through demo/train.py
    assert {"commands/train_demo.py", "demo/train.py", "demo/synth.py", "demo/__init__.py", "cli.py"} <= closure
    assert "analysis/aggregate.py" not in closure


def test_the_demo_data_does_not_rerun_when_the_model_code_changes():
    """Generating the demo's images needs no model: its closure holds neither demo/train.py nor runtime/."""
    closure = relative(import_closure("demo_data"))
    assert "demo/synth.py" in closure
    assert not [path for path in closure if path.startswith("runtime/") or path == "demo/train.py"], closure


def test_unknown_stage_is_an_error():
    with pytest.raises(KeyError, match="no CLI command module"):
        import_closure("no_such_stage")


@pytest.fixture
def package_copy(tmp_path) -> Path:
    root = tmp_path / "saliency_bench"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
    return root


def fingerprints(root: Path) -> dict[str, str]:
    stage_fingerprint.cache_clear()
    return {stage: stage_fingerprint(stage, root) for stage in STAGES}


def test_a_deep_edit_changes_exactly_the_stages_that_import_it(package_copy):
    before = fingerprints(package_copy)
    with open(package_copy / "demo" / "synth.py", "a") as handle:
        handle.write("\n# an edit deep in the demo's code\n")
    after = fingerprints(package_copy)
    changed = {stage for stage in STAGES if before[stage] != after[stage]}
    expected = {stage for stage in STAGES if "demo/synth.py" in relative(import_closure(stage, package_copy), package_copy)}
    assert "train_demo" in changed and changed == expected
    assert "aggregate" not in changed and "masks" not in changed


def test_a_module_outside_every_closure_changes_nothing(package_copy):
    before = fingerprints(package_copy)
    (package_copy / "unused_helper.py").write_text("VALUE = 1\n")
    with open(package_copy / "fingerprint.py", "a") as handle:
        handle.write("\n# the workflow imports this module, no stage runs it\n")
    assert fingerprints(package_copy) == before
