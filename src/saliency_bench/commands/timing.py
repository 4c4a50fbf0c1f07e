"""`saliency-bench timing`: after the run, the plan's estimate beside the measured time per stage."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import atomic_path
from ..plan import BENCHMARK_ROOT, measure_stages, read_plan, timing_table


def register(subparsers) -> None:
    parser = subparsers.add_parser("timing", help="estimated (results/plan.json) vs measured (benchmarks/) time per stage",
                                   description="Sum the wall seconds of this run's jobs' benchmark files per stage and "
                                               "set them beside the plan's estimate, with their ratio and the "
                                               "stage's peak memory.")
    parser.add_argument("--plan", required=True, help="plan JSON written by `saliency-bench plan`")
    parser.add_argument("--benchmarks", default=BENCHMARK_ROOT,
                        help=f"folder of the jobs' benchmark .tsv files (default {BENCHMARK_ROOT})")
    parser.add_argument("--out", required=True, help="output markdown table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    plan = read_plan(args.plan)
    table = timing_table(plan, measure_stages(args.benchmarks, plan), args.plan, args.benchmarks)
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(table)
    print(table)
    return 0
