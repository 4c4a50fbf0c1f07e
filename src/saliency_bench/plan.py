"""The plan before a long run, and after it the plan beside the measured time.

Nearly all the work is the model's forward passes, so the plan counts them per stage (each
method says its own per image, `Method.forward_passes`: RISE N + 1 per mask set; Abs-CAM Final
the layer's channels + 1; Abs-CAM Init one forward and one backward pass, about 3;
deletion/insertion: 2 (steps - 1) + 2 per map and image) and divides by the model's throughput measured on this machine (tune_forward's
images/s of the chosen settings). Each job also pays a start-up (Python, torch, the model).
`results/plan.json` keeps the estimate, each stage's benchmark files and those of the run's other jobs
(SINGLE_JOBS); `timing_table` sets the estimate beside the seconds those files measured.
"""
from __future__ import annotations

import csv
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import workflow_config as wc
from .config import Config
from .errors import UserError, require
from .formats.image_table import read_shards
from .formats.json_files import read_json_object
from .methods import get_method
from .methods import methods as registered_methods

# Start-up of one job (interpreter, torch import, model built) where it cannot be measured: the
# plan step measures its own start-up (up to its model built, before any timing of it), which every
# job pays alike (and which grows on a busy machine).
JOB_OVERHEAD_S = 4.0
# Mask generation: seconds per million mask pixels (README: 2.4 s for N = 6000 at 224 x 224).
MASK_SECONDS_PER_MPIXEL = 0.01
# A mask job imports neither torch nor a model: its start-up is this share of a model job's
# (measured on the demo: 2.3 s against 5.4 s).
MASK_JOB_START_SHARE = 0.45
# Training the demo: forward + backward is about 3 forward passes per training image and epoch.
TRAIN_PASSES = 3
GB = 1e9

# The jobs' benchmark files (Snakemake's `benchmark:`), under BENCHMARK_ROOT. The rules name theirs
# with these patterns, and each plan stage lists its own jobs' files: the measured time is then this
# run's, not that of a job the run no longer has (a shard beyond a lowered data.limit, a removed layer).
BENCHMARK_ROOT = "benchmarks"
BENCHMARK_FIX = "it is a Snakemake benchmark file: delete it and rerun its rule"
MASK_BENCHMARK = "masks/{mask_id}.tsv"
EXPLAIN_BENCHMARK = "explain/{method_id}/shard-{shard}.tsv"
EVALUATE_BENCHMARK = "evaluate/{method_id}/shard-{shard}.tsv"
TRAIN_DEMO_BENCHMARK = "train_demo.tsv"
SANITY_BENCHMARK = "sanity.tsv"
# First path parts of the estimated jobs' files: a file there that no stage lists is a stale one.
ESTIMATED_KINDS = frozenset(pattern.split("/")[0] for pattern in
                            (MASK_BENCHMARK, EXPLAIN_BENCHMARK, EVALUATE_BENCHMARK, TRAIN_DEMO_BENCHMARK, SANITY_BENCHMARK))
# The plan's list of the files of the run's jobs that it does not estimate (the workflow names them):
# any other file outside the estimated kinds' folders is then a stale one too.
SINGLE_JOBS = "single_jobs"


@dataclass
class Stage:
    name: str
    jobs: int = 0
    forward_passes: int = 0
    seconds: float = 0.0  # job-seconds (summed over jobs, before parallelism)
    disk_bytes: int = 0
    benchmarks: list[str] = field(default_factory=list)  # its jobs' benchmark files, under BENCHMARK_ROOT


def layer_channels(config: Config, model=None) -> dict[str, int]:
    """Output channels of each Abs-CAM layer, from one forward pass at the run's size of `model` (an
    eval-mode model of the run's architecture; None: build one, as every job does)."""
    layers = config.abscam.layers if config.abscam.variants else []
    if not layers:
        return {}
    import torch

    from .abscam import feature_map_shapes
    from .runtime.forward import model_device

    model = plan_model(config, model)
    with feature_map_shapes(model, layers) as shapes, torch.no_grad():
        model(torch.zeros(1, 3, *config.preprocess.size, device=model_device(model)))
    return {layer: shapes[layer][0] for layer in layers}


def plan_model(config: Config, model=None):
    """`model`, else an eval-mode model of the run's architecture, built as every job builds it."""
    if model is not None:
        return model
    from .runtime.models import build_model

    return build_model(config.model.arch, max(wc.num_classes(config), 1)).eval()


def sanity_models(config: Config, model=None) -> int:
    """How many models the randomisation check explains with: the trained one and one per block it
    randomises (0 where sanity.enabled is false)."""
    if not config.sanity.enabled:
        return 0
    from .sanity import cascade_blocks

    return 1 + len(cascade_blocks(plan_model(config, model)))


def shard_sizes(image_table: str | Path) -> list[int]:
    shards = read_shards(image_table)
    return [shards.count(k) for k in range(max(shards) + 1)] if shards else []


def stage_names() -> list[str]:
    """The plan's stages in order: masks, each registered method's own (chance baselines share one), the rest."""
    method_stages = dict.fromkeys(method.plan_stage for method in registered_methods())
    return ["masks", *method_stages, "deletion/insertion", "train_demo", "sanity", "other"]


def process_age() -> float:
    """Seconds since this process started (Linux /proc), else JOB_OVERHEAD_S."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        return float(Path("/proc/uptime").read_text().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return JOB_OVERHEAD_S


def build_stages(config: Config, shards: list[int], rate: float, channels: dict[str, int],
                 overhead: float = JOB_OVERHEAD_S, sanity_models: int = 0) -> dict[str, Stage]:
    """Jobs, forward passes, job-seconds and disk of every stage, at `rate` images/s and
    `overhead` seconds of start-up per job; `sanity_models`: how many models the randomisation
    check explains with (the trained one and one per cascade step; 0: no check)."""
    stages = {name: Stage(name) for name in stage_names()}
    height, width = config.preprocess.size
    n_images, n_masks = sum(shards), config.rise.n_masks
    for mask in wc.mask_configs(config):
        stage = stages["masks"]
        stage.jobs += 1
        stage.benchmarks.append(MASK_BENCHMARK.format(mask_id=mask.mask_id))
        stage.seconds += MASK_JOB_START_SHARE * overhead + MASK_SECONDS_PER_MPIXEL * n_masks * height * width / 1e6
        stage.disk_bytes += n_masks * height * width * np.dtype(config.rise.mask_dtype).itemsize
    steps = math.ceil(height / config.metrics.step_rows)
    curve_passes = 2 * (steps - 1) + 2
    for method in wc.method_configs(config):
        spec = get_method(method.method)
        per_image = spec.forward_passes(config, method, channels)
        for stage, passes, pattern in ((stages[spec.plan_stage], per_image, EXPLAIN_BENCHMARK),
                                       (stages["deletion/insertion"], curve_passes, EVALUATE_BENCHMARK)):
            stage.jobs += len(shards)
            stage.benchmarks += [pattern.format(method_id=method.method_id, shard=shard) for shard in range(len(shards))]
            stage.forward_passes += passes * n_images
            stage.seconds += len(shards) * overhead + passes * n_images / rate
        stages[spec.plan_stage].disk_bytes += n_images * height * width * 4
        stages["deletion/insertion"].disk_bytes += n_images * 2 * (steps + 1) * 8
    if wc.uses_demo(config) and config.demo.train:  # else the shipped model: nothing to train
        from .demo import CLASSES

        demo = config.demo
        train_images = (1 - config.data.val_fraction) * (len(CLASSES) * demo.per_class + demo.none)
        stage = stages["train_demo"]
        stage.jobs, stage.forward_passes = 1, int(TRAIN_PASSES * train_images * demo.epochs)
        stage.benchmarks = [TRAIN_DEMO_BENCHMARK]
        # trained at demo.size, before tune_forward: scale the rate by the pixel count
        scaled = rate * height * width / demo.size ** 2
        stage.seconds = overhead + stage.forward_passes / scaled
    if sanity_models:  # every method's sanity variants on its first images, once per model
        per_image = sum(get_method(name).sanity_forward_passes(config, channels) for name in wc.sanity_method_names(config))
        stage = stages["sanity"]
        stage.jobs, stage.benchmarks = 1, [SANITY_BENCHMARK]
        stage.forward_passes = sanity_models * min(config.sanity.images, n_images) * per_image
        stage.seconds = overhead + stage.forward_passes / rate
    return {name: stage for name, stage in stages.items() if stage.jobs}


def forward_rate(settings: dict) -> float:
    """Images/s of the settings every model job uses, as tune_forward measured them: at the precision
    the jobs run in where it was timed (bf16 picked by precision "auto" is not the fp32 rate)."""
    by_precision = settings.get("images_per_second_by_precision") or {}
    if by_precision.get(settings.get("precision")):
        return float(by_precision[settings["precision"]])
    key = f"{settings['memory_format']} {settings['batch_size']}"
    rate = settings.get("images_per_second", {}).get(key)
    require(bool(rate), f"the forward settings record no images/s for {key}; rerun tune_forward")
    return float(rate)


def existing_bytes(paths: list[Path]) -> int:
    return sum(f.stat().st_size for p in paths if p.exists() for f in p.rglob("*") if f.is_file())


def check_disk(needed: int, where: str | Path, existing: int = 0) -> int:
    """Free bytes at `where`; UserError when the outputs still to be written do not fit."""
    where = Path(where)
    probe = where if where.exists() else Path(".")
    free = shutil.disk_usage(probe).free
    missing = max(needed - existing, 0)
    if missing > free:
        raise UserError(f"the run needs {missing / GB:.1f} GB more for masks and saliency, but only {free / GB:.1f} GB "
                        f"are free at {probe.resolve()}; free space, or lower rise.n_masks or the number of images")
    return free


def hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def make_plan(config: Config, image_table: str | Path, settings: dict, source: str, cores: int,
              results: str | Path = "results", overhead: float | None = None, model=None,
              single_jobs: Sequence[str] | None = None) -> dict:
    """The plan as a dict; `overhead` (start-up seconds per job) defaults to this process's own;
    `model`: the run's model if this process has built it already (else one is built here);
    `single_jobs`: the benchmark files of the run's jobs the plan does not estimate (None: not known)."""
    shards = shard_sizes(image_table)
    rate = forward_rate(settings)
    if model is None and (config.sanity.enabled or (config.abscam.layers and config.abscam.variants)):
        model = plan_model(config)  # imports torch and builds one, as every job does: once, for both counts
    channels = layer_channels(config, model)
    overhead = process_age() if overhead is None else overhead
    stages = build_stages(config, shards, rate, channels, overhead, sanity_models(config, model))
    parallel = max(1, cores // max(1, config.threads))
    total_job_seconds = sum(s.seconds for s in stages.values())
    disk = sum(s.disk_bytes for s in stages.values())
    results = Path(results)
    free = check_disk(disk, results, existing_bytes([results / "masks", results / "saliency", results / "metrics"]))
    return {"images": sum(shards), "shards": len(shards), "images_per_job": config.images_per_job,
            "jobs": sum(s.jobs for s in stages.values()), "rate": rate, "rate_source": source, "job_overhead": overhead,
            "settings": {k: settings.get(k) for k in ("memory_format", "batch_size", "precision", "device", "threads")},
            "parallel": parallel, "cores": cores, "stages": [asdict(s) for s in stages.values()],
            "job_seconds": total_job_seconds, "wall_seconds": total_job_seconds / parallel,
            "disk_bytes": disk, "free_bytes": free, "precision_note": settings.get("precision_note"),
            **({} if single_jobs is None else {SINGLE_JOBS: sorted(single_jobs)})}


def render_plan(plan: dict) -> str:
    s = plan["settings"]
    lines = ["# Plan of this run", "",
             f"{plan['images']} images in {plan['shards']} shards (images_per_job: {plan['images_per_job']}), "
             f"{plan['jobs']} jobs. The model runs {plan['rate']:.1f} images/s here ({s['memory_format']}, batch "
             f"{s['batch_size']}, {s['precision']} on {s['device']}, {s['threads']} threads; {plan['rate_source']}). Each job starts up in about "
             f"{plan['job_overhead']:.1f} s (this step's own start-up, up to its model built).", "",
             "| stage | jobs | forward passes | estimated time (job-seconds) | disk |", "|---|---:|---:|---:|---:|"]
    for stage in plan["stages"]:
        lines.append(f"| {stage['name']} | {stage['jobs']} | {stage['forward_passes']:,} | {hours(stage['seconds'])} "
                     f"| {stage['disk_bytes'] / GB:.3f} GB |")
    lines += [f"| **total** | {plan['jobs']} | {sum(st['forward_passes'] for st in plan['stages']):,} | "
              f"**{hours(plan['wall_seconds'])}** wall ({plan['parallel']} job(s) at a time on {plan['cores']} cores) | "
              f"{plan['disk_bytes'] / GB:.2f} GB of {plan['free_bytes'] / GB:.0f} GB free |", "",
              "Not counted: aggregate and figures (seconds to a minute each). The estimate is set beside the "
              "measured time in results/tables/timing.md after the run.", "",
              "What changes it:",
              "- `images_per_job` changes only the number of jobs (each pays a few seconds of start-up), not the "
              "forward passes; larger shards mean fewer, longer jobs.",
              "- More cores: `--cores` runs cores / threads jobs at a time; the total divides by that.",
              "- A GPU (`device: cuda`) runs the same passes typically 10-50x faster; the plan then uses the GPU's "
              "measured rate.",
              "- SLURM (`--profile workflow/profiles/slurm`): the jobs run side by side on many nodes; the wall time "
              "is about the longest job plus queueing. Size images_per_job so that one RISE job takes 5-30 minutes."]
    if plan.get("precision_note"):
        lines += ["", f"Precision: {plan['precision_note']}"]
    return "\n".join(lines) + "\n"


def summary_line(plan: dict, written: str | Path) -> str:
    """One line for the log: the plan's totals and where the full plan (`written`) is."""
    return (f"plan: {plan['images']} images, {plan['shards']} shards, {plan['jobs']} jobs, "
            f"{sum(s['forward_passes'] for s in plan['stages']):,} forward passes at {plan['rate']:.1f} images/s: "
            f"about {hours(plan['wall_seconds'])}; {plan['disk_bytes'] / GB:.2f} GB on disk ({written})")


# ---- after the run: estimate beside measurement ---------------------------------------------
def read_plan(path: str | Path) -> dict:
    """The plan JSON of `saliency-bench plan`, with what `measure_stages` and `timing_table` read."""
    fix = "rerun `saliency-bench plan`"
    plan = read_json_object(path, "plan", fix)
    stages = plan.get("stages")
    number = (int, float)
    require(isinstance(plan.get("rate"), number) and "rate_source" in plan and isinstance(stages, list)
            and all(isinstance(stage, dict) and isinstance(stage.get("name"), str) and isinstance(stage.get("jobs"), int)
                    and isinstance(stage.get("seconds"), number) and isinstance(stage.get("benchmarks"), list)
                    and all(isinstance(name, str) for name in stage["benchmarks"]) for stage in stages),
            f"{path} is not a plan of this version of `saliency-bench plan` (it needs rate, rate_source and stages "
            f"with name, jobs, seconds and benchmarks); {fix}")
    single_jobs = plan.get(SINGLE_JOBS)
    require(single_jobs is None or (isinstance(single_jobs, list) and all(isinstance(name, str) for name in single_jobs)),
            f"{path}: {SINGLE_JOBS} is not a list of benchmark file names; {fix}")
    return plan


def benchmark_row(path: Path) -> dict[str, str] | None:
    """The last row of one Snakemake benchmark file (its measurement), None if it has none."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except (UnicodeDecodeError, csv.Error):
        raise UserError(f"cannot read {path} (not a tab-separated text file); {BENCHMARK_FIX}") from None
    return rows[-1] if rows else None


def benchmark_seconds(path: Path, row: dict[str, str] | None) -> float | None:
    """The wall seconds of a benchmark file's `row`, None if it has no row."""
    try:
        seconds = float(row["s"]) if row else None
    except (KeyError, TypeError, ValueError):  # no `s` column, a short row, not a number
        raise UserError(f"{path} holds no number of seconds in its column s; {BENCHMARK_FIX}") from None
    require(seconds is None or (math.isfinite(seconds) and seconds >= 0),
            f"{path} holds {seconds} seconds in its column s; {BENCHMARK_FIX}")
    return seconds


def benchmark_rss(row: dict[str, str] | None) -> float | None:
    """max_rss (MB) of a benchmark file's `row`; None where Snakemake wrote none (NA: a job too short to sample)."""
    try:
        rss = float(row["max_rss"]) if row else None
    except (KeyError, TypeError, ValueError):
        return None
    return rss if rss is not None and math.isfinite(rss) and rss >= 0 else None


@dataclass
class Measured:
    """Per stage of this run's jobs: wall seconds summed and the largest max_rss (MB); `left_out`: the
    benchmark files of jobs this run does not have."""
    seconds: dict[str, float]
    peak_mb: dict[str, float]
    left_out: list[str]


def measure_stages(benchmarks: str | Path, plan: dict) -> Measured:
    """What this run's jobs' benchmark files measured, per stage in the plan's order.

    A plan stage holds the files it lists; the files of the jobs the plan does not estimate (images,
    aggregate, figures...) count as "other": those the plan's SINGLE_JOBS names, or where it names
    none, every file outside the estimated jobs' folders. Any other file belongs to a job this run does
    not have (a shard beyond a lowered data.limit, a method or layer no longer configured, the demo's
    data after switching to yours): it is left out, and its name returned. Snakemake samples a job's
    memory every 0.5 s for its first 30 s, then every 30 s, so a peak is a lower bound."""
    root = Path(benchmarks)
    stage_of = {name: stage["name"] for stage in plan["stages"] for name in stage["benchmarks"]}
    single_jobs = plan.get(SINGLE_JOBS)
    if single_jobs is not None:
        stage_of.update({name: "other" for name in single_jobs if name not in stage_of})
    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}
    left_out = []
    for path in sorted(p for p in root.rglob("*.tsv") if p.is_file()):
        name = path.relative_to(root).as_posix()
        stage = stage_of.get(name)
        if stage is None and (single_jobs is not None or name.split("/")[0] in ESTIMATED_KINDS):
            left_out.append(name)
            continue
        stage = stage or "other"
        row = benchmark_row(path)
        took, rss = benchmark_seconds(path, row), benchmark_rss(row)
        if took is not None:
            seconds[stage] = seconds.get(stage, 0.0) + took
        if rss is not None:
            peaks[stage] = max(peaks.get(stage, 0.0), rss)
    order = [stage["name"] for stage in plan["stages"]] + ["other"]  # the plan's order, as the data flows

    def ordered(values: dict[str, float]) -> dict[str, float]:
        return {name: values[name] for name in order if name in values}

    return Measured(ordered(seconds), ordered(peaks), left_out)


def _megabytes(measured: Measured, stage: str) -> str:
    peak = measured.peak_mb.get(stage)
    return "n/a" if peak is None else f"{peak:,.0f} MB"


def timing_table(plan: dict, measured: Measured, plan_path: str | Path = "results/plan.json",
                 benchmarks: str | Path = BENCHMARK_ROOT) -> str:
    """The plan's estimate per stage beside what this run's jobs measured (`measure_stages` of the
    `benchmarks` folder): their wall seconds and, to size a cluster's memory requests, their peak."""
    lines = ["# Estimated and measured time per stage", "",
             f"Estimate from {plan_path} ({plan['rate']:.1f} images/s, {plan['rate_source']}); measured: the "
             f"sum of this run's jobs' wall seconds in {Path(benchmarks)}/. Ratio = measured / estimated. Peak "
             "memory: the largest max_rss of the stage's jobs (Snakemake samples it, every 30 s after a job's "
             "first 30 s, so a lower bound): what a cluster job of the stage needs at least.", "",
             "| stage | jobs | estimated | measured | ratio | peak memory |", "|---|---:|---:|---:|---:|---:|"]
    estimated_total = measured_total = 0.0
    for stage in plan["stages"]:
        took = measured.seconds.get(stage["name"])
        ratio = f"{took / stage['seconds']:.2f}" if took and stage["seconds"] else "n/a"
        lines.append(f"| {stage['name']} | {stage['jobs']} | {stage['seconds']:.1f} s | "
                     f"{'n/a' if took is None else f'{took:.1f} s'} | {ratio} | {_megabytes(measured, stage['name'])} |")
        estimated_total += stage["seconds"]
        measured_total += took or 0.0
    if "other" in measured.seconds:
        lines.append(f"| other (not estimated) | | | {measured.seconds['other']:.1f} s | | {_megabytes(measured, 'other')} |")
    ratio = f"{measured_total / estimated_total:.2f}" if estimated_total else "n/a"
    lines.append(f"| **estimated stages** | | {estimated_total:.1f} s | {measured_total:.1f} s | {ratio} | |")
    if measured.left_out:
        lines += ["", f"Left out: {len(measured.left_out)} benchmark file(s) of jobs this run does not have (a shard "
                      f"beyond data.limit, a method or layer no longer configured, a step of an earlier config), "
                      f"e.g. {measured.left_out[0]}."]
    return "\n".join(lines) + "\n"
