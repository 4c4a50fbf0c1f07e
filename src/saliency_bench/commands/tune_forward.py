"""`saliency-bench tune-forward`: time the model's memory formats and batch sizes, record the fastest."""
from __future__ import annotations

import argparse
import platform

import torch

from ..errors import require
from ..models import load_model, resolve_device
from ..throughput import CHANNELS_LAST_MARGIN, tune_forward, write_forward_settings
from ._options import add_forward_args, add_model_source_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tune-forward", help="measure the fastest memory format and batch size of the model here; write them as JSON",
        description="Time forward passes of the model at the run's input size and precision, stored contiguous "
                    "and channels-last and in each candidate batch size, all in turn for --rounds rounds. "
                    f"channels_last is chosen only when at least {CHANNELS_LAST_MARGIN - 1:.0%} faster. "
                    "What is not auto is kept as given. Jobs given the file (--forward-settings) all run alike.")
    parser.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"), help="input size (default 224 224)")
    parser.add_argument("--rounds", type=int, default=2, help="timing rounds per candidate (default 2)")
    parser.add_argument("--out", required=True, help="output JSON file")
    group = add_model_source_args(parser)
    group.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"), help="autocast precision (default fp32)")
    group.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    add_forward_args(group, batch_size="auto", memory_format="auto")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require(args.rounds >= 1, f"--rounds must be at least 1, got {args.rounds}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = load_model(args.arch, args.num_classes, args.checkpoint, args.weights, device)
    settings = tune_forward(model, tuple(args.size), args.precision, args.batch_size, args.memory_format, args.rounds)
    context = {"arch": args.arch, "size": list(args.size), "precision": args.precision, "device": str(device),
               "threads": torch.get_num_threads(), "machine": platform.machine(),
               "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}
    write_forward_settings(args.out, settings, context)
    print(f"{args.arch} at {args.size[0]}x{args.size[1]}, {args.precision} on {device}: {settings.describe()}")
    return 0
