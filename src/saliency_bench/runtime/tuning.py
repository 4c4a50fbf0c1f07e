"""The tuner behind `memory_format: auto`, `batch_size: auto` and `precision: auto`, and the file
that records its choice (forward_settings.json, written by `saliency-bench tune-forward`).

Whether channels-last beats contiguous, and which batch size is fastest, depends on the machine,
the model, the input size, the precision and the allocator. On this project's 2-core CPUs a
ResNet-18 at 224 px ran channels-last 1.2-1.4x faster than contiguous; batches of 8 beat batches
of 64 by 1.3x under glibc's default allocator, while with freed memory kept (every model job,
`runtime.allocator`) larger batches gained 1-6% per doubling (docs/performance.md). So both are
decided by timing them (`throughput`) on the run's own input size, not assumed.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from ..errors import atomic_path, require
from ..formats.json_files import read_json_object
from .forward import MEMORY_FORMATS, PRECISIONS, ModelRunner, model_device, set_memory_format
from .throughput import capped_images_per_second, images_per_second, in_fresh_process, probe_batch

log = logging.getLogger(__name__)

# batch_size auto: CPU candidates are timed; a GPU gets one large batch.
CPU_BATCH_CANDIDATES = (8, 16, 32, 64)
CUDA_BATCH_SIZE = 256

# channels-last must win by this margin: a closer race is within timing noise, and contiguous is
# what the model was trained and validated in.
CHANNELS_LAST_MARGIN = 1.05
# The batch taken is the smallest that no larger candidate beats by this margin: a larger batch holds
# more memory, and a stage's last, partial batch wastes more of it. Measured against every larger
# batch, not only the next: rates climb 1-6% per doubling but 5-13% from 8 to 64 (ResNet-18 at 224 px,
# freed memory kept, 2-core Zen 4 and Zen 5), so a search that stops at the first small step stops early.
LARGER_BATCH_MARGIN = 1.03

# A reduced precision is reported (precision_note) when at least this much faster than fp32, and
# `precision: auto` (explicit opt-in) picks bf16 only then: it changes AUCs by more than round-off.
REDUCED_PRECISION_MARGIN = 1.5
# Seconds to spend timing each other precision: enough on a CPU with native bf16 or a GPU, and
# cheap where bf16 is emulated (AVX2: about 8x slower than fp32), where the warm-up batch alone
# gives the rate once it takes longer than this.
PRECISION_TIMING_SECONDS = 1.5
# The measured effect of bf16 on AUCs, for the note (the benchmarks are not installed with the package):
# benchmarks/results/bf16_vs_fp32.json, benchmarks/precision.py on the demo ResNet-18, 112 px, 4 images,
# RISE N=250, Abs-CAM Init/Final at layer2 and layer3, deletion and insertion, measured 2026-11-29.
BF16_LARGEST_AUC_CHANGE = 0.0016


@dataclass(frozen=True)
class ForwardSettings:
    """How the model runs: memory format and batch size, and the images/s measured per
    (memory format, batch size) to choose them (empty when nothing was left to measure)."""

    memory_format: str
    batch_size: int
    measured: dict[tuple[str, int], float] = field(default_factory=dict)
    precision: str = "fp32"
    by_precision: dict[str, float] = field(default_factory=dict)  # images/s at the chosen format and batch
    precision_note: str | None = None
    timed_precision: str = "fp32"  # what `measured` ran in: fp32 under precision "auto", which may then pick bf16

    def describe(self) -> str:
        rates = ", ".join(f"{fmt} {batch}: {rate:.1f}" for (fmt, batch), rate in self.measured.items())
        chosen = f"{self.memory_format}, batch {self.batch_size}"
        described = f"{rates} images/s in {self.timed_precision} -> {chosen}" if rates else chosen
        if self.by_precision:
            described += "; " + ", ".join(f"{name}: {rate:.1f}" for name, rate in self.by_precision.items()) + \
                f" images/s -> {self.precision}"
        return described


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
    """(memory format, batch size): per format the smallest batch that no larger one beats by
    LARGER_BATCH_MARGIN; channels-last only when that is CHANNELS_LAST_MARGIN times faster than
    contiguous's."""
    best = {fmt: _batch_worth_its_memory({batch: rate for (f, batch), rate in measured.items() if f == fmt})
            for fmt in MEMORY_FORMATS}
    contiguous_rate = best["contiguous"][0]
    fmt = "channels_last" if best["channels_last"][0] >= CHANNELS_LAST_MARGIN * contiguous_rate else "contiguous"
    return fmt, best[fmt][1]


def _batch_worth_its_memory(rates: dict[int, float]) -> tuple[float, int]:
    """(rate, batch size) of the smallest batch whose rate times LARGER_BATCH_MARGIN reaches the
    fastest rate measured; (0.0, 0) without rates."""
    if not rates:
        return 0.0, 0
    fastest = max(rates.values())
    batch = min(batch for batch, rate in rates.items() if rate * LARGER_BATCH_MARGIN >= fastest)
    return rates[batch], batch


def tune_forward(model: nn.Module, size: tuple[int, int], precision: str = "fp32", batch_size: int | str = "auto",
                 memory_format: str = "auto", rounds: int = 2, time_precisions: bool = False) -> ForwardSettings:
    """Settle what is "auto" by measurement on this machine; what is given stays as given.

    time_precisions (implied by precision "auto"): also time the other precisions at the chosen
    format and batch (`precision_rates`). The precision stays as given; only "auto" picks bf16,
    and only when it is REDUCED_PRECISION_MARGIN times faster than fp32.
    """
    device = model_device(model)
    formats, batch_sizes = format_candidates(memory_format), batch_candidates(batch_size, device)
    timed = "fp32" if precision == "auto" else precision
    if len(formats) * len(batch_sizes) == 1:
        settings = ForwardSettings(formats[0], batch_sizes[0], precision=timed, timed_precision=timed)
    else:
        measured = measure_forward(model, size, timed, formats, batch_sizes, rounds)
        settings = ForwardSettings(*choose_settings(measured), measured, precision=timed, timed_precision=timed)
    if not (time_precisions or precision == "auto"):
        return settings
    rates = precision_rates(model, size, settings, device)
    speedup, fastest = reduced_precision_speedup(rates)
    chosen = "bf16" if precision == "auto" and fastest == "bf16" and speedup >= REDUCED_PRECISION_MARGIN else timed
    note = precision_note(fastest, speedup, rates, chosen) if speedup >= REDUCED_PRECISION_MARGIN else None
    return replace(settings, precision=chosen, by_precision=rates, precision_note=note)


def precision_rates(model: nn.Module, size: tuple[int, int], settings: ForwardSettings,
                    device: torch.device) -> dict[str, float]:
    """Images/s of fp32, bf16 (and fp16 on CUDA) at the chosen format and batch; the rate already
    measured is reused, each other one costs about PRECISION_TIMING_SECONDS."""
    names = [name for name in PRECISIONS if name != "fp16" or device.type == "cuda"]
    rates = {}
    set_memory_format(model, settings.memory_format)
    try:
        batch = probe_batch(settings.batch_size, size, device)
        for name in names:
            known = settings.measured.get((settings.memory_format, settings.batch_size))
            if known is not None and name == settings.precision:
                rates[name] = known
                continue
            runner = ModelRunner(model, settings.batch_size, name)
            rates[name] = capped_images_per_second(runner, batch, PRECISION_TIMING_SECONDS)
    finally:
        set_memory_format(model, "contiguous")
    return rates


def reduced_precision_speedup(rates: dict[str, float]) -> tuple[float, str | None]:
    """(speed-up over fp32, name) of the fastest reduced precision; (0, None) if none was timed."""
    reduced = {name: rate for name, rate in rates.items() if name != "fp32"}
    if not reduced or not rates.get("fp32"):
        return 0.0, None
    fastest = max(reduced, key=reduced.get)
    return reduced[fastest] / rates["fp32"], fastest


def precision_note(fastest: str, speedup: float, rates: dict[str, float], chosen: str) -> str:
    """One sentence: how much faster the reduced precision is here, and what it does to the AUCs."""
    effect = (f"on the demo model bf16 changed AUCs by up to {BF16_LARGEST_AUC_CHANGE} (benchmarks/precision.py)"
              if fastest == "bf16" else "its effect on AUCs is not measured (run benchmarks/precision.py)")
    use = f"this run uses {chosen}" if chosen != "fp32" else f"set precision: {fastest} (or auto) to use it"
    return (f"{fastest} ran {speedup:.1f}x faster than fp32 here ({rates[fastest]:.1f} vs {rates['fp32']:.1f} "
            f"images/s); {effect}; {use}.")


def write_forward_settings(path: str | Path, settings: ForwardSettings, context: dict) -> None:
    """Record the settings and their measurement as JSON (atomically); `precision` is the one every job uses."""
    record = {"memory_format": settings.memory_format, "batch_size": settings.batch_size,
              "images_per_second": {f"{fmt} {batch}": round(rate, 2) for (fmt, batch), rate in settings.measured.items()},
              "images_per_second_precision": settings.timed_precision,
              "channels_last_margin": CHANNELS_LAST_MARGIN, "larger_batch_margin": LARGER_BATCH_MARGIN,
              **context, "precision": settings.precision}
    if settings.by_precision:
        record["images_per_second_by_precision"] = {name: round(rate, 2) for name, rate in settings.by_precision.items()}
        record["reduced_precision_margin"] = REDUCED_PRECISION_MARGIN
    if settings.precision_note:
        record["precision_note"] = settings.precision_note
    with atomic_path(path) as temporary:
        Path(temporary).write_text(json.dumps(record, indent=1) + "\n")


def read_forward_record(path: str | Path) -> dict:
    """The whole record of `saliency-bench tune-forward`, checked: memory format, batch size, precision
    (fp32 in files that name none) and the images/s measured."""
    fix = "recreate it with `saliency-bench tune-forward`"
    record = read_json_object(path, "forward-settings file", fix)
    require({"memory_format", "batch_size"} <= record.keys(),
            f"{path} is not a forward-settings file (it needs memory_format and batch_size); {fix}")
    memory_format, batch_size = record["memory_format"], record["batch_size"]
    require(memory_format in MEMORY_FORMATS, f"{path} names memory format {memory_format!r}; {fix}")
    require(isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1,
            f"{path} names batch size {batch_size!r}; {fix}")
    precision = record.get("precision", "fp32")
    require(precision in PRECISIONS, f"{path} names precision {precision!r}; {fix}")
    rates = record.get("images_per_second", {})
    require(isinstance(rates, dict) and all(isinstance(v, (int, float)) for v in rates.values()),
            f"{path} holds no images/s per setting under images_per_second; {fix}")
    return record


def read_forward_settings(path: str | Path) -> tuple[str, int]:
    """(memory format, batch size) recorded by `saliency-bench tune-forward`."""
    record = read_forward_record(path)
    return record["memory_format"], record["batch_size"]


def read_forward_precision(path: str | Path) -> str:
    """The precision recorded by `saliency-bench tune-forward` (fp32 in files that name none)."""
    return read_forward_record(path).get("precision", "fp32")


def settle_forward_args(make_model, args) -> None:
    """Set args.memory_format and args.batch_size where they are "auto", as the workflow's
    tune_forward would, timing `make_model(args)` (a module-level function) in a fresh process."""
    if "auto" not in (args.memory_format, args.batch_size):
        return
    args.memory_format, args.batch_size, described = in_fresh_process(_tune_for_args, make_model, args)
    log.info(f"# forward settings (auto): {described}")


def _tune_for_args(make_model, args) -> tuple[str, int, str]:
    settings = tune_forward(make_model(args), tuple(args.size), args.precision, args.batch_size, args.memory_format)
    return settings.memory_format, settings.batch_size, settings.describe()

