"""`saliency-bench tune-forward`: time the model's memory formats and batch sizes, record the fastest."""
from __future__ import annotations

import argparse
import platform

import torch

from ..argtypes import positive_int
from ..errors import require
from ..runtime.tuning import (CHANNELS_LAST_MARGIN, LARGER_BATCH_MARGIN, REDUCED_PRECISION_MARGIN, tune_forward,
                              write_forward_settings)
from ._options import add_forward_args, add_model_source_args, add_precision_args, load_model_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tune-forward", help="measure the fastest memory format and batch size of the model here; write them as JSON",
        description="Time forward passes of the model at the run's input size and precision, stored contiguous "
                    "and channels-last and in each candidate batch size, all in turn for --rounds rounds. "
                    f"The batch is the smallest that no larger one beats by {LARGER_BATCH_MARGIN - 1:.0%} or more; "
                    f"channels_last is chosen only when at least {CHANNELS_LAST_MARGIN - 1:.0%} faster. "
                    "What is not auto is kept as given. Then fp32, bf16 (and fp16 on CUDA) are timed at the chosen "
                    "format and batch and recorded; the precision is never switched, except by --precision auto "
                    f"(bf16 when at least {REDUCED_PRECISION_MARGIN}x faster). Jobs given the file "
                    "(--forward-settings) all run alike.")
    parser.add_argument("--size", type=positive_int, nargs=2, default=(224, 224), metavar=("H", "W"), help="input size (default 224 224)")
    parser.add_argument("--rounds", type=int, default=2, help="timing rounds per candidate (default 2)")
    parser.add_argument("--out", required=True, help="output JSON file")
    group = add_model_source_args(parser)
    add_precision_args(group)
    add_forward_args(group, batch_size="auto", memory_format="auto")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require(args.rounds >= 1, f"--rounds must be at least 1, got {args.rounds}")
    model, device = load_model_from_args(args)
    settings = tune_forward(model, tuple(args.size), args.precision, args.batch_size, args.memory_format, args.rounds,
                            time_precisions=True)
    context = {"arch": args.arch, "size": list(args.size), "precision_requested": args.precision,
               "fold_bn": args.fold_bn, "device": str(device), "threads": torch.get_num_threads(),
               "machine": platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
               "torch": torch.__version__}
    write_forward_settings(args.out, settings, context)
    print(f"{args.arch} at {args.size[0]}x{args.size[1]} on {device}: {settings.describe()}")
    if settings.precision_note:
        print(f"note: {settings.precision_note}")
    return 0
