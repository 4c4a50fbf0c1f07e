"""Run the real Snakemake workflow in a temporary directory (shared by the workflow and SLURM tests),
and load the benchmark scripts that tests check."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TINY_CONFIG = REPO / "tests" / "data" / "tiny_config.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def make_workdir(root: Path, overrides: dict | None = None) -> Path:
    """A working directory holding config/ (the defaults) and tiny.yaml (the tiny test config)."""
    shutil.copytree(REPO / "config", root / "config")
    config = yaml.safe_load(TINY_CONFIG.read_text())
    deep_update(config, overrides or {})
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))
    return root


def deep_update(base: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def typed_config(values: dict):
    """The workflow's typed config of `values` (validated, the schema's defaults filled in)."""
    from saliency_bench.config import load_config

    return load_config(values, SCHEMA)


def write_config(workdir: Path, name: str, changes: dict) -> Path:
    config = deep_update(yaml.safe_load((workdir / "tiny.yaml").read_text()), changes)
    path = workdir / name
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str, configfile: str | Path | None = "tiny.yaml", timeout: int = 600,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """The real workflow in `workdir`; `configfile` None: none given, as a plain `snakemake --cores all`."""
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               *(("--configfile", str(configfile)) if configfile else ()), *args]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=full_env)


def planned_jobs(workdir: Path, configfile: str | Path = "tiny.yaml", env: dict | None = None) -> dict[str, int]:
    """Rule -> number of jobs a dry run would execute ({} when nothing is to be done)."""
    result = snakemake(workdir, "-n", configfile=configfile, env=env, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    if "Nothing to be done" in output:
        return {}
    stats = output.split("Job stats:", 1)[1]
    jobs = {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)\s*$", stats, flags=re.M)}
    jobs.pop("total", None)
    jobs.pop("all", None)
    return jobs


def make_user_project(root: Path, *, classes: int = 2, per_class: int = 3, size: int = 32) -> dict:
    """A user's own data: an ImageFolder of seeded noise images, evidence masks and a checkpoint.

    Returns the config (no demo) that points the workflow at them.
    """
    import numpy as np
    import torch
    import torchvision
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in range(classes):
        for index in range(per_class):
            for folder, pixels in (("images", rng.integers(0, 256, (size, size, 3), dtype=np.uint8)),
                                   ("evidence", np.zeros((size, size), np.uint8))):
                path = root / folder / f"class{label}" / f"img{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                if folder == "evidence":
                    pixels[size // 4: size // 2, size // 4: size // 2] = 255
                Image.fromarray(pixels).save(path)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None, num_classes=classes).state_dict(), root / "model.pt")
    return {
        "data": {"root": str(root / "images"), "split": "all", "limit": 2, "evidence_root": str(root / "evidence")},
        "model": {"checkpoint": str(root / "model.pt")},
        "preprocess": {"size": [size, size]},
        # both forward settings named: no timing job, so every run writes identical bytes
        "images_per_job": 2, "batch_size": 16, "memory_format": "contiguous", "threads": 1,
        "rise": {"n_masks": 8, "binary": {"p": [0.5]}, "gaussian": {"enabled": False}, "perlin": {"enabled": False}},
        "abscam": {"layers": ["layer4"], "variants": ["init"]},
        "stats": {"bootstrap": 200},
        "figures": {"max_images": 1},
    }


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
