"""`saliency-bench report`: the HTML pages of the Snakemake report (summary and per-image tables, introduction)."""
from __future__ import annotations

import argparse
import sys

from ..errors import require
from ..formats.json_files import parse_json_object
from ..plan import BENCHMARK_ROOT
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
    parser.add_argument("--benchmarks", default=BENCHMARK_ROOT,
                        help=f"folder of the jobs' benchmark .tsv files (default {BENCHMARK_ROOT})")
    parser.add_argument("--plan", default=None,
                        help="plan JSON of `saliency-bench plan`: the introduction then gives this run's time per stage")
    parser.add_argument("--forward-settings", default=None, help="forward_settings.json of `saliency-bench tune-forward`, if it ran")
    parser.add_argument("--out-dir", required=True, help="folder for summary.html, per_image.html, introduction.html")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    paths = write_report_pages(args.summary, args.per_image, args.out_dir, run=run_facts(args.run),
                               benchmarks=args.benchmarks, plan=args.plan, forward_settings=args.forward_settings)
    print(f"report pages -> {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0


def run_facts(text: str) -> dict:
    """--run as a JSON object, with the values the pages compute with checked (the rest is shown as text)."""
    fix = "pass the config's values, e.g. '{\"model\": \"resnet18\", \"alpha\": 0.05, \"abscam\": {\"layers\": [\"layer4\"]}}'"
    facts = parse_json_object(text, "--run", fix)
    alpha = facts.get("alpha", 0.05)
    require(isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0 < alpha < 1,
            f"--run alpha must be a number between 0 and 1, got {alpha!r}; {fix}")
    require(isinstance(facts.get("size", []), list), f"--run size must be a list such as [224, 224]; {fix}")
    rise, abscam = facts.get("rise", {}), facts.get("abscam", {})
    require(isinstance(rise, dict) and isinstance(abscam, dict), f"--run rise and abscam must be JSON objects; {fix}")
    require(all(isinstance(rise.get(kind, {}), dict) for kind in ("binary", "gaussian", "perlin"))
            and isinstance(rise.get("binary", {}).get("p", []), list),
            f"--run rise.binary, rise.gaussian and rise.perlin must be objects, rise.binary.p a list; {fix}")
    for key in ("layers", "variants"):
        names = abscam.get(key, [])
        require(isinstance(names, list) and all(isinstance(name, str) for name in names),
                f"--run abscam.{key} must be a list of names, got {names!r}; {fix}")
    return facts
