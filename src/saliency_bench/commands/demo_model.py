"""`saliency-bench demo-model`: put the shipped demo model (sha256-verified) where the workflow reads it."""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo-model", help="copy the shipped demo ResNet-18 and its model card, after checking its sha256",
        description="Copy the demo model that ships with saliency-bench (fp16 state dict, loads as float32) to "
                    "CHECKPOINT.pt and its JSON model card to MODEL_CARD.json; fail if the file's sha256 differs "
                    "from the one the package names.")
    parser.add_argument("--out", required=True, metavar="CHECKPOINT.pt", help="where to copy the state dict")
    parser.add_argument("--card", required=True, metavar="MODEL_CARD.json", help="where to copy the model card")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo.shipped import SHA256, install_shipped

    out = install_shipped(args.out, args.card)
    print(f"demo-model: shipped model (sha256 {SHA256[:12]}...) -> {out}, {args.card}", file=sys.stderr)
    return 0
