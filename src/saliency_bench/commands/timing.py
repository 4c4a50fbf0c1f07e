"""`saliency-bench timing`: after the run, the plan's estimate beside the measured time per stage."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import atomic_path, require
from ..formats.json_files import read_json_object


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

    table = timing_table(read_plan(args.plan), measured_seconds(args.benchmarks), args.plan, args.benchmarks)
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(table)
    print(table)
    return 0


def read_plan(path: str) -> dict:
    """The plan JSON with what `timing_table` reads: rate, rate_source and the stages' name, jobs and seconds."""
    fix = "rerun `saliency-bench plan`"
    plan = read_json_object(path, "plan", fix)
    stages = plan.get("stages")
    number = (int, float)
    require(isinstance(plan.get("rate"), number) and "rate_source" in plan and isinstance(stages, list)
            and all(isinstance(stage, dict) and isinstance(stage.get("name"), str) and isinstance(stage.get("jobs"), int)
                    and isinstance(stage.get("seconds"), number) for stage in stages),
            f"{path} is not a plan of `saliency-bench plan` (it needs rate, rate_source and stages with name, jobs "
            f"and seconds); {fix}")
    return plan
