"""`saliency-bench check-model`: load a model once and run one forward pass, before a long run."""
from __future__ import annotations

import argparse

from ..abscam import probe_layers
from ..runtime.models import load_model
from ._options import add_model_source_args, add_size_arg


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-model", help="load a model (and checkpoint), run one forward pass, print its output shape",
        description="Check that an architecture, class count and checkpoint fit together: builds the model, "
                    "loads the checkpoint (weights_only=True), runs one zero image through it and prints the "
                    "output shape and parameter count; with --layers, the feature map each Abs-CAM layer gives.")
    add_model_source_args(parser)
    add_size_arg(parser)
    parser.add_argument("--layers", nargs="+", default=[], metavar="LAYER",
                        help="module names to check as Abs-CAM layers (e.g. layer1 layer4, features.12): each must "
                             "give a (B, C, h, w) feature map; prints its (C, h, w)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.arch, args.num_classes, args.checkpoint, args.weights, args.device)
    shape, layer_shapes = probe_layers(model, args.size, args.arch, args.num_classes, args.layers)
    device = next(model.parameters()).device
    parameters = sum(p.numel() for p in model.parameters())
    source = args.checkpoint or (f"weights {args.weights}" if args.weights else "random initialisation")
    print(f"{args.arch} ({source}) on {device}: output shape {tuple(shape)}, {parameters} parameters")
    for layer in dict.fromkeys(args.layers):  # in the order asked, not the forward pass's
        channels, height, width = layer_shapes[layer]
        print(f"  {layer}: {channels} channels of {height}x{width} (Abs-CAM Final: {channels + 1} forward passes per image)")
    return 0
