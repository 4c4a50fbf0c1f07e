"""`saliency-bench evaluate`: deletion/insertion metrics of one saliency file (one method, one shard)."""
from __future__ import annotations

import argparse
import sys

from ..argtypes import seed
from ..config import defaults
from ..errors import require
from ..formats.saliency import read_saliency
from ..metrics.substrates import SUBSTRATES
from ..metrics.evaluate import evaluate_saliency, write_evaluation
from ..runtime.forward import ModelRunner
from ._options import add_image_table_args, add_model_args, images_from_args, model_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="deletion and insertion curves, AUCs and baselines of a saliency file",
        description="Score one saliency file with the RISE deletion and insertion metrics; write per-image records "
                    "(CSV) and the curves (HDF5).")
    parser.add_argument("--saliency", required=True, help="saliency file written by `saliency-bench explain`")
    step = parser.add_mutually_exclusive_group()
    metrics = defaults().metrics
    step.add_argument("--step-rows", type=int, default=metrics.step_rows,
                      help=f"pixels changed per step, in image rows (default {metrics.step_rows}: "
                           f"{metrics.step_rows} * W pixels)")
    step.add_argument("--step", type=int, default=None, help="pixels changed per step (overrides --step-rows)")
    parser.add_argument("--deletion-substrate", default=metrics.deletion_substrate,
                        help=f"what deleted pixels become: {', '.join(SUBSTRATES)} (default {metrics.deletion_substrate};"
                             " zeros = the mean colour)")
    parser.add_argument("--insertion-substrate", default=metrics.insertion_substrate,
                        help=f"what insertion starts from: {', '.join(SUBSTRATES)} (default {metrics.insertion_substrate};"
                             " blur = gkern(11, 5))")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the 'uniform noise' substrate (default 0)")
    parser.add_argument("--out-records", required=True, help="per-image records CSV")
    parser.add_argument("--out-curves", required=True, help="curves HDF5")
    add_image_table_args(parser)
    add_model_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require(args.step_rows >= 1, f"--step-rows must be at least 1, got {args.step_rows}")
    require(args.step is None or args.step >= 1, f"--step must be at least 1 pixel, got {args.step}")
    saliency = read_saliency(args.saliency)
    records, images = images_from_args(args)
    runner = ModelRunner(model_from_args(args), batch_size=args.batch_size, precision=args.precision)
    step = args.step if args.step is not None else args.step_rows * images.shape[3]
    evaluation = evaluate_saliency(runner, images, [r.image_id for r in records], saliency, step=step,
                                   deletion_substrate=args.deletion_substrate,
                                   insertion_substrate=args.insertion_substrate, seed=args.seed,
                                   source=args.saliency, progress=True)
    write_evaluation(evaluation, args.out_records, args.out_curves)
    print(f"{saliency.method_id}: {len(records)} images, {runner.forward_passes} forward passes -> "
          f"{args.out_records}, {args.out_curves}", file=sys.stderr)
    return 0
