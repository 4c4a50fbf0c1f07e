"""`saliency-bench train-demo`: train the demo model (ResNet-18 from scratch, CPU) and write its model card."""
from __future__ import annotations

import argparse

from ..argtypes import positive_int, seed
from ..config import defaults


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-demo", help="train the demo ResNet-18 on `demo-data` output (CPU, ~3 min; the workflow uses the shipped one unless demo.train)",
        description="Train resnet18(num_classes=4) from scratch on DIR/images (train split) plus DIR/none (uniform "
                    "target); validate on the workflow's evaluation split; write a state dict and a JSON model card.")
    parser.add_argument("--data", required=True, metavar="DIR", help="folder written by `saliency-bench demo-data`")
    demo, data = defaults().demo, defaults().data
    parser.add_argument("--size", type=int, default=demo.size, help=f"training input size in px (default {demo.size})")
    parser.add_argument("--epochs", type=int, default=demo.epochs, help=f"epochs (default {demo.epochs})")
    parser.add_argument("--seed", type=seed, default=demo.seed,
                        help=f"seed of weights, shuffling and augmentation (default {demo.seed})")
    parser.add_argument("--val-fraction", type=float, default=data.val_fraction,
                        help=f"validation fraction, as in `images` (default {data.val_fraction:g})")
    parser.add_argument("--split-seed", type=seed, default=data.split_seed,
                        help=f"random_split seed, as in `images` (default {data.split_seed})")
    parser.add_argument("--time-limit", type=float, default=float(demo.time_limit),
                        help=f"stop training after this many seconds, keeping the model so far (default {demo.time_limit:g})")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for torch (default: torch's choice); the weights depend on it")
    parser.add_argument("--out", required=True, metavar="CHECKPOINT.pt", help="output state dict")
    parser.add_argument("--card", required=True, metavar="MODEL_CARD.json", help="output model card")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..demo.train import train_demo_model

    if args.threads:
        torch.set_num_threads(args.threads)
    train_demo_model(args.data, args.out, args.card, size=args.size, epochs=args.epochs, seed=args.seed,
                     val_fraction=args.val_fraction, split_seed=args.split_seed, time_limit=args.time_limit)
    return 0
