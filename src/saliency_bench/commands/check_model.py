"""`saliency-bench check-model`: load a model once and run one forward pass, before a long run."""
from __future__ import annotations

import argparse

import torch

from ..errors import require
from ..runtime.models import load_model
from ._options import add_model_source_args, add_size_arg


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-model", help="load a model (and checkpoint), run one forward pass, print its output shape",
        description="Check that an architecture, class count and checkpoint fit together: builds the model, "
                    "loads the checkpoint (weights_only=True), runs one zero image through it and prints the "
                    "output shape and parameter count.")
    add_model_source_args(parser)
    add_size_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    height, width = args.size
    require(height >= 1 and width >= 1, f"--size must be positive, got {height} {width}")
    model = load_model(args.arch, args.num_classes, args.checkpoint, args.weights, args.device)
    device = next(model.parameters()).device
    with torch.no_grad():
        output = model(torch.zeros(1, 3, height, width, device=device))
    require(tuple(output.shape) == (1, args.num_classes),
            f"{args.arch} gives output {tuple(output.shape)} for one image, not (1, {args.num_classes}); "
            "use a classifier whose last layer gives one score per class")
    parameters = sum(p.numel() for p in model.parameters())
    source = args.checkpoint or (f"weights {args.weights}" if args.weights else "random initialisation")
    print(f"{args.arch} ({source}) on {device}: output shape {tuple(output.shape)}, {parameters} parameters")
    return 0
