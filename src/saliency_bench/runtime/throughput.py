"""Measured model throughput: images/s of a model's forward passes, FLOP/s of this machine's dense
kernels, peak memory, fresh processes. The yardsticks of `tuning` (which decides the settings) and
of the benchmarks.

A timing is only as good as its conditions: warm-up batches first (allocator, convolution algorithm
selection), best of repeated rounds where a shared machine's speed drifts, a CUDA device synchronised
before the clock is read, and the model set up as the jobs run theirs (`timing_model`).
"""
from __future__ import annotations

import ctypes
import multiprocessing
import re
import resource
import time
from pathlib import Path

import torch
from torch import nn

from .forward import ModelRunner, model_device, set_memory_format


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def probe_batch(batch_size: int, size: tuple[int, int], device: torch.device, seed: int = 0) -> torch.Tensor:
    """A seeded random batch of normalised-image statistics (the timing does not depend on the values)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, 3, *size, generator=generator).to(device)


def images_per_second(runner: ModelRunner, batch: torch.Tensor, min_seconds: float = 3.0,
                      min_repeats: int = 3, warmup: int = 2) -> float:
    """Plain forward passes of `batch` per second, after `warmup` untimed batches (allocator,
    convolution algorithm selection). Runs for at least `min_seconds` and `min_repeats` batches."""
    for _ in range(warmup):
        runner(batch)
    synchronise(runner.device)
    start, repeats = time.perf_counter(), 0
    while repeats < min_repeats or time.perf_counter() - start < min_seconds:
        runner(batch)
        repeats += 1
    synchronise(runner.device)
    return repeats * len(batch) / (time.perf_counter() - start)


def capped_images_per_second(runner: ModelRunner, batch: torch.Tensor, budget: float) -> float:
    """Images/s within about `budget` seconds: a slow warm-up batch is itself the measurement."""
    synchronise(runner.device)
    start = time.perf_counter()
    runner(batch)
    synchronise(runner.device)
    warmup = time.perf_counter() - start
    if warmup >= budget / 2:
        return len(batch) / warmup
    return images_per_second(runner, batch, min_seconds=budget - warmup, min_repeats=1, warmup=0)


# ---- helpers of the benchmarks ----------------------------------------------------------------------------
def timing_model(arch: str, num_classes: int, device: torch.device = torch.device("cpu"),
                 memory_format: str | None = None) -> nn.Module:
    """The model a benchmark times, set up as the jobs run theirs: random weights drawn from seed 0,
    eval mode, on `device`, stored in `memory_format` if given; and freed memory kept in this process
    (`allocator.keep_freed_memory`, process-wide), as every model job of the command-line interface."""
    from .allocator import keep_freed_memory
    from .models import build_model

    keep_freed_memory()
    torch.manual_seed(0)
    model = build_model(arch, num_classes).to(device).eval()
    return set_memory_format(model, memory_format) if memory_format else model


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs natively here: a CUDA device that supports it, or a CPU with AVX-512 BF16 or
    AMX (oneDNN's own check, else the /proc/cpuinfo flags); elsewhere torch emulates it, slowly."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        if check is not None and check():
            return True
        return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", Path("/proc/cpuinfo").read_text()))
    except (OSError, RuntimeError):
        return False


def counted_flops(kernel) -> float:
    """Floating-point operations of one call of `kernel()`, in the ops torch's FLOP counter knows
    (convolutions and matrix products, a multiply-add counted as two)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        kernel()
    return float(counter.get_total_flops())


def forward_flops(model: nn.Module, size: tuple[int, int]) -> float:
    """`counted_flops` of one image's forward pass: ResNet-18 at 224 px, 3.63e9."""
    return counted_flops(lambda: model(probe_batch(1, size, model_device(model))))


def conv_inputs(model: nn.Module, batch: torch.Tensor, wanted=lambda conv: True
                ) -> list[tuple[str, nn.Conv2d, torch.Tensor]]:
    """(name, convolution, its input) of every Conv2d of `model` that `wanted(conv)` accepts, in the
    order one no-grad forward pass of `batch` calls them; the hooks are removed afterwards."""
    found, handles = [], []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and wanted(module):
            handles.append(module.register_forward_pre_hook(
                lambda conv, inputs, name=name: found.append((name, conv, inputs[0]))))
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return found


def best_seconds_per_call(kernel, device: torch.device, seconds: float) -> float:
    """Seconds per call of `kernel()`, best of three timings of about seconds / 3 each."""
    best = float("inf")
    with torch.no_grad():
        for _ in range(3):
            kernel()  # warm-up: threads woken, caches filled, primitives made
            synchronise(device)
            start, repeats = time.perf_counter(), 0
            while repeats < 2 or time.perf_counter() - start < seconds / 3:
                kernel()
                repeats += 1
            synchronise(device)
            best = min(best, (time.perf_counter() - start) / repeats)
    return best


def best_flops_per_second(kernel, device: torch.device, seconds: float) -> float:
    """FLOP/s of `kernel()` (its `counted_flops`) at its `best_seconds_per_call`."""
    return counted_flops(kernel) / best_seconds_per_call(kernel, device, seconds)


def dense_flops_per_second(device: torch.device = torch.device("cpu"), seconds: float = 2.0,
                           n: int = 2048, channels: int = 256, size: int = 28, batch: int = 32) -> dict[str, float]:
    """This machine's float32 rate (FLOP/s) of its two dense kernels, each timed for `seconds`: "matmul"
    (n x n times n x n) and "conv3x3" (a channels-last 3x3 convolution, channels -> channels on
    batch x size x size, as in a ResNet's layer3). Their maximum is the practical ceiling of an fp32
    forward pass made of convolutions. Both are needed: the libraries behind them can run different
    instruction sets on one CPU (on an AMD AVX-512 CPU the convolutions ran 1.2-1.3x the matrix products)."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=generator).to(device) for _ in range(2))
    x = torch.randn(batch, channels, size, size, generator=generator).to(device).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(channels, channels, 3, 3, generator=generator).to(device).contiguous(memory_format=torch.channels_last)
    return {"matmul": best_flops_per_second(lambda: a @ b, device, seconds),
            "conv3x3": best_flops_per_second(lambda: nn.functional.conv2d(x, weight, padding=1), device, seconds)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: since it started, or since `reset_peak_rss`."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, flags=re.M).group(1)) / 1024
    except (OSError, AttributeError):  # not Linux: the peak since the start (kilobytes on Linux, bytes on macOS)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Lower the peak to the current resident memory (Linux >= 4.0), so that the peak of what
    runs next is its own, not that of earlier warm-up work; False where that is impossible.
    Memory that the C allocator kept after the warm-up freed it is handed back first (glibc)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def in_fresh_process(function, *args):
    """function(*args) in a new interpreter (spawn), so that its peak memory and its warm-up are its own."""
    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        return pool.apply(function, args)
    finally:
        pool.close()
        pool.join()


