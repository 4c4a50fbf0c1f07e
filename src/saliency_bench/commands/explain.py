"""`saliency-bench explain`: saliency maps of one method configuration for one shard of images."""
from __future__ import annotations

import argparse
import sys

from ..errors import require
from ..explain import METHODS, compute_maps, method_variant
from ..formats.masks import MaskSet
from ..formats.saliency import write_saliency
from ._options import add_image_table_args, add_model_args, images_from_args, model_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser("explain", help="compute saliency maps (RISE, Abs-CAM, chance baselines) for a shard",
                                   description="Explain the top-1 class of every image of the table (or one shard) "
                                               "with one method configuration; write a saliency file.")
    parser.add_argument("--method", required=True, choices=METHODS, help="explanation method")
    parser.add_argument("--method-id", required=True, help="name of this configuration, e.g. rise-binary-p0.5")
    parser.add_argument("--masks", default=None, help="rise: mask file from `saliency-bench masks`")
    parser.add_argument("--p", type=float, default=None,
                        help="rise: divide by N * p (default: the mask file's p for binary masks, else N * mean(masks))")
    parser.add_argument("--score", default="logits", choices=("logits", "softmax"),
                        help="rise: f = logits (the study) or softmax (original RISE); "
                             "abscam-final: |logit| (the study) or softmax (Score-CAM)")
    parser.add_argument("--layer", default=None, help="abscam: module name of the target layer, e.g. layer3")
    parser.add_argument("--seed", type=int, default=0, help="random: seed of the noise maps (default 0)")
    parser.add_argument("--sigma-fraction", type=float, default=0.25, help="centre: Gaussian sigma / min(H, W) (default 0.25)")
    parser.add_argument("--out", required=True, help="output saliency HDF5 file")
    add_image_table_args(parser)
    add_model_args(parser)
    parser.set_defaults(func=run)


def method_params(args: argparse.Namespace, image_ids: list[str]) -> tuple[dict, dict]:
    """(keyword arguments for compute_maps, JSON parameters recorded in the saliency file)."""
    method = args.method
    if method == "rise":
        require(args.masks is not None, "method rise needs --masks FILE.h5 (create it with `saliency-bench masks`)")
        masks = MaskSet(args.masks)
        p = args.p if args.p is not None else (masks.attrs.get("p") if masks.attrs.get("kind") == "binary" else None)
        recorded = {"masks": str(args.masks), "p": p, "score": args.score, "n_masks": len(masks),
                    "mask_attrs": {k: v for k, v in masks.attrs.items() if k != "version"}}
        return {"masks": masks, "p": p, "score": args.score, "progress": True}, recorded
    if method in ("abscam-init", "abscam-final"):
        require(args.layer is not None, f"method {method} needs --layer, e.g. --layer layer3 for a ResNet")
        if method == "abscam-init":
            return {"layer": args.layer}, {"layer": args.layer}
        return ({"layer": args.layer, "score": args.score, "progress": True}, {"layer": args.layer, "score": args.score})
    if method == "random":
        return {"seed": args.seed, "keys": image_ids}, {"seed": args.seed}
    return {"sigma_fraction": args.sigma_fraction}, {"sigma_fraction": args.sigma_fraction}


def run(args: argparse.Namespace) -> int:
    records, images = images_from_args(args)
    image_ids = [record.image_id for record in records]
    kwargs, recorded = method_params(args, image_ids)  # opens the mask file before the model loads: fail fast
    model = model_from_args(args)
    maps, target, top1_prob = compute_maps(model, images, args.method, batch_size=args.batch_size,
                                           precision=args.precision, **kwargs)
    mask_kind = recorded.get("mask_attrs", {}).get("kind")
    variant = method_variant(args.method, p=recorded.get("p"), mask_kind=mask_kind, layer=args.layer, seed=args.seed,
                             sigma_fraction=args.sigma_fraction, score=args.score)
    write_saliency(args.out, maps, image_ids, target, top1_prob, method_id=args.method_id, method=args.method,
                   variant=variant, params={**recorded, "precision": args.precision, "batch_size": args.batch_size})
    print(f"{args.method_id}: {len(image_ids)} images ({variant}) -> {args.out}", file=sys.stderr)
    return 0
