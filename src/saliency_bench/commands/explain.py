"""`saliency-bench explain`: saliency maps of one method configuration for one shard of images.
Its --method choices and method flags come from the registry (`saliency_bench.methods`)."""
from __future__ import annotations

import argparse
import sys

from ..errors import require
from ..explain import compute_maps
from ..formats.saliency import write_saliency
from ..methods import Option, get_method, method_names, methods
from ._options import add_image_table_args, add_model_args, images_from_args, model_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser("explain", help="compute saliency maps (RISE, Abs-CAM, chance baselines) for a shard",
                                   description="Explain the top-1 class of every image of the table (or one shard) "
                                               "with one method configuration; write a saliency file.")
    parser.add_argument("--method", required=True, choices=method_names(), help="explanation method")
    parser.add_argument("--method-id", required=True, help="name of this configuration, e.g. rise-binary-p0.5")
    for option in method_options():
        option.add_to(parser)
    parser.add_argument("--out", required=True, help="output saliency HDF5 file")
    add_image_table_args(parser)
    add_model_args(parser)
    parser.set_defaults(func=run)


def method_options() -> list[Option]:
    """Every registered method's flags, once each; a flag that several methods read gets their helps joined."""
    merged: dict[str, Option] = {}
    for option in (option for method in methods() for option in method.options):
        known = merged.get(option.flag)
        if known is None:
            merged[option.flag] = option
            continue
        require((known.type, known.default, known.choices) == (option.type, option.default, option.choices),
                f"methods disagree on the type, default or choices of {option.flag}; give one of them another flag")
        if option.help not in known.help:
            merged[option.flag] = Option(known.flag, f"{known.help}; {option.help}", known.type, known.default,
                                         known.choices)
    return list(merged.values())


def run(args: argparse.Namespace) -> int:
    method = get_method(args.method)
    records, images = images_from_args(args)
    image_ids = [record.image_id for record in records]
    kwargs, recorded = method.params_from_args(args, image_ids)  # before the model loads: fail fast
    model = model_from_args(args)
    maps, target, top1_prob = compute_maps(model, images, args.method, batch_size=args.batch_size,
                                           precision=args.precision, **kwargs)
    variant = method.variant(recorded)
    write_saliency(args.out, maps, image_ids, target, top1_prob, method_id=args.method_id, method=args.method,
                   variant=variant, params={**recorded, "precision": args.precision, "batch_size": args.batch_size})
    print(f"{args.method_id}: {len(image_ids)} images ({variant}) -> {args.out}", file=sys.stderr)
    return 0
