"""`saliency-bench masks`: generate a RISE mask set and stream it to HDF5."""
from __future__ import annotations

import argparse
import sys

from ..masks import KINDS, STORAGE_DTYPES, write_masks


def register(subparsers) -> None:
    parser = subparsers.add_parser("masks", help="generate RISE masks (binary, gaussian, perlin) into an HDF5 file",
                                   description="Generate N RISE masks and write them chunk by chunk to FILE.h5 "
                                               "(dataset 'masks' (N, H, W), attrs describe the generator).")
    parser.add_argument("--kind", required=True, choices=KINDS, help="grid values: binary (needs --p), gaussian, perlin")
    parser.add_argument("--p", type=float, default=None, help="binary masks: keep probability in (0, 1]")
    parser.add_argument("--n", type=int, required=True, help="number of masks (the study: 6000)")
    parser.add_argument("--size", type=int, nargs=2, required=True, metavar=("H", "W"), help="mask size = image size")
    parser.add_argument("--s", type=int, default=8, help="grid cells per side (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--mean", type=float, default=None, help="gaussian masks: mean of the grid values (default 0.5)")
    parser.add_argument("--std", type=float, default=None, help="gaussian masks: std of the grid values (default 0.25)")
    parser.add_argument("--frequency", type=float, default=None, help="perlin masks: noise periods across the grid (default 5)")
    parser.add_argument("--octaves", type=int, default=None, help="perlin masks: octaves (default 5)")
    parser.add_argument("--no-phase", dest="phase", action="store_false", default=None,
                        help="perlin masks: use the study's fixed coordinates (no random per-mask offset)")
    parser.add_argument("--dtype", default="float16", choices=STORAGE_DTYPES, help="stored dtype (default float16)")
    parser.add_argument("--chunk", type=int, default=256, help="masks generated and written per step (default 256)")
    parser.add_argument("--out", required=True, help="output HDF5 file")
    parser.set_defaults(func=run)


def generator_params(args: argparse.Namespace) -> dict:
    """Only the generator options the user set, so the kind's own checks name stray ones."""
    names = ("mean", "std", "frequency", "octaves", "phase")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def run(args: argparse.Namespace) -> int:
    masks = write_masks(args.out, args.kind, args.n, tuple(args.size), s=args.s, p=args.p, seed=args.seed,
                        chunk=args.chunk, dtype=args.dtype, progress=True, **generator_params(args))
    print(f"{len(masks)} {args.kind} masks {masks.size[0]}x{masks.size[1]} ({args.dtype}) -> {args.out}", file=sys.stderr)
    return 0
