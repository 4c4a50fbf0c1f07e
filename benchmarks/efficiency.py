"""Efficiency of each stage: how much of its wall time is the model's forward passes, and its peak memory.

For every stage prints one line

    STAGE forward_share=X.XX peak_rss_mb=M

forward_share = (forward passes the stage ran / the model's throughput) / the stage's wall time,
with the throughput measured in this run, at the same batch size and precision. 1.00 means the
stage costs no more than its forward passes; the rest is overhead (mask I/O, masking, matmuls,
gradients, Python). Each stage runs in a fresh process (multiprocessing spawn), so peak_rss_mb
(resource.getrusage ru_maxrss, including the interpreter, torch and the model) is that stage's own.

    python benchmarks/efficiency.py --size 224 224 --n-masks 1000 --images 2 --batch-size 64
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time

STAGES = ("masks", "rise", "abscam-init", "abscam-final", "causal")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--n-masks", type=int, default=1000, help="RISE masks (default 1000)")
    parser.add_argument("--images", type=int, default=2, help="images explained per stage (default 2)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--arch", default="resnet18", help="torchvision classifier, random weights (default resnet18)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--layer", default="layer3", help="Abs-CAM layer (default layer3)")
    parser.add_argument("--mask-kind", default="binary", choices=("binary", "gaussian", "perlin"))
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return parser.parse_args(argv)


def setup(args):
    """Model and images, identical in every process (seeded)."""
    import torch

    from saliency_bench.models import build_model, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    model = build_model(args.arch, args.num_classes).to(device).eval()
    images = torch.randn(args.images, 3, *args.size, generator=torch.Generator().manual_seed(1)).to(device)
    return model, images, device


def synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_throughput(args) -> float:
    """Images per second of plain forward passes at the benchmark's batch size and precision."""
    import torch

    from saliency_bench.forward import ModelRunner

    model, images, device = setup(args)
    runner = ModelRunner(model, args.batch_size, args.precision)
    batch = images[:1].expand(args.batch_size, -1, -1, -1).contiguous() * torch.rand(args.batch_size, 1, 1, 1, device=device)
    for _ in range(2):  # warm-up: allocator, algorithm selection
        runner(batch)
    synchronise(device)
    start, repeats = time.perf_counter(), 0
    while repeats < 3 or time.perf_counter() - start < 3.0:
        runner(batch)
        repeats += 1
    synchronise(device)
    return repeats * args.batch_size / (time.perf_counter() - start)


def run_stage(stage: str, args, mask_path: str) -> dict:
    """Runs in a fresh process: (wall seconds of the stage, forward passes it ran, peak RSS in MB)."""
    from saliency_bench.forward import ModelRunner
    from saliency_bench.masks import MaskSet, write_masks

    model, images, device = setup(args)
    runner = ModelRunner(model, args.batch_size, args.precision)
    target = runner.run(images).argmax(1)
    runner.forward_passes = 0
    p = 0.5 if args.mask_kind == "binary" else None
    synchronise(device)
    start = time.perf_counter()
    if stage == "masks":
        write_masks(mask_path, args.mask_kind, args.n_masks, tuple(args.size), p=p, seed=0)
    elif stage == "rise":
        from saliency_bench.rise import rise_saliency

        rise_saliency(model, images, MaskSet(mask_path), p=p, target=target, runner=runner)
    elif stage == "abscam-init":
        from saliency_bench.abscam import abscam_init

        abscam_init(model, images, args.layer, target)
        runner.forward_passes = len(images)  # one forward (and one backward) pass per image
    elif stage == "abscam-final":
        from saliency_bench.abscam import abscam_final

        abscam_final(model, images, args.layer, target, runner=runner, precision=args.precision)
    elif stage == "causal":
        try:
            from saliency_bench.metrics import causal_curves
        except ImportError:
            return {"skipped": "saliency_bench.metrics.causal_curves is not available yet"}
        import torch

        saliency = torch.rand(len(images), *args.size, generator=torch.Generator().manual_seed(2)).numpy()
        for mode in ("deletion", "insertion"):
            causal_curves(runner, images, saliency, mode=mode, target=target)
    synchronise(device)
    wall = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {"wall": wall, "forward_passes": runner.forward_passes, "peak_rss_mb": peak_kb / 1024}


def in_fresh_process(function, *args):
    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        return pool.apply(function, args)
    finally:
        pool.close()
        pool.join()


def main(argv=None) -> int:
    args = parse_args(argv)
    throughput = in_fresh_process(measure_throughput, args)
    print(f"# {args.arch} {args.size[0]}x{args.size[1]} batch {args.batch_size} {args.precision} on {args.device}: "
          f"{throughput:.1f} images/s; {args.images} images, {args.n_masks} {args.mask_kind} masks", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        mask_path = os.path.join(folder, "masks.h5")
        if "rise" in args.stages and "masks" not in args.stages:
            args.stages = ["masks", *args.stages]  # RISE needs the mask file
        for stage in STAGES:
            if stage not in args.stages:
                continue
            result = in_fresh_process(run_stage, stage, args, mask_path)
            if "skipped" in result:
                print(f"# {stage}: skipped ({result['skipped']})", file=sys.stderr)
                continue
            share = result["forward_passes"] / throughput / result["wall"]
            print(f"{stage} forward_share={share:.2f} peak_rss_mb={result['peak_rss_mb']:.0f}")
            print(f"#   {stage}: {result['wall']:.2f} s, {result['forward_passes']} forward passes", file=sys.stderr)
            sys.stdout.flush()
    after = in_fresh_process(measure_throughput, args)
    print(f"# throughput after the stages: {after:.1f} images/s ({after / throughput - 1:+.0%}); a large drift means "
          "the machine was shared and the shares above are disturbed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
