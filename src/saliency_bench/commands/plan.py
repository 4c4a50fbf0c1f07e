"""`saliency-bench plan`: before any model job, count the work, estimate its time and disk, check the space."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..argtypes import positive_int
from ..config import Config, load_config
from ..errors import UserError, atomic_path, require
from ._options import add_model_args, add_size_arg, load_model_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan", help="write results/plan.md: images, shards, jobs, forward passes, time per stage and disk",
        description="Count the jobs and forward passes of every stage of the workflow config, estimate their time "
                    "from the model's measured throughput (--forward-settings, or a short measurement now) and the "
                    "disk for masks and saliency; stop when the disk does not hold them.")
    parser.add_argument("--config", required=True, help="the workflow's effective config, as JSON text or a .json/.yaml file")
    parser.add_argument("--images", required=True, help="image table written by `saliency-bench images`")
    parser.add_argument("--cores", type=positive_int, default=len(os.sched_getaffinity(0)),
                        help="cores the run may use (jobs at a time = cores / threads; default: this machine's, as --cores all)")
    parser.add_argument("--results", default="results", help="results folder whose free space is checked")
    add_size_arg(parser, "input size of the measurement")
    parser.add_argument("--single-jobs", nargs="*", metavar="NAME",
                        help="benchmark files (under benchmarks/) of the run's jobs that the plan does not estimate "
                             "(images, aggregate, figures...; the workflow names them): timing counts only these "
                             "beside the estimated stages' own. Default: every other file there")
    parser.add_argument("--out", required=True, help="plan (markdown)")
    parser.add_argument("--out-json", required=True, help="plan (JSON), read by `saliency-bench timing`")
    add_model_args(parser)
    parser.set_defaults(func=run)


def read_config(text: str) -> Config:
    """The workflow's effective config (validated, defaults filled in), typed."""
    import yaml

    path = Path(text)
    try:
        values = yaml.safe_load(path.read_text() if path.suffix in (".json", ".yaml", ".yml") else text)
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"--config is neither a config file nor JSON text ({error.__class__.__name__})") from None
    require(isinstance(values, dict), "--config must hold a mapping of config keys (config/README.md)")
    return load_config(values)


def forward_settings(args: argparse.Namespace) -> tuple[dict, str, float | None, object]:
    """The settings and throughput the model jobs will use (tune_forward's record, or measured now),
    this step's start-up before any measurement and the model measured (None, None: nothing measured,
    the plan builds its model and takes its own age)."""
    if args.forward_settings:
        from ..runtime.tuning import read_forward_record

        return read_forward_record(args.forward_settings), f"measured by tune_forward, {args.forward_settings}", None, None
    require("auto" not in (args.memory_format, args.batch_size),
            "plan needs --forward-settings or named --memory-format and --batch-size")
    import torch

    from ..plan import process_age
    from ..runtime.tuning import measure_forward

    model, device = load_model_from_args(args)
    startup = process_age()  # what every model job pays too: interpreter, torch, the model; not the timing below
    # Two rounds, the best kept (as tune_forward): the plan often starts beside the first jobs, and one
    # round alone can catch their start-up and underestimate the rate.
    rates = measure_forward(model, tuple(args.size), args.precision, (args.memory_format,), (args.batch_size,), rounds=2)
    settings = {"memory_format": args.memory_format, "batch_size": args.batch_size, "precision": args.precision,
                "device": str(device), "threads": torch.get_num_threads(),
                "images_per_second": {f"{f} {b}": rate for (f, b), rate in rates.items()}}
    return settings, "measured now by the plan step (named settings, no tune_forward)", startup, model


def run(args: argparse.Namespace) -> int:
    from ..plan import make_plan, render_plan, summary_line

    config = read_config(args.config)
    settings, source, startup, model = forward_settings(args)
    plan = make_plan(config, args.images, settings, source, args.cores, args.results, overhead=startup, model=model,
                     single_jobs=args.single_jobs)
    with atomic_path(args.out_json) as tmp:
        Path(tmp).write_text(json.dumps(plan, indent=1) + "\n")
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(render_plan(plan))
    print(summary_line(plan, args.out), file=sys.stderr)
    return 0
