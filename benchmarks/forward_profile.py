"""Where does an fp32 forward pass spend its time? Each convolution of the model, as the jobs run it.

The model every stage runs (`ModelRunner`: BatchNorms folded, the chosen memory format, freed memory
kept) goes through `--passes` forward passes of one seeded batch. Hooks before and after each
convolution time it inside the pass, so a convolution pays what it pays there: its input cold from
the layer before, its output written over memory the last pass freed. Per convolution it prints the
milliseconds per pass (median of the passes), its share of the pass, its GFLOP/s, and that rate as a
fraction of this machine's channels-last 3x3 convolution rate (`dense_flops_per_second`, the ceiling
that `compare_study.py` uses); then the same convolution alone, called repeatedly on its own input
(hot in the cache, best of three timings). The last lines give the share of the pass that is not a
convolution (ReLU, max-pooling, residual adds, pooling, the classifier) and the model's images/s.

    python benchmarks/forward_profile.py --size 224 224 --batch-size 32
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from saliency_bench.runtime.forward import MEMORY_FORMATS, ModelRunner
from saliency_bench.runtime.models import resolve_device
from saliency_bench.runtime.throughput import (best_seconds_per_call, conv_inputs, dense_flops_per_second,
                                               probe_batch, synchronise, timing_model)


def conv_flops(conv: nn.Conv2d, output_shape: torch.Size) -> float:
    """Multiply-adds (counted as two) of `conv` producing `output_shape`, as torch's FLOP counter counts them."""
    kernel_h, kernel_w = conv.kernel_size
    return 2.0 * output_shape.numel() * (conv.in_channels // conv.groups) * kernel_h * kernel_w


class ConvTimer:
    """Forward hooks that time every Conv2d of a model inside its forward passes and count its FLOPs.
    They keep no tensor, so the passes allocate and free as they do without them. `remove()` takes
    the hooks off."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.device = device
        self.convs = {name: module for name, module in model.named_modules() if isinstance(module, nn.Conv2d)}
        self.seconds: dict[str, list[float]] = {name: [] for name in self.convs}
        self.flops: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self.handles = []
        for name, conv in self.convs.items():
            self.handles.append(conv.register_forward_pre_hook(self._before(name)))
            self.handles.append(conv.register_forward_hook(self._after(name)))

    def _before(self, name: str):
        def hook(_module, _inputs):
            synchronise(self.device)
            self._started[name] = time.perf_counter()
        return hook

    def _after(self, name: str):
        def hook(module, _inputs, output):
            synchronise(self.device)
            self.seconds[name].append(time.perf_counter() - self._started[name])
            self.flops[name] = conv_flops(module, output.shape)
        return hook

    def reset(self) -> None:
        for times in self.seconds.values():
            times.clear()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def profile(runner: ModelRunner, batch: torch.Tensor, passes: int) -> tuple[ConvTimer, float]:
    """The convolutions' timings over `passes` forward passes (after two warm-up passes) and the median
    seconds of a whole pass."""
    timer = ConvTimer(runner.model, runner.device)
    pass_seconds = []
    try:
        for index in range(passes + 2):
            if index == 2:
                timer.reset()
                pass_seconds.clear()
            synchronise(runner.device)
            start = time.perf_counter()
            runner(batch)
            synchronise(runner.device)
            pass_seconds.append(time.perf_counter() - start)
    finally:
        timer.remove()
    return timer, statistics.median(pass_seconds)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--arch", default="resnet18", help="torchvision classifier, random weights (default resnet18)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--memory-format", default="channels_last", choices=MEMORY_FORMATS)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--passes", type=int, default=7, help="timed forward passes (median)")
    parser.add_argument("--seconds", type=float, default=0.6,
                        help="seconds for each convolution alone and for each dense-kernel rate")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    model = timing_model(args.arch, args.num_classes, device, args.memory_format)
    runner = ModelRunner(model, args.batch_size)
    batch = runner.prepare(probe_batch(args.batch_size, tuple(args.size), device))
    ceiling = dense_flops_per_second(device, args.seconds)["conv3x3"]
    timer, pass_seconds = profile(runner, batch, args.passes)
    print(f"# {args.arch}, {args.size[0]}x{args.size[1]}, batch {args.batch_size}, fp32, {args.memory_format}, "
          f"BatchNorms folded, freed memory kept, {torch.get_num_threads()} threads on {device}; "
          f"median of {args.passes} passes; conv3x3 alone: {ceiling / 1e9:.0f} GFLOP/s")
    print(f"{'convolution':24s} {'input':>15s} {'kernel':>7s} {'ms':>7s} {'share':>6s} {'GFLOP/s':>8s} "
          f"{'of_c3x3':>7s} {'alone_ms':>8s} {'alone_GFLOP/s':>13s}")
    conv_seconds = 0.0
    with torch.no_grad():
        for name, conv, x in conv_inputs(runner.model, batch):  # taken after the timed passes
            seconds = statistics.median(timer.seconds[name])
            conv_seconds += seconds
            alone = best_seconds_per_call(lambda: conv(x), device, args.seconds)
            flops = timer.flops[name]
            shape = "x".join(str(d) for d in x.shape[1:])
            kernel = f"{conv.kernel_size[0]}/{conv.stride[0]}"
            print(f"{name:24s} {shape:>15s} {kernel:>7s} {seconds * 1e3:7.2f} {seconds / pass_seconds:6.3f} "
                  f"{flops / seconds / 1e9:8.0f} {flops / seconds / ceiling:7.2f} {alone * 1e3:8.2f} "
                  f"{flops / alone / 1e9:13.0f}")
    total_flops = sum(timer.flops.values())
    print(f"convolutions: {conv_seconds / pass_seconds:.3f} of the pass at {total_flops / conv_seconds / 1e9:.0f} "
          f"GFLOP/s ({total_flops / conv_seconds / ceiling:.2f} of conv3x3); everything else: "
          f"{1 - conv_seconds / pass_seconds:.3f}")
    print(f"model: {pass_seconds * 1e3:.1f} ms per pass, {args.batch_size / pass_seconds:.1f} images/s; at the conv3x3 "
          f"rate {ceiling / (total_flops / args.batch_size):.1f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
