"""Option groups that several subcommands share: images, preprocessing, model, device."""
from __future__ import annotations

import argparse
import sys

import torch

from ..argtypes import finite_float, positive_float, positive_int
from ..config import defaults
from ..data import load_images
from ..errors import require
from ..formats.image_table import read_image_table
from ..runtime.models import load_model, resolve_device
from ..runtime.tuning import CPU_BATCH_CANDIDATES, CUDA_BATCH_SIZE, REDUCED_PRECISION_MARGIN


def add_preprocess_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("preprocessing")
    pre = defaults().preprocess
    add_size_arg(group)
    group.add_argument("--mean", type=finite_float, nargs=3, default=pre.mean, help="normalisation mean (default: ImageNet's)")
    group.add_argument("--std", type=positive_float, nargs=3, default=pre.std, help="normalisation std (default: ImageNet's)")


def add_size_arg(parser, help: str = "input size") -> None:
    size = defaults().preprocess.size
    parser.add_argument("--size", type=positive_int, nargs=2, default=size, metavar=("H", "W"),
                        help=f"{help} (default {size[0]} {size[1]})")


def add_image_table_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("images")
    group.add_argument("--images", required=True, help="image table written by `saliency-bench images`")
    group.add_argument("--shard", type=int, default=None, help="only this shard of the table (default: all)")
    group.add_argument("--rows", type=positive_int, default=None,
                       help="with --shard: only its first ROWS images (the workflow cuts the run's last shard to data.limit)")
    add_preprocess_args(parser)


def add_model_source_args(parser: argparse.ArgumentParser):
    """Which model: architecture, class count, weights, device. Returns the argument group."""
    group = parser.add_argument_group("model")
    model = defaults().model
    group.add_argument("--arch", default=model.arch,
                       help=f"torchvision classifier name (default {model.arch}; all: saliency-bench models), "
                            "or module:function of your own (takes num_classes, returns the nn.Module)")
    group.add_argument("--num-classes", type=int, required=True, help="number of classes of the checkpoint")
    group.add_argument("--checkpoint", default=None, help="state dict saved with torch.save (loaded with weights_only=True)")
    group.add_argument("--weights", default=None, help="torchvision weights name, e.g. DEFAULT (ImageNet; needs a download)")
    group.add_argument("--device", default=defaults().device, help=f"auto, cpu or cuda (default {defaults().device})")
    return group


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """The model as the methods and metrics run it: its source, precision, threads, batch size and
    memory format (given, tuned now with auto, or read from a `tune-forward` file)."""
    group = add_model_source_args(parser)
    add_precision_args(group)
    add_forward_args(group, batch_size=64, memory_format="contiguous")
    group.add_argument("--forward-settings", default=None, metavar="JSON",
                       help="memory format and batch size recorded by `saliency-bench tune-forward` (so that every "
                            "job runs alike); they replace --batch-size and --memory-format (and --precision auto)")


def add_precision_args(group) -> None:
    """Precision, threads and conv-BN folding: how the model computes (model jobs and tune-forward)."""
    group.add_argument("--precision", default=defaults().precision, choices=("fp32", "bf16", "fp16", "auto"),
                       help=f"autocast precision (default {defaults().precision}); auto (opt-in): bf16 where tune-forward measures it "
                            f"at least {REDUCED_PRECISION_MARGIN}x faster than fp32, else fp32")
    group.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch (default: torch's choice)")
    group.add_argument("--no-fold-bn", dest="fold_bn", action="store_false",
                       help="run forward-only passes with the BatchNorms as they are (default: folded into the "
                            "preceding convolutions, eval mode; the same function to float32 round-off)")


def add_forward_args(group, *, batch_size: int | str, memory_format: str) -> None:
    group.add_argument("--batch-size", type=batch_size_arg, default=batch_size,
                       help=f"images per forward pass (default {batch_size}); auto: the fastest of "
                            f"{'/'.join(map(str, CPU_BATCH_CANDIDATES))} on a CPU, measured now; {CUDA_BATCH_SIZE} on CUDA")
    group.add_argument("--memory-format", default=memory_format, choices=("contiguous", "channels_last", "auto"),
                       help=f"how the model and its inputs are stored (default {memory_format}); auto: the faster, measured now")


def batch_size_arg(text: str) -> int | str:
    return text if text == "auto" else positive_int(text)


def load_model_from_args(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.device]:
    """(model, device): --threads set, the model of --arch/--checkpoint/--weights on --device, probed
    with one image of --size, its BatchNorms folded unless --no-fold-bn; freed memory kept in the
    process (`keep_freed_memory`). Every model-running command starts with it."""
    from ..runtime.allocator import keep_freed_memory
    from ..runtime.forward import set_fold_bn

    keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = load_model(args.arch, args.num_classes, args.checkpoint, args.weights, device, tuple(args.size))
    return set_fold_bn(model, getattr(args, "fold_bn", True)), device


def model_from_args(args: argparse.Namespace) -> torch.nn.Module:
    """The model on its device in its memory format; sets args.batch_size and args.memory_format
    to what the model runs with (read from --forward-settings, or tuned now where auto)."""
    from ..runtime.forward import set_memory_format
    from ..runtime.tuning import read_forward_precision, read_forward_settings, tune_forward

    model, _ = load_model_from_args(args)
    if getattr(args, "forward_settings", None):
        args.memory_format, args.batch_size = read_forward_settings(args.forward_settings)
        if args.precision == "auto":
            args.precision = read_forward_precision(args.forward_settings)
    else:
        settings = tune_forward(model, tuple(args.size), args.precision, args.batch_size, args.memory_format)
        if settings.measured or settings.by_precision:
            print(f"forward settings (auto): {settings.describe()}", file=sys.stderr)
        args.memory_format, args.batch_size, args.precision = settings.memory_format, settings.batch_size, settings.precision
    return set_memory_format(model, args.memory_format)


def images_from_args(args: argparse.Namespace, first: int | None = None):
    """(records, images tensor) of the requested shard, or of its `first` images only (none other is decoded)."""
    require(args.rows is None or args.shard is not None, "--rows needs --shard")
    records = read_image_table(args.images, args.shard, rows=args.rows)[:first]
    return records, load_images(records, tuple(args.size), args.mean, args.std)
