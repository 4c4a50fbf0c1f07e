"""`saliency-bench report`: the HTML pages of the Snakemake report (summary and per-image tables, introduction)."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import UserError
from ..report.html import write_report_pages


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="HTML tables and the introduction page for the Snakemake report",
        description="Write summary.html, per_image.html and introduction.html from the tables of `saliency-bench aggregate`.")
    parser.add_argument("--summary", required=True, help="summary.csv from `saliency-bench aggregate`")
    parser.add_argument("--per-image", required=True, help="per_image.csv from `saliency-bench aggregate`")
    parser.add_argument("--run", default="{}", metavar="JSON",
                        help="what was run, as JSON: model, classes, weights, size, rise, abscam, device, precision, "
                             "memory_format, batch_size, threads, alpha (the workflow passes its config)")
    parser.add_argument("--benchmarks", default="benchmarks", help="folder of the jobs' benchmark .tsv files (default benchmarks)")
    parser.add_argument("--forward-settings", default=None, help="forward_settings.json of `saliency-bench tune-forward`, if it ran")
    parser.add_argument("--out-dir", required=True, help="folder for summary.html, per_image.html, introduction.html")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        facts = json.loads(args.run)
    except json.JSONDecodeError as error:
        raise UserError(f"--run is not valid JSON ({error.msg}); pass an object such as '{{\"model\": \"resnet18\"}}'") from None
    if not isinstance(facts, dict):
        raise UserError("--run must be a JSON object such as '{\"model\": \"resnet18\"}'")
    paths = write_report_pages(args.summary, args.per_image, args.out_dir, run=facts, benchmarks=args.benchmarks,
                               forward_settings=args.forward_settings)
    print(f"report pages -> {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0
