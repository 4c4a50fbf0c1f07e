"""`saliency-bench demo-data`: synthetic water-flea micrographs with ground-truth evidence masks."""
from __future__ import annotations

import argparse
import sys
import time

from ..argtypes import seed
from ..config import defaults


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo-data", help="generate the offline demo data set (synthetic water fleas + evidence masks)",
        description="Write DIR/images/<class>/ (an ImageFolder with 4 classes), DIR/evidence/<class>/ (binary masks, "
                    "same relative paths), DIR/none/ (animals without a class feature, for training only) and DIR/demo.json.")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (new, empty, or an earlier demo data set)")
    demo = defaults().demo
    parser.add_argument("--per-class", type=int, default=demo.per_class, help=f"images per class (default {demo.per_class})")
    parser.add_argument("--none", type=int, default=demo.none, help=f"'none' animals, stubs only (default {demo.none})")
    parser.add_argument("--size", type=int, default=demo.size, help=f"image size in px (default {demo.size})")
    parser.add_argument("--seed", type=seed, default=demo.seed,
                        help=f"base seed; each image's seed derives from it (default {demo.seed})")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2; the output does not depend on it)")
    parser.set_defaults(func=run, folder_outputs=("out",))


def run(args: argparse.Namespace) -> int:
    from ..demo.synth import CLASSES, write_demo_data

    started = time.perf_counter()
    out = write_demo_data(args.out, args.per_class, args.none, args.size, args.seed, args.workers)
    print(f"demo-data: {args.per_class} x {len(CLASSES)} classes + {args.none} none at {args.size} px "
          f"in {time.perf_counter() - started:.1f} s -> {out}", file=sys.stderr)
    return 0
