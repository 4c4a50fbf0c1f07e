"""Measured model throughput: the yardstick of the efficiency benchmark, and the tuner behind
`memory_format: auto` and `batch_size: auto`.

Whether channels-last beats contiguous, and which batch size is fastest, depends on the machine,
the model, the input size and the precision. On this project's 2-core CPU a ResNet-18 at 224 px
runs about 1.3x faster per image in batches of 8 than of 64 (the activations of a large batch
do not fit the caches), and channels-last 1.2-1.4x faster than contiguous. So both are decided
by timing them on the run's own input size, not assumed.
"""
from __future__ import annotations

import ctypes
import json
import multiprocessing
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import UserError, atomic_path, require
from .forward import MEMORY_FORMATS, ModelRunner, model_device, set_memory_format

# batch_size auto: CPU candidates are timed; a GPU gets one large batch.
CPU_BATCH_CANDIDATES = (8, 16, 32, 64)
CUDA_BATCH_SIZE = 256

# channels-last must win by this margin: a closer race is within timing noise, and contiguous is
# what the model was trained and validated in.
CHANNELS_LAST_MARGIN = 1.05


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


@dataclass(frozen=True)
class ForwardSettings:
    """How the model runs: memory format and batch size, and the images/s measured per
    (memory format, batch size) to choose them (empty when nothing was left to measure)."""

    memory_format: str
    batch_size: int
    measured: dict[tuple[str, int], float] = field(default_factory=dict)

    def describe(self) -> str:
        rates = ", ".join(f"{fmt} {batch}: {rate:.1f}" for (fmt, batch), rate in self.measured.items())
        chosen = f"{self.memory_format}, batch {self.batch_size}"
        return f"{rates} images/s -> {chosen}" if rates else chosen


def batch_candidates(batch_size: int | str, device: torch.device) -> tuple[int, ...]:
    """The batch sizes to try: the given one, or for "auto" CPU_BATCH_CANDIDATES on a CPU and
    CUDA_BATCH_SIZE on a GPU (which only gets busier with larger batches)."""
    if batch_size != "auto":
        require(isinstance(batch_size, int) and batch_size >= 1,
                f"batch size must be a whole number >= 1 or auto, got {batch_size!r}")
        return (batch_size,)
    return (CUDA_BATCH_SIZE,) if device.type == "cuda" else CPU_BATCH_CANDIDATES


def format_candidates(memory_format: str) -> tuple[str, ...]:
    if memory_format == "auto":
        return MEMORY_FORMATS
    require(memory_format in MEMORY_FORMATS, f"unknown memory format {memory_format!r}; use contiguous, channels_last or auto")
    return (memory_format,)


def measure_forward(model: nn.Module, size: tuple[int, int], precision: str, formats: tuple[str, ...],
                    batch_sizes: tuple[int, ...], rounds: int = 2, min_seconds: float = 1.0) -> dict[tuple[str, int], float]:
    """Images/s of every (memory format, batch size) on seeded batches of the run's input size.

    All combinations are timed in turn for `rounds` rounds and each keeps its best round, so a
    machine whose speed drifts (another job starts) penalises them alike. The model is left
    contiguous.
    """
    device = model_device(model)
    best: dict[tuple[str, int], float] = {}
    try:
        for _ in range(rounds):
            for memory_format in formats:
                set_memory_format(model, memory_format)
                for batch_size in batch_sizes:
                    runner = ModelRunner(model, batch_size, precision)
                    rate = images_per_second(runner, probe_batch(batch_size, size, device), min_seconds,
                                             min_repeats=2, warmup=1)
                    best[memory_format, batch_size] = max(best.get((memory_format, batch_size), 0.0), rate)
    finally:
        set_memory_format(model, "contiguous")
    return best


def choose_settings(measured: dict[tuple[str, int], float]) -> tuple[str, int]:
    """The fastest (memory format, batch size); channels-last only when its best is at least
    CHANNELS_LAST_MARGIN times the best contiguous rate."""
    best = {fmt: max(((rate, batch) for (f, batch), rate in measured.items() if f == fmt), default=(0.0, 0))
            for fmt in MEMORY_FORMATS}
    contiguous_rate = best["contiguous"][0]
    fmt = "channels_last" if best["channels_last"][0] >= CHANNELS_LAST_MARGIN * contiguous_rate else "contiguous"
    return fmt, best[fmt][1]


def tune_forward(model: nn.Module, size: tuple[int, int], precision: str = "fp32", batch_size: int | str = "auto",
                 memory_format: str = "auto", rounds: int = 2) -> ForwardSettings:
    """Settle what is "auto" by measurement on this machine; what is given stays as given."""
    device = model_device(model)
    formats, batch_sizes = format_candidates(memory_format), batch_candidates(batch_size, device)
    if len(formats) * len(batch_sizes) == 1:
        return ForwardSettings(formats[0], batch_sizes[0])
    measured = measure_forward(model, size, precision, formats, batch_sizes, rounds)
    return ForwardSettings(*choose_settings(measured), measured)


def write_forward_settings(path: str | Path, settings: ForwardSettings, context: dict) -> None:
    """Record the settings and their measurement as JSON (atomically)."""
    record = {"memory_format": settings.memory_format, "batch_size": settings.batch_size,
              "images_per_second": {f"{fmt} {batch}": round(rate, 2) for (fmt, batch), rate in settings.measured.items()},
              "channels_last_margin": CHANNELS_LAST_MARGIN, **context}
    with atomic_path(path) as temporary:
        Path(temporary).write_text(json.dumps(record, indent=1) + "\n")


def read_forward_settings(path: str | Path) -> tuple[str, int]:
    """(memory format, batch size) recorded by `saliency-bench tune-forward`."""
    fix = "recreate it with `saliency-bench tune-forward`"
    try:
        record = json.loads(Path(path).read_text())
        memory_format, batch_size = record["memory_format"], record["batch_size"]
    except FileNotFoundError:
        raise UserError(f"forward-settings file {path} does not exist; create it with `saliency-bench tune-forward`") from None
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a forward-settings file (it needs memory_format and batch_size); {fix}") from None
    require(memory_format in MEMORY_FORMATS, f"{path} names memory format {memory_format!r}; {fix}")
    require(isinstance(batch_size, int) and batch_size >= 1, f"{path} names batch size {batch_size!r}; {fix}")
    return memory_format, batch_size


# ---- helpers of the benchmarks ----------------------------------------------------------------------------
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


def settle_forward_args(make_model, args) -> None:
    """Set args.memory_format and args.batch_size where they are "auto", as the workflow's
    tune_forward would, timing `make_model(args)` (a module-level function) in a fresh process."""
    if "auto" not in (args.memory_format, args.batch_size):
        return
    args.memory_format, args.batch_size, described = in_fresh_process(_tune_for_args, make_model, args)
    print(f"# forward settings (auto): {described}", file=sys.stderr)


def _tune_for_args(make_model, args) -> tuple[str, int, str]:
    settings = tune_forward(make_model(args), tuple(args.size), args.precision, args.batch_size, args.memory_format)
    return settings.memory_format, settings.batch_size, settings.describe()
