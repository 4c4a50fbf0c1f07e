"""`saliency-bench timing`: after the run, the plan's estimate beside the measured time per stage."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import atomic_path, require


def register(subparsers) -> None:
    parser = subparsers.add_parser("timing", help="estimated (results/plan.json) vs measured (benchmarks/) time per stage",
                                   description="Sum the wall seconds of every job's benchmark file per stage and set "
                                               "them beside the plan's estimate, with their ratio.")
    parser.add_argument("--plan", required=True, help="plan JSON written by `saliency-bench plan`")
    parser.add_argument("--benchmarks", default="benchmarks", help="folder of the jobs' benchmark .tsv files")
    parser.add_argument("--out", required=True, help="output markdown table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..plan import measured_seconds, timing_table

    require(Path(args.plan).is_file(), f"plan not found: {args.plan}; run `saliency-bench plan` first")
    table = timing_table(json.loads(Path(args.plan).read_text()), measured_seconds(args.benchmarks), args.plan,
                         args.benchmarks)
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(table)
    print(table)
    return 0
