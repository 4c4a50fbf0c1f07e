"""Per-stage code fingerprints, so that Snakemake reruns a stage when its code changes.

Snakemake tracks a rule's shell command and params, not the Python code that a shell
command imports. The workflow puts `stage_fingerprint(stage)` into each rule's params:
editing a module that a stage uses changes the fingerprint and reruns exactly that stage.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
COMMON = ("errors.py", "data.py", "models.py", "forward.py")
# What every stage that runs the model through the shared CLI options imports as well.
RUNS_MODEL = COMMON + ("throughput.py", "commands/_options.py")

STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "images": ("errors.py", "data.py", "commands/images.py"),
    "masks": ("errors.py", "masks.py", "commands/masks.py"),
    "demo_data": ("errors.py", "demo/__init__.py", "demo/synth.py", "commands/demo_data.py"),
    "train_demo": COMMON + ("demo/__init__.py", "demo/train.py", "commands/train_demo.py"),
    "tune_forward": RUNS_MODEL + ("commands/tune_forward.py",),
    "explain": RUNS_MODEL + ("masks.py", "rise.py", "abscam.py", "baselines.py", "explain.py", "saliency_io.py",
                            "commands/explain.py"),
    "evaluate": RUNS_MODEL + ("metrics.py", "evaluate.py", "saliency_io.py", "commands/evaluate.py"),
    "aggregate": ("errors.py", "stats.py", "localisation.py", "aggregate.py", "saliency_io.py", "commands/aggregate.py"),
    "figures": ("errors.py", "data.py", "saliency_io.py", "figures.py", "commands/figures.py"),
    "sanity": RUNS_MODEL + ("rise.py", "abscam.py", "masks.py", "explain.py", "sanity.py", "commands/sanity.py"),
}


@lru_cache(maxsize=None)
def stage_fingerprint(stage: str) -> str:
    """A short hash of the source of every module `stage` runs (missing modules hash as absent)."""
    digest = hashlib.sha256()
    for relative in STAGE_MODULES[stage]:
        path = PACKAGE / relative
        digest.update(relative.encode())
        digest.update(path.read_bytes() if path.is_file() else b"<absent>")
    return digest.hexdigest()[:16]
