"""Model jobs keep freed memory in the process (runtime.allocator): a large block freed stays
resident instead of going back to the kernel, so the next batch does not fault it in again.
The benchmarks that time forward passes do the same, so they time what the jobs run.
Each case runs in a fresh interpreter: the setting is process-wide."""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")

BLOCK_MB = 128
# Allocate and free a block larger than glibc's largest mmap threshold (32 MB); print how much of
# it left the resident set when it was freed.
SCRIPT = f"""
import os, sys
import numpy as np
from saliency_bench import cli
from saliency_bench.runtime.allocator import keep_freed_memory

def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

if sys.argv[1] == "function":
    assert keep_freed_memory() is True
elif sys.argv[1] == "command":
    assert cli.main(sys.argv[2:]) == 0
elif sys.argv[1] == "benchmark":
    import importlib.util
    spec = importlib.util.spec_from_file_location("benchmark", sys.argv[2])
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    if sys.argv[3] == "setup":  # what each of its worker processes runs before it times anything
        benchmark.setup(benchmark.parse_args(sys.argv[4:]))
    else:
        assert benchmark.main(sys.argv[4:]) in (0, None)
block = np.ones({BLOCK_MB} * 2**20, dtype=np.uint8)
filled = resident_mb()
del block
print(filled - resident_mb())
"""


def released_mb(*argv: str) -> float:
    result = subprocess.run([sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return float(result.stdout.split()[-1])


def test_glibc_returns_a_freed_large_block_unless_told_to_keep_it():
    assert released_mb("none") > BLOCK_MB * 0.9  # the control: without the setting the block goes back
    assert released_mb("function") < BLOCK_MB * 0.1


def test_a_model_job_of_the_command_line_keeps_freed_memory(tmp_path):
    job = ["tune-forward", "--arch", "resnet18", "--num-classes", "4", "--size", "32", "32", "--batch-size", "8",
           "--memory-format", "contiguous", "--out", str(tmp_path / "forward.json")]
    assert released_mb("command", *job) < BLOCK_MB * 0.1


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TOY = ["--size", "32", "32"]
# Every benchmark that times forward passes, with toy-sized arguments. Each runs its `main`, except
# precision.py, which times in worker processes that each start with its `setup` (ENTRY).
FORWARD_TIMING_BENCHMARKS = {
    "fold_speed": [*TOY, "--num-classes", "4", "--batch-size", "4", "--memory-format", "contiguous", "--rounds", "1",
                   "--seconds", "0.05"],
    "winograd_bound": [*TOY, "--num-classes", "4", "--batch-size", "4", "--seconds", "0.05"],
    "graph_speed": ["--device", "cpu", "--num-classes", "4", "--cases", "32:4", "--seconds", "0.05"],
    "forward_profile": [*TOY, "--num-classes", "4", "--batch-size", "4", "--passes", "2", "--seconds", "0.05"],
    "fused_pointwise": [*TOY, "--batches", "4", "--rounds", "1", "--seconds", "0.05"],
    "precision": ["--size", "32", "--images", "1", "--n-masks", "8", "--layers", "layer4", "--batch-size", "4"],
}
ENTRY = {"precision": "setup"}


@pytest.mark.parametrize("name", sorted(FORWARD_TIMING_BENCHMARKS))
def test_a_benchmark_that_times_forward_passes_keeps_freed_memory_as_the_jobs_do(name):
    entry = ENTRY.get(name, "main")
    argv = FORWARD_TIMING_BENCHMARKS[name]
    assert released_mb("benchmark", str(BENCHMARKS / f"{name}.py"), entry, *argv) < BLOCK_MB * 0.1
