"""`saliency-bench masks`: generate a RISE mask set and stream it to HDF5 (or audit one)."""
from __future__ import annotations

import argparse
import sys

from ..argtypes import finite_float, seed
from ..config import defaults
from ..errors import require
from ..formats.masks import STORAGE_DTYPES, MaskSet
from ..masks import DEFAULT_PARAMS, KINDS, UPSAMPLE_MODES, rerender_error, write_masks
from ..perlin import ENGINES

# A re-rendered mask may differ from the stored one by the storage rounding only.
AUDIT_TOLERANCE = {"float16": 1e-3, "float32": 1e-6}


def register(subparsers) -> None:
    parser = subparsers.add_parser("masks", help="generate RISE masks (binary, gaussian, perlin) into an HDF5 file",
                                   description="Generate N RISE masks and write them chunk by chunk to FILE.h5 "
                                               "(dataset 'masks' (N, H, W); the draws in 'grids', 'shifts' and, for "
                                               "the study's Perlin engine, 'perlin_seeds'; attrs describe the generator). "
                                               "With --verify FILE: re-render FILE's masks from its stored draws and compare.")
    parser.add_argument("--kind", choices=KINDS, help="grid values: binary (needs --p), gaussian, perlin (required)")
    parser.add_argument("--p", type=float, default=None, help="binary masks: keep probability in (0, 1]")
    parser.add_argument("--n", type=int, help="number of masks (the study: 6000) (required)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="mask size = image size (required)")
    rise = defaults().rise
    parser.add_argument("--s", type=int, default=rise.s, help=f"grid cells per side (default {rise.s})")
    parser.add_argument("--seed", type=seed, default=rise.seed,
                        help=f"random seed (default {rise.seed}); the set's generator seed is a hash of it and --set-id")
    parser.add_argument("--set-id", default=None, help="the set's id, hashed with --seed (default: binary-p<p>, gaussian or perlin)")
    parser.add_argument("--upsample", default=rise.upsample, choices=UPSAMPLE_MODES,
                        help=f"grid border: reflect (scikit-image resize mode='reflect', the study) or clamp "
                             f"(default {rise.upsample})")
    parser.add_argument("--mean", type=finite_float, default=None, help="gaussian masks: mean of the grid values (default 0.5)")
    parser.add_argument("--std", type=finite_float, default=None, help="gaussian masks: std of the grid values (default 0.25)")
    parser.add_argument("--perlin-engine", dest="engine", default=None, choices=ENGINES,
                        help="perlin masks: study (the perlin-noise package's function, default) or fbm (noise.pnoise2 octaves)")
    parser.add_argument("--frequency", type=finite_float, default=None,
                        help="perlin masks: noise periods across the grid, the study's PerlinNoise `octaves` argument "
                             f"(default {DEFAULT_PARAMS['perlin']['frequency']:g})")
    parser.add_argument("--octaves", type=int, default=None, help="perlin fbm only: octaves summed (default 5)")
    parser.add_argument("--phase", dest="phase", action="store_true", default=None,
                        help="perlin fbm only: a random per-mask offset of the coordinates (the default)")
    parser.add_argument("--no-phase", dest="phase", action="store_false", help="perlin fbm only: fixed coordinates i/s, j/s")
    parser.add_argument("--dtype", default=rise.mask_dtype, choices=STORAGE_DTYPES, help=f"stored dtype (default {rise.mask_dtype})")
    parser.add_argument("--chunk", type=int, default=256, help="masks generated and written per step (default 256)")
    parser.add_argument("--out", help="output HDF5 file (required)")
    parser.add_argument("--verify", metavar="FILE", default=None, help="audit FILE instead of generating masks")
    parser.set_defaults(func=run)


def generator_params(args: argparse.Namespace) -> dict:
    """Only the generator options the user set, so the kind's own checks name stray ones."""
    names = ("mean", "std", "engine", "frequency", "octaves", "phase")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def verify(path: str) -> int:
    masks = MaskSet(path)
    error = rerender_error(masks)
    dtype = str(masks.attrs.get("dtype", "float16"))
    require(error <= AUDIT_TOLERANCE.get(dtype, 1e-3),
            f"{path}: masks differ from their stored draws by up to {error:.3g}; the file is damaged, regenerate it")
    print(f"{path}: {len(masks)} masks re-render from their stored draws (max |difference| {error:.3g})", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.verify:
        return verify(args.verify)
    missing = [f"--{name}" for name in ("kind", "n", "size", "out") if getattr(args, name) is None]
    require(not missing, f"saliency-bench masks needs {', '.join(missing)} (or --verify FILE to audit a mask file)")
    masks = write_masks(args.out, args.kind, args.n, tuple(args.size), s=args.s, p=args.p, seed=args.seed,
                        set_id=args.set_id, upsample=args.upsample, chunk=args.chunk, dtype=args.dtype, progress=True,
                        **generator_params(args))
    print(f"{len(masks)} {args.kind} masks {masks.size[0]}x{masks.size[1]} ({args.dtype}) -> {args.out}", file=sys.stderr)
    return 0
