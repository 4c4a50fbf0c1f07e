"""Option groups that several subcommands share: images, preprocessing, model, device."""
from __future__ import annotations

import argparse

import torch

from ..data import IMAGENET_MEAN, IMAGENET_STD, load_images, read_image_table
from ..errors import require
from ..models import load_model, resolve_device


def add_preprocess_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("preprocessing")
    group.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"), help="input size (default 224 224)")
    group.add_argument("--mean", type=float, nargs=3, default=IMAGENET_MEAN, help="normalisation mean (ImageNet)")
    group.add_argument("--std", type=float, nargs=3, default=IMAGENET_STD, help="normalisation std (ImageNet)")


def add_image_table_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("images")
    group.add_argument("--images", required=True, help="image table written by `saliency-bench images`")
    group.add_argument("--shard", type=int, default=None, help="only this shard of the table (default: all)")
    add_preprocess_args(parser)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--arch", default="resnet18", help="torchvision classifier name (default resnet18)")
    group.add_argument("--num-classes", type=int, required=True, help="number of classes of the checkpoint")
    group.add_argument("--checkpoint", default=None, help="state dict saved with torch.save (loaded with weights_only=True)")
    group.add_argument("--weights", default=None, help="torchvision weights name, e.g. DEFAULT (ImageNet; needs a download)")
    group.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    group.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    group.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"), help="autocast precision (default fp32)")
    group.add_argument("--memory-format", default="contiguous", choices=("contiguous", "channels_last"),
                       help="how the model and its inputs are stored (channels_last is faster on many machines)")
    group.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")


def model_from_args(args: argparse.Namespace) -> torch.nn.Module:
    require(args.batch_size >= 1, f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threads:
        torch.set_num_threads(args.threads)
    from ..forward import set_memory_format

    model = load_model(args.arch, args.num_classes, args.checkpoint, args.weights, resolve_device(args.device))
    return set_memory_format(model, args.memory_format)


def images_from_args(args: argparse.Namespace):
    """(records, images tensor) of the requested shard."""
    records = read_image_table(args.images, args.shard)
    return records, load_images(records, tuple(args.size), args.mean, args.std)
