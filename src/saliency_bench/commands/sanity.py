"""`saliency-bench sanity`: the model-parameter randomisation check, as a table and a figure."""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from ..argtypes import seed
from ..config import defaults
from ..errors import atomic_path, require
from ..methods import methods
from ..sanity import SanityMethod, run_sanity
from ._options import add_image_table_args, add_model_args, images_from_args, model_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser("sanity", help="model-parameter randomisation check (Adebayo et al. 2018)")
    checkable = [method.name for method in methods() if not method.is_chance]
    parser.add_argument("--methods", nargs="+", default=checkable, choices=checkable, help="methods to check")
    parser.add_argument("--layers", nargs="+", default=["layer4"], help="Abs-CAM layers")
    parser.add_argument("--masks", nargs="*", default=[], help="RISE mask file(s); the first is used")
    n_images = defaults().sanity.images
    parser.add_argument("--n-images", type=int, default=n_images, help=f"images to check (default {n_images})")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the re-initialisation")
    parser.add_argument("--out", required=True, help="output CSV")
    parser.add_argument("--figure", default=None, help="output PNG")
    add_image_table_args(parser)
    add_model_args(parser)
    parser.set_defaults(func=run)


def sanity_methods(args: argparse.Namespace) -> list[SanityMethod]:
    """Each chosen method's variants (its `sanity_params`: RISE the first mask file, Abs-CAM each layer)."""
    chosen = [method for method in methods() if method.name in args.methods]  # registry order
    return [SanityMethod(method_id, method.name, tuple(params.items()))
            for method in chosen for method_id, params in method.sanity_params(args.masks, args.layers)]


def run(args: argparse.Namespace) -> int:
    require(args.n_images >= 1, f"--n-images must be at least 1, got {args.n_images}")
    model = model_from_args(args)
    _, images = images_from_args(args, first=args.n_images)
    rows = run_sanity(model, images, sanity_methods(args), seed=args.seed, batch_size=args.batch_size,
                      precision=args.precision, progress=lambda line: print(line, file=sys.stderr))
    table = pd.DataFrame(rows)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    if args.figure:
        from ..report.figures import sanity_figure

        with atomic_path(args.figure) as tmp:
            sanity_figure(table).savefig(tmp, format="png", dpi=110)
    flagged = sorted(table.loc[table["insensitive"], "method_id"].unique())
    print(f"sanity: {len(flagged)} insensitive method(s): {', '.join(flagged) or 'none'}", file=sys.stderr)
    return 0
