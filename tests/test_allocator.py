"""Model jobs keep freed memory in the process (runtime.allocator): a large block freed stays
resident instead of going back to the kernel, so the next batch does not fault it in again.
Each case runs in a fresh interpreter: the setting is process-wide."""
from __future__ import annotations

import platform
import subprocess
import sys

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
