"""Throughput of the model with its BatchNorms folded into the convolutions against the model as it is.

Both run through `ModelRunner` (fold_bn on / off) at the same memory format and batch size (auto:
tuned on the folded model, as the workflow does), with freed memory kept as in every job, timed in
turn for --rounds rounds, each keeping its best round (a shared machine's speed drifts). Also prints the largest logit change, the
process CPU time per image of each (with --threads 1 the work itself, which other jobs on a shared
machine disturb far less than the wall time), and the folded model's FLOP rate as a share of this
machine's fastest float32 dense kernel (matrix product or 3x3 convolution: the practical ceiling of any fp32
convolution code).

    python benchmarks/fold_speed.py --size 224 224
    python benchmarks/fold_speed.py --size 112 112 --num-classes 4   # the demo's size
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from saliency_bench.commands._options import batch_size_arg
from saliency_bench.runtime.forward import ModelRunner, set_memory_format
from saliency_bench.runtime.models import resolve_device
from saliency_bench.runtime.throughput import dense_flops_per_second, forward_flops, probe_batch, timing_model
from saliency_bench.runtime.tuning import tune_forward


def timed(runner: ModelRunner, batch: torch.Tensor, seconds: float) -> tuple[float, float]:
    """(images per wall second, CPU seconds per image) of plain forward passes, after one warm-up batch."""
    runner(batch)
    wall, cpu, images = time.perf_counter(), time.process_time(), 0
    while images < 2 * len(batch) or time.perf_counter() - wall < seconds:
        runner(batch)
        images += len(batch)
    return images / (time.perf_counter() - wall), (time.process_time() - cpu) / images


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=batch_size_arg, default="auto")
    parser.add_argument("--memory-format", default="auto", choices=("auto", "contiguous", "channels_last"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="timing per round and variant (default 4)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = timing_model(args.arch, args.num_classes, device)
    with torch.no_grad():  # non-trivial BN statistics, as in a trained model
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.uniform_(0.5, 1.5)
                module.running_mean.normal_(0, 0.2)
    settings = tune_forward(model, tuple(args.size), "fp32", args.batch_size, args.memory_format, rounds=1)
    set_memory_format(model, settings.memory_format)
    batch = probe_batch(settings.batch_size, tuple(args.size), device)
    runners = {fold: ModelRunner(model, settings.batch_size, fold_bn=fold) for fold in (False, True)}
    change = float((runners[True](batch) - runners[False](batch)).abs().max())
    best = {fold: 0.0 for fold in runners}
    cpu = {fold: float("inf") for fold in runners}
    for _ in range(args.rounds):
        for fold, runner in runners.items():
            rate, cpu_per_image = timed(runner, batch, args.seconds)
            best[fold], cpu[fold] = max(best[fold], rate), min(cpu[fold], cpu_per_image)
    flop = forward_flops(runners[True].model, tuple(args.size))
    dense = dense_flops_per_second(device)
    kernel = max(dense, key=dense.get)
    print(f"{args.arch} {args.size[0]}x{args.size[1]} {settings.memory_format} batch {settings.batch_size} on {device}, "
          f"{torch.get_num_threads()} threads: as is {best[False]:.1f} images/s, folded {best[True]:.1f} images/s, "
          f"speed-up {best[True] / best[False]:.2f}x; CPU time per image {1e3 * cpu[False]:.1f} ms as is, "
          f"{1e3 * cpu[True]:.1f} ms folded ({cpu[False] / cpu[True]:.2f}x); largest logit change {change:.1e}; "
          f"folded {best[True] * flop / 1e9:.0f} GFLOP/s ({flop / 1e9:.2f} GFLOP per image), "
          f"{best[True] * flop / dense[kernel]:.2f} of this machine's fastest float32 dense kernel ({kernel} "
          f"{dense[kernel] / 1e9:.0f} GFLOP/s; {', '.join(f'{name} {rate / 1e9:.0f}' for name, rate in dense.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
