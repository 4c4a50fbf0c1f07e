"""Efficiency of each stage: how much of its wall time is the model's forward passes, and its peak memory.

For every stage prints one line

    STAGE forward_share=X.XX peak_rss_mb=M

forward_share = (forward passes the stage ran / the model's throughput) / the stage's wall time,
with the throughput of the fastest model (BatchNorms folded, as every forward-only pass runs it,
unless --no-fold-bn) measured in the stage's own process right before and right after it (their
mean), at the same batch size, precision and memory format (a shared machine's speed drifts over
minutes; the time spent inside forward passes is printed too, which drift does not disturb). 1.00 means the
stage costs no more than its forward passes; the rest is overhead (mask I/O, masking, matmuls,
Python). Abs-CAM Init's unit of work is a gradient pass instead: one forward and one backward
pass down to the layer, which the method needs by definition and no forward-only model can
replace. Its yardstick is bare gradient passes (`abscam.gradient_pass`: the hooked forward, the backward
pass and the channel weights) of the same model and images, timed alternately
with the method (medians of 15 rounds, `abscam_init_rounds`), so its share is the overhead of
everything else (the weights, the upsampling, the min-max) on top of them. Each stage runs in a fresh process (multiprocessing spawn), and its peak
resident memory is reset (Linux /proc/self/clear_refs) right before it starts, so peak_rss_mb
(VmHWM: the interpreter, torch and the model included) is that stage's own.

    python benchmarks/efficiency.py --size 224 224 --n-masks 1000 --images 2   # this CPU
    python benchmarks/efficiency.py --device cuda --n-masks 6000 --precision fp16  # a GPU
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from saliency_bench.console import show_messages
from saliency_bench.commands._options import batch_size_arg
from saliency_bench.runtime.throughput import in_fresh_process, peak_rss_mb, reset_peak_rss, synchronise
from saliency_bench.runtime.tuning import settle_forward_args

STAGES = ("masks", "rise", "abscam-init", "abscam-final", "causal")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--n-masks", type=int, default=1000, help="RISE masks (default 1000)")
    parser.add_argument("--images", type=int, default=2, help="images explained per stage (default 2)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--batch-size", type=batch_size_arg, default="auto",
                        help="images per forward pass, or auto (default): the fastest of 8/16/32/64 on a CPU, 256 on CUDA")
    parser.add_argument("--arch", default="resnet18", help="torchvision classifier, random weights (default resnet18)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--layer", default="layer3", help="Abs-CAM layer (default layer3)")
    parser.add_argument("--maps", type=int, default=14,
                        help="saliency maps per image scored by deletion and insertion (default 14, the study's)")
    parser.add_argument("--mask-kind", default="binary", choices=("binary", "gaussian", "perlin"))
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--memory-format", default="auto", choices=("auto", "contiguous", "channels_last"),
                        help="auto (default): time both and use the faster, as the workflow does")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-fold-bn", dest="fold_bn", action="store_false",
                        help="run the BatchNorms as they are (default: folded, as the workflow)")
    show_messages()  # the package's log lines (e.g. the measured forward settings) on stderr
    return parser.parse_args(argv)


def setup(args):
    """Model and images, identical in every process (seeded), in the chosen memory format."""
    import torch

    from saliency_bench.runtime.allocator import keep_freed_memory
    from saliency_bench.runtime.forward import set_fold_bn, set_memory_format
    from saliency_bench.runtime.models import build_model, resolve_device

    keep_freed_memory()  # as every model job of the command-line interface
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    model = set_fold_bn(build_model(args.arch, args.num_classes).to(device).eval(), args.fold_bn)
    if args.memory_format != "auto":
        set_memory_format(model, args.memory_format)
    images = torch.randn(args.images, 3, *args.size, generator=torch.Generator().manual_seed(1)).to(device)
    return model, images, device


def tuning_model(args):
    return setup(args)[0]


def measure_throughput(args) -> float:
    """Images per second of plain forward passes at the benchmark's batch size, precision and memory format."""
    from saliency_bench.runtime.forward import ModelRunner
    from saliency_bench.runtime.throughput import images_per_second, probe_batch

    model, _, device = setup(args)
    runner = ModelRunner(model, args.batch_size, args.precision)
    return images_per_second(runner, probe_batch(args.batch_size, tuple(args.size), device))


def timed_runner(model, args):
    """A ModelRunner that also adds up the seconds spent in forward passes: the share of the
    stage's wall time that the model took, which a drifting machine speed does not disturb."""
    from saliency_bench.runtime.forward import ModelRunner

    class TimedRunner(ModelRunner):
        forward_seconds = 0.0

        def __call__(self, x):
            synchronise(self.device)
            start = time.perf_counter()
            out = super().__call__(x)
            synchronise(self.device)
            self.forward_seconds += time.perf_counter() - start
            return out

    return TimedRunner(model, args.batch_size, args.precision)


def abscam_init_rounds(model, images, args, rounds: int = 15) -> dict:
    """Abs-CAM Init through the method registry (as `explain` runs it) and bare gradient passes,
    alternating for `rounds` rounds: the median of each, so that a drifting host speed (a call
    takes ~0.1 s) disturbs both alike. Returns the stage's result fields."""
    import statistics

    from saliency_bench.abscam import gradient_pass
    from saliency_bench.explain import compute_maps

    method_seconds, bare_seconds = [], []
    for round_ in range(rounds + 1):
        for seconds, run in ((bare_seconds, lambda: gradient_pass(model, images, args.layer)),
                             (method_seconds, lambda: compute_maps(model, images, "abscam-init", layer=args.layer,
                                                                   batch_size=args.batch_size, precision=args.precision))):
            start = time.perf_counter()
            run()
            if round_:  # round 0 warms up
                seconds.append(time.perf_counter() - start)
    method = statistics.median(method_seconds)
    return {"wall": method * rounds, "forward_passes": len(images) * rounds, "forward_seconds": 0.0,
            "throughput": len(images) / statistics.median(bare_seconds)}


def run_stage(stage: str, args, mask_path: str) -> dict:
    """Runs in a fresh process: wall seconds of the stage, forward passes it ran (and their
    seconds), peak RSS in MB, and the model's throughput measured before and after the stage."""
    from saliency_bench.formats.masks import MaskSet
    from saliency_bench.masks import write_masks
    from saliency_bench.runtime.throughput import images_per_second, probe_batch

    model, images, device = setup(args)
    runner = timed_runner(model, args)
    target = runner.run(images).argmax(1)
    probe = probe_batch(args.batch_size, tuple(args.size), device)
    if stage == "abscam-init":  # its own yardstick, measured alternately with it
        return {**abscam_init_rounds(model, images, args), "peak_rss_mb": peak_rss_mb()}
    before = images_per_second(runner, probe) if stage != "masks" else None
    runner.forward_passes, runner.forward_seconds = 0, 0.0
    reset_peak_rss()  # the stage's own peak, not that of the throughput probe before it
    p = 0.5 if args.mask_kind == "binary" else None
    synchronise(device)
    start = time.perf_counter()
    if stage == "masks":
        write_masks(mask_path, args.mask_kind, args.n_masks, tuple(args.size), p=p, seed=0)
    elif stage == "rise":
        from saliency_bench.rise import rise_saliency

        rise_saliency(model, images, MaskSet(mask_path), p=p, target=target, runner=runner)
    elif stage == "abscam-final":
        from saliency_bench.abscam import abscam_final

        abscam_final(model, images, args.layer, target, runner=runner, precision=args.precision)
    elif stage == "causal":
        import torch

        from saliency_bench.metrics.causal import CurveRequest, causal_curve_sets

        # All maps and both modes of the images in one call: shared first and last points, full batches.
        maps = [torch.rand(len(images), *args.size, generator=torch.Generator().manual_seed(2 + index)).numpy()
                for index in range(args.maps)]
        causal_curve_sets(runner, images, [CurveRequest(saliency, mode, target=target)
                                           for saliency in maps for mode in ("deletion", "insertion")])
    synchronise(device)
    wall = time.perf_counter() - start
    result = {"wall": wall, "forward_passes": runner.forward_passes, "forward_seconds": runner.forward_seconds,
              "peak_rss_mb": peak_rss_mb()}
    if before is not None:
        # The yardstick: the mean of the throughput right before and right after the stage, in
        # the same warm process, so that a machine whose speed drifts (shared host) disturbs it least.
        result["throughput"] = (before + images_per_second(runner, probe)) / 2
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    settle_forward_args(tuning_model, args)
    throughput = in_fresh_process(measure_throughput, args)
    print(f"# {args.arch} {args.size[0]}x{args.size[1]} batch {args.batch_size} {args.precision} on {args.device}: "
          f"{args.memory_format}, BatchNorms {'folded' if args.fold_bn else 'not folded'}: {throughput:.1f} images/s; "
          f"{args.images} images, {args.n_masks} {args.mask_kind} masks", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        mask_path = os.path.join(folder, "masks.h5")
        if "rise" in args.stages and "masks" not in args.stages:
            args.stages = ["masks", *args.stages]  # RISE needs the mask file
        for stage in STAGES:
            if stage not in args.stages:
                continue
            result = in_fresh_process(run_stage, stage, args, mask_path)
            yardstick = result.get("throughput", throughput)
            share = result["forward_passes"] / yardstick / result["wall"]
            print(f"{stage} forward_share={share:.2f} peak_rss_mb={result['peak_rss_mb']:.0f}")
            unit = "gradient passes" if stage == "abscam-init" else "forward passes"
            print(f"#   {stage}: {result['wall']:.2f} s, {result['forward_passes']} {unit} "
                  f"({result['forward_passes'] / result['wall']:.1f}/s; the model alone: {yardstick:.1f}/s)"
                  + (f", {result['forward_seconds'] / result['wall']:.0%} of the wall time inside forward passes"
                     if result["forward_seconds"] else ""), file=sys.stderr)
            sys.stdout.flush()
    after = in_fresh_process(measure_throughput, args)
    print(f"# throughput after the stages: {after:.1f} images/s ({after / throughput - 1:+.0%}); a large drift means "
          "the machine was shared and the shares above are disturbed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
