"""The measuring tools of the benchmarks and of `memory_format: auto`, on real processes and models."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import pytest
import torch
from torch import nn

from saliency_bench.commands._options import add_model_args
from saliency_bench.runtime import throughput, tuning
from saliency_bench.runtime.forward import ModelRunner
from saliency_bench.runtime.models import build_model
from saliency_bench.runtime.throughput import images_per_second, in_fresh_process, peak_rss_mb, probe_batch, reset_peak_rss
from saliency_bench.runtime.tuning import read_forward_precision, tune_forward, write_forward_settings
from workflow_helpers import load_benchmark


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


# ---- precision timing (tune-forward) ------------------------------------------------------------------
def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 3)).eval()


def test_precisions_are_timed_and_recorded_but_never_switched(tmp_path, one_thread):
    settings = tune_forward(small_model(), (16, 16), "fp32", 4, "contiguous", time_precisions=True)
    assert set(settings.by_precision) == {"fp32", "bf16"}  # fp16 only on CUDA
    assert all(rate > 0 for rate in settings.by_precision.values())
    assert settings.precision == "fp32"
    path = tmp_path / "settings.json"
    write_forward_settings(path, settings, {})
    record = json.loads(path.read_text())
    assert set(record["images_per_second_by_precision"]) == {"fp32", "bf16"} and record["precision"] == "fp32"
    assert record["images_per_second_precision"] == "fp32"
    assert read_forward_precision(path) == "fp32"
    assert tune_forward(small_model(), (16, 16), "fp32", 4, "contiguous").by_precision == {}  # jobs do not time


def test_the_note_and_auto_need_the_margin(monkeypatch, one_thread):
    for bf16_rate, noted in ((150.0, True), (149.0, False)):
        monkeypatch.setattr(tuning, "precision_rates", lambda *args, rate=bf16_rate: {"fp32": 100.0, "bf16": rate})
        given = tune_forward(small_model(), (16, 16), "fp32", 4, "contiguous", time_precisions=True)
        auto = tune_forward(small_model(), (16, 16), "auto", 4, "contiguous")
        assert given.precision == "fp32" and (given.precision_note is not None) == noted
        assert auto.precision == ("bf16" if noted else "fp32")
        # formats and batches were timed in fp32 whatever auto picked, and the log line says so
        assert auto.timed_precision == "fp32" and auto.describe().endswith(f"-> {auto.precision}")
    note = tuning.precision_note("bf16", 1.5, {"fp32": 100.0, "bf16": 150.0}, "fp32")
    assert "1.5x faster" in note and str(tuning.BF16_LARGEST_AUC_CHANGE) in note and note.count(".") >= 1


def test_the_bf16_effect_constant_is_the_shipped_measurement():
    from pathlib import Path

    measured = json.loads((Path(__file__).parents[1] / "benchmarks/results/bf16_vs_fp32.json").read_text())
    assert round(measured["largest_auc_change"], 4) == tuning.BF16_LARGEST_AUC_CHANGE


def test_a_slow_precision_costs_one_batch(one_thread):
    class Slow(nn.Module):
        def forward(self, x):
            time.sleep(0.2)
            return x.flatten(1)

    runner = ModelRunner(Slow(), batch_size=2)
    start = time.perf_counter()
    rate = throughput.capped_images_per_second(runner, torch.zeros(2, 1, 2, 2), budget=0.3)
    assert runner.forward_passes == 2 and time.perf_counter() - start < 0.35 and 8 < rate < 10.1


def test_forward_flops_counts_multiply_adds_twice():
    conv_macs = 14 * 14 * 4 * 3 * 3 * 3  # 3 -> 4 channels, 3x3 kernel, 16x16 -> 14x14
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.Flatten(), nn.Linear(4 * 14 * 14, 5, bias=False)).eval()
    assert throughput.forward_flops(model, (16, 16)) == 2 * (conv_macs + 4 * 14 * 14 * 5)


def test_forward_flops_of_a_resnet18_match_torchvision():
    from torchvision.models import ResNet18_Weights, resnet18

    gmacs = ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]  # torchvision's own count, in giga multiply-adds
    assert throughput.forward_flops(resnet18().eval(), (224, 224)) / 2e9 == pytest.approx(gmacs, rel=5e-3)


def test_the_dense_kernel_rates_are_plausible_flop_rates(one_thread):
    rates = throughput.dense_flops_per_second(seconds=0.1, n=256, channels=64, size=14, batch=4)
    assert set(rates) == {"matmul", "conv3x3"}
    for rate in rates.values():
        # One core: more than 1 GFLOP/s (any x86 core since SSE2; a rate counted per n^2 instead of n^3 lands
        # 256x lower, under it), less than 10 TFLOP/s.
        assert 1e9 < rate < 1e13


def test_counted_flops_of_a_matrix_product():
    a, b = torch.ones(3, 4), torch.ones(4, 5)
    assert throughput.counted_flops(lambda: a @ b) == 2 * 3 * 4 * 5


def test_a_kernel_rate_is_its_flops_per_call_over_the_time_per_call():
    a, b = torch.ones(8, 8), torch.ones(8, 8)

    def kernel():  # 1024 FLOP taking at least 10 ms: the sleep sets the time, never shorter than asked
        time.sleep(0.01)
        return a @ b

    rate = throughput.best_flops_per_second(kernel, torch.device("cpu"), seconds=0.3)
    assert 1024 / 0.02 < rate <= 1024 / 0.01


def test_the_winograd_bound_times_a_real_convolution():
    """benchmarks/winograd_bound.py's F(2,3) and F(4,3) convolutions equal the direct one to fp32 round-off,
    odd sizes (partial tiles) included: its 'full' timings measure the same function."""
    module = load_benchmark("winograd_bound")
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, padding=1).eval()
    x = torch.randn(2, 6, 9, 7)
    with torch.no_grad():
        reference = conv(x)
        for m in (2, 4):
            winograd = module.WinogradConv3x3(conv, m)
            assert torch.allclose(winograd(x), reference, atol=1e-5, rtol=1e-5), m
    square = nn.Conv2d(6, 6, 3, padding=1)
    strided = nn.Conv2d(6, 6, 3, padding=1, stride=2)
    found = module.conv_inputs(nn.Sequential(square, nn.ReLU(), strided, square), x)
    assert [conv for conv, _ in found] == [square, square] and found[1][1].shape == (2, 6, 5, 4)


def test_fused_pointwise_computes_the_same_function():
    """benchmarks/fused_pointwise.py's conv+ReLU / conv+add+ReLU forward (with and without prepacked weights)
    gives the folded model's logits to round-off, so its timings compare the same function."""
    module = load_benchmark("fused_pointwise")
    torch.manual_seed(0)
    runner = ModelRunner(build_model("resnet18", 4).eval().to(memory_format=torch.channels_last), 2)
    batch = runner.prepare(probe_batch(2, (32, 32), runner.device))
    with torch.no_grad():
        reference = runner.model(batch)
        for prepack in (False, True):
            fused = module.fused_forward(runner.model, batch, prepack)(batch)
            assert torch.allclose(fused, reference, rtol=1e-5, atol=1e-5 * reference.abs().max().item()), prepack
    assert module.main(["--size", "32", "32", "--batches", "2", "--rounds", "1", "--seconds", "0.05"]) == 0
    with pytest.raises(SystemExit, match="BasicBlock"):
        module.require_basic_blocks(ModelRunner(build_model("resnet50", 4).eval(), 2).model)


def test_forward_profile_times_every_convolution_of_the_pass_and_counts_its_flops(capsys):
    """benchmarks/forward_profile.py: its hooks see every convolution of the runner's model once per pass, and its
    FLOPs are torch's own count (the classifier's matrix product apart), so its rates are those of the real work."""
    module = load_benchmark("forward_profile")
    torch.manual_seed(0)
    runner = ModelRunner(build_model("resnet18", 4).eval(), 2)
    batch = runner.prepare(probe_batch(2, (64, 48), runner.device))
    timer, pass_seconds = module.profile(runner, batch, passes=3)
    assert len(timer.convs) == 20 and all(len(times) == 3 for times in timer.seconds.values())
    assert sum(statistics.median(times) for times in timer.seconds.values()) < pass_seconds
    classifier = 2 * 2 * 512 * 4
    assert sum(timer.flops.values()) + classifier == throughput.counted_flops(lambda: runner.model(batch))
    assert not runner.model.conv1._forward_hooks and not runner.model.conv1._forward_pre_hooks  # hooks removed
    assert module.main(["--size", "32", "32", "--batch-size", "2", "--passes", "1", "--seconds", "0.05",
                        "--num-classes", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("layer") or line.startswith("conv1 ") for line in lines) == 20
    assert lines[-2].startswith("convolutions: ") and lines[-1].startswith("model: ")


def test_graph_speed_times_every_variant_and_flags_one_beyond_round_off():
    """benchmarks/graph_speed.py (the GPU check's CUDA-graph step): on a CPU it times eager alone and exits 0;
    a variant whose logits are off by 1e-3 relative is flagged, so a wrong CUDA graph cannot pass as faster."""
    module = load_benchmark("graph_speed")
    assert module.main(["--device", "cpu", "--cases", "32:2", "--seconds", "0.05"]) == 0
    torch.manual_seed(0)
    runner = ModelRunner(build_model("resnet18", 4).eval(), 2)
    batch = runner.prepare(probe_batch(2, (32, 32), runner.device))
    rows = module.compare(batch, {"eager": (runner, 0.0), "scaled": (lambda x: runner(x) * 1.001, 0.0)}, 0.05)
    assert [(r["variant"], r["exact"], r["ratio"]) for r in rows[:1]] == [("eager", True, 1.0)]
    assert rows[1]["exact"] is False and rows[1]["max_logit_diff"] > 0
    for bad in ("112", "112:0", "16:4", "a:b"):
        with pytest.raises(SystemExit):
            module.main(["--device", "cpu", "--cases", bad])
