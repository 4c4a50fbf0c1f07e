"""Shared fixtures: the golden reference case (tests/data/golden/) and its model.

`golden_model` loads the model's shipped weights (tests/data/golden/model_state_dict_fp16.pt) and
checks its sha256; a wrong digest FAILS (never skips), because every golden comparison
would then be meaningless. `golden` is reference.npz as a dict of numpy arrays, and
`golden_case` is case.json.

Float comparisons follow the policy in tests/README.md: exact only where equal by construction,
otherwise the helpers and constants of tests/tolerances.py (the one place for tolerances).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from saliency_bench.runtime.forward import exact_float32

GOLDEN_DIR = Path(__file__).parent / "data" / "golden"
GOLDEN_SHA256 = "13f57e68696c1414e8ddfa941825ba58eaf20a70de4eb2df6a0b50fbb0664e8c"

# SALIENCY_BENCH_TEST_DEVICE=cuda runs the golden comparisons on a GPU (benchmarks/gpu_check.sh), with
# TF32 off as the package runs (its 10-bit mantissa is not float32 round-off), also for the tests' own
# direct model calls.
TEST_DEVICE = torch.device(os.environ.get("SALIENCY_BENCH_TEST_DEVICE", "cpu"))
exact_float32(TEST_DEVICE)

# `make test` runs the suite in TEST_WORKERS processes (pytest-xdist, --dist loadgroup). Each worker
# keeps one torch thread: two workers of two threads each on 2 cores oversubscribe them (see
# `one_thread`), and a worker's idle core is what the other one uses.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def state_dict_sha256(model: torch.nn.Module) -> str:
    """The README's digest: per entry, key bytes then tensor bytes (floating as float16)."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode("utf-8"))
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float16)
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_golden_model(case: dict) -> torch.nn.Module:
    """The golden model from its shipped fp16 weights. The seed recipe in the README gives
    another model on other CPU kernels (e.g. ATEN_CPU_CAPABILITY=default), so it is not used."""
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=case["classes"])
    stored = torch.load(GOLDEN_DIR / "model_state_dict_fp16.pt", map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in stored.items()})
    return model.eval()


@pytest.fixture(scope="session")
def golden_case() -> dict:
    return json.loads((GOLDEN_DIR / "case.json").read_text())


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN_DIR / "reference.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def _golden_model_checked(golden_case) -> torch.nn.Module:
    model = build_golden_model(golden_case)
    digest = state_dict_sha256(model)
    if digest != GOLDEN_SHA256:
        pytest.fail(f"golden model sha256 is {digest}, expected {GOLDEN_SHA256}: the loaded model is not the "
                    "golden one (weights file changed), so golden comparisons are meaningless")
    return model


@pytest.fixture
def golden_model(_golden_model_checked) -> torch.nn.Module:
    """A fresh copy of the golden model (eval mode) on TEST_DEVICE, checked against the README's
    sha256. Built once per session and copied per test, so a test may change it freely."""
    return copy.deepcopy(_golden_model_checked).to(TEST_DEVICE)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of many tiny forward passes: on 2 shared cores, 2 threads
    ran such tests about 20x slower than 1 (thread start-up and oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The real workflow on tests/data/tiny_config.yaml, run once per session: the workflow tests
    inspect it and the recovery test compares an interrupted run with it."""
    from workflow_helpers import make_workdir, snakemake

    workdir = make_workdir(tmp_path_factory.mktemp("workflow"))
    result = snakemake(workdir, "--cores", "2", timeout=1500)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


# Tests that share an expensive session fixture run in one worker, so it is built once: the tiny
# workflow run (4 files use it), the SLURM cluster, the demo model trained here. Every other test
# stays with its file, whose module fixtures are then built once too.
SHARED_FIXTURE_GROUPS = {"tiny_run": "tiny_run", "slurm_cluster": "slurm", "trained": "trained_demo"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        shared = [group for fixture, group in SHARED_FIXTURE_GROUPS.items() if fixture in item.fixturenames]
        item.add_marker(pytest.mark.xdist_group(shared[0] if shared else item.path.name))
    # The longest groups first (the workers take groups in this order, `--no-loadscope-reorder`): the
    # shared fixtures' groups, then the files that run real workflows, then the rest, each in file order.
    items.sort(key=_start_order)


def _start_order(item) -> int:
    if item.get_closest_marker("xdist_group").args[0] in SHARED_FIXTURE_GROUPS.values():
        return 0
    return 1 if item.get_closest_marker("workflow") else 2
