"""`saliency-bench check-model`: load a model once and run one forward pass, before a long run."""
from __future__ import annotations

import argparse

from ..runtime.models import load_model, probe_forward
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
    model = load_model(args.arch, args.num_classes, args.checkpoint, args.weights, args.device)
    shape = probe_forward(model, tuple(args.size), args.arch, args.num_classes)
    device = next(model.parameters()).device
    parameters = sum(p.numel() for p in model.parameters())
    source = args.checkpoint or (f"weights {args.weights}" if args.weights else "random initialisation")
    print(f"{args.arch} ({source}) on {device}: output shape {tuple(shape)}, {parameters} parameters")
    return 0
