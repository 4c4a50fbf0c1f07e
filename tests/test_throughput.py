"""The measuring tools of the benchmarks and of `memory_format: auto`, on real processes and models."""
from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
import torch
from torch import nn

from saliency_bench.commands._options import add_model_args
from saliency_bench.forward import ModelRunner
from saliency_bench.throughput import images_per_second, in_fresh_process, peak_rss_mb, probe_batch, reset_peak_rss


def touch_megabytes(megabytes: int) -> float:
    """Allocate and write `megabytes` MB, return this process's peak RSS, free the block."""
    block = np.ones(megabytes * 2**20, dtype=np.uint8)
    peak = peak_rss_mb()
    del block
    return peak


def test_the_peak_can_be_reset_and_then_follows_a_new_allocation():
    if not reset_peak_rss():
        pytest.skip("this kernel cannot reset the peak RSS")
    low = peak_rss_mb()
    high = touch_megabytes(200)
    assert high >= low + 190  # the peak holds the new block
    reset_peak_rss()
    assert peak_rss_mb() < high - 150  # after a reset the freed block no longer counts


def process_id() -> int:
    return os.getpid()


def test_fresh_processes_are_new_interpreters():
    first, second = in_fresh_process(process_id), in_fresh_process(process_id)
    assert len({first, second, os.getpid()}) == 3


def test_throughput_counts_the_images_of_every_timed_batch(one_thread):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    runner = ModelRunner(model, batch_size=4)
    rate = images_per_second(runner, probe_batch(4, (16, 16), torch.device("cpu")), min_seconds=0.05, min_repeats=3,
                             warmup=2)
    assert rate > 0
    assert runner.forward_passes >= 4 * (2 + 3)  # warm-up and timed batches all ran


def test_the_cli_parses_batch_size_auto(capsys):
    parser = argparse.ArgumentParser()
    add_model_args(parser)
    for text, expected in (("auto", "auto"), ("16", 16)):
        assert parser.parse_args(["--num-classes", "2", "--batch-size", text]).batch_size == expected
    with pytest.raises(SystemExit):
        parser.parse_args(["--num-classes", "2", "--batch-size", "0"])
    assert "must be at least 1" in capsys.readouterr().err
    assert parser.parse_args(["--num-classes", "2"]).batch_size == 64  # a job without settings: no timing
