"""pyproject.toml, envs/requirements.txt and envs/saliency-bench.yaml agree; the console script is declared;
benchmarks/gpu_wheels.sh (the offline GPU check's wheels) refuses bad arguments before fetching anything."""
from __future__ import annotations

import importlib
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# Packages an environment file may pin exactly instead of repeating pyproject's range.
MAY_PIN = {"torch", "torchvision"}
# Entries of the conda file that are not the project's dependencies.
CONDA_TOOLING = {"python", "pip"}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def project_requirements() -> dict[str, Requirement]:
    return by_name(pyproject()["project"]["dependencies"])


def by_name(lines: list[str]) -> dict[str, Requirement]:
    requirements = [Requirement(line) for line in lines]
    named = {canonicalize_name(r.name): r for r in requirements}
    assert len(named) == len(requirements), f"a package is listed twice: {lines}"
    return named


def pip_requirements() -> dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in (ROOT / "envs" / "requirements.txt").read_text().splitlines()]
    return by_name([line for line in lines if line])


def conda_requirements() -> dict[str, Requirement]:
    """Conda and pip entries of the conda environment, minus python, pip and the editable project."""
    dependencies = yaml.safe_load((ROOT / "envs" / "saliency-bench.yaml").read_text())["dependencies"]
    lines = []
    for entry in dependencies:
        for line in entry["pip"] if isinstance(entry, dict) else [entry]:
            if line.startswith("-"):  # -e ../ installs the project itself
                continue
            name = re.split(r"[<>=!~ ]", line, maxsplit=1)[0]
            if name not in CONDA_TOOLING:
                # conda's "pkg=1.2" means pip's "pkg==1.2.*"; keep pip-style specs as they are.
                lines.append(re.sub(r"(?<![<>=!~])=(?!=)", "==", line) if "==" not in line else line)
    return by_name(lines)


ENV_FILES = {"envs/requirements.txt": pip_requirements, "envs/saliency-bench.yaml": conda_requirements}


@pytest.mark.parametrize("env_file", ENV_FILES)
def test_environment_lists_the_project_dependencies(env_file):
    expected, listed = project_requirements(), ENV_FILES[env_file]()
    assert sorted(listed) == sorted(expected), f"{env_file} and pyproject.toml list different packages"
    for name, requirement in listed.items():
        wanted = expected[name].specifier
        pins = [s for s in requirement.specifier if s.operator == "=="]
        if name in MAY_PIN and pins:
            assert wanted.contains(pins[0].version), f"{env_file} pins {requirement} outside pyproject's {name}{wanted}"
        else:
            assert requirement.specifier == wanted, f"{env_file} has {requirement}, pyproject has {name}{wanted}"


@pytest.mark.parametrize("source", ["pyproject.toml", *ENV_FILES])
def test_snakemake_9(source):
    requirements = project_requirements() if source == "pyproject.toml" else ENV_FILES[source]()
    specifier: SpecifierSet = requirements["snakemake"].specifier
    assert specifier.contains("9.0.0") and specifier.contains("9.27.1")
    assert not specifier.contains("8.30.0") and not specifier.contains("10.0.0")


def test_the_environment_tests_run_in_satisfies_pyproject():
    for name, requirement in project_requirements().items():
        installed = metadata.version(name)
        assert requirement.specifier.contains(installed, prereleases=True), f"{name} {installed} does not satisfy {requirement}"


def test_console_script_is_declared_and_importable():
    assert pyproject()["project"]["scripts"] == {"saliency-bench": "saliency_bench.cli:main"}
    (script,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "saliency-bench"]
    module, function = script.value.split(":")
    assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.parametrize("arguments, problem", [
    (["--colour", "red"], "unknown argument '--colour'"),
    (["--have", "no-such-list.txt"], "no package list 'no-such-list.txt'"),
    (["--python", "no-such-python"], "cannot run 'no-such-python'"),
])
def test_gpu_wheels_refuses_bad_arguments_with_one_line(tmp_path, arguments, problem):
    out = tmp_path / "wheels"
    run = subprocess.run(["bash", "benchmarks/gpu_wheels.sh", *arguments, "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2
    assert problem in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not out.exists()  # nothing fetched, nothing half-written
