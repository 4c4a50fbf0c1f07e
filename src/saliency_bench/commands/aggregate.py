"""`saliency-bench aggregate`: per-image and summary tables with CIs, tests, chance and localisation."""
from __future__ import annotations

import argparse
import sys

from ..argtypes import seed
from ..analysis.aggregate import aggregate
from ..config import defaults


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "aggregate", help="summary tables with bootstrap CIs, tests against the best and chance, localisation, stability",
        description="Write per_image.csv, summary.csv and summary.md from the records of `saliency-bench evaluate`.")
    parser.add_argument("--records", nargs="+", required=True, help="records CSVs (results/metrics/<method_id>/shard-<k>.csv)")
    parser.add_argument("--saliency", nargs="+", default=[], help="saliency HDF5 files (needed for localisation)")
    parser.add_argument("--evidence-root", default=None, help="folder of binary evidence masks at <root>/<image_id> (255 = evidence)")
    parser.add_argument("--images", default=None, help="image table (adds label and class_name, orders rows)")
    stats = defaults().stats
    parser.add_argument("--bootstrap", type=int, default=stats.bootstrap, help=f"bootstrap resamples (default {stats.bootstrap})")
    parser.add_argument("--seed", type=seed, default=stats.seed, help=f"bootstrap seed (default {stats.seed})")
    parser.add_argument("--alpha", type=float, default=stats.alpha,
                        help=f"significance level; CIs are 1 - alpha (default {stats.alpha:g})")
    parser.add_argument("--out-dir", required=True, help="folder for per_image.csv, summary.csv, summary.md")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    paths = aggregate(args.records, args.out_dir, saliency=args.saliency, evidence_root=args.evidence_root,
                      images=args.images, n_resamples=args.bootstrap, seed=args.seed, alpha=args.alpha)
    print(f"tables -> {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0
