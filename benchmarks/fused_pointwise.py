"""Would fusing ReLU and the residual add into the convolutions make ResNet's fp32 forward faster?

In eager mode every ReLU and every residual add is a pass over the activations of its own. oneDNN can
apply them to a convolution's output before it is written (post-ops), through PyTorch's private ops
`torch.ops.mkldnn._convolution_pointwise` (conv + ReLU) and its `.binary` overload (conv + add +
ReLU), the kernels `torch.compile` uses on the CPU; `_reorder_convolution_weight` prepacks a weight
for a given input shape. The sum is formed in the same order, so the logits should not change at all.

For each batch this times, on the same seeded batch and in alternating rounds (so drift hits all alike):
- eager: the folded channels-last model as `ModelRunner` runs it now;
- fused: every BasicBlock as conv+ReLU and conv+add+ReLU, the stem as conv+ReLU;
- fused+packed: the same with each weight prepacked for its input shape.
It prints the median images/s of each, the ratios to eager, and whether the logits are bit-identical
(exit 1 where they differ by more than float32 round-off). torchvision's BasicBlock ResNets only
(resnet18, resnet34): it is a measurement, not a code path of the package.

    python benchmarks/fused_pointwise.py --size 224 224 --batches 8 32
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from saliency_bench.runtime.forward import ModelRunner
from saliency_bench.runtime.throughput import best_seconds_per_call, conv_inputs, probe_batch, timing_model

ROUND_OFF = 1e-4  # largest logit difference allowed, relative to the logits' largest magnitude


class PointwiseConv:
    """`conv` run by oneDNN with its post-ops: `relu(x)` = ReLU(conv(x)), `plain(x)` = conv(x),
    `add_relu(x, other)` = ReLU(conv(x) + other); `weight` is conv's own or a prepacked copy."""

    def __init__(self, conv: nn.Conv2d, weight: torch.Tensor):
        self.args = (weight, conv.bias, conv.padding, conv.stride, conv.dilation, conv.groups)

    def relu(self, x: torch.Tensor, attr: str = "relu") -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(x, *self.args, attr, [], "")

    def plain(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x, "none")

    def add_relu(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise.binary(x, other, *self.args, "add", None, "relu", [], "")


def fused_forward(model: nn.Module, example: torch.Tensor, prepack: bool):
    """The model's forward with oneDNN post-ops; `model` is the runner's folded channels-last copy."""
    require_basic_blocks(model)
    shapes = {conv: tuple(x.shape) for _, conv, x in conv_inputs(model, example)}

    def weight(conv: nn.Conv2d) -> torch.Tensor:
        if not prepack:
            return conv.weight
        return torch.ops.mkldnn._reorder_convolution_weight(conv.weight.detach(), conv.padding, conv.stride,
                                                            conv.dilation, conv.groups, list(shapes[conv]))

    fused = {conv: PointwiseConv(conv, weight(conv)) for conv in shapes}
    blocks = [block for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for block in layer]

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = model.maxpool(fused[model.conv1].relu(x))
        for block in blocks:
            identity = x if block.downsample is None else fused[block.downsample[0]].plain(x)
            x = fused[block.conv2].add_relu(fused[block.conv1].relu(x), identity)
        return model.fc(torch.flatten(model.avgpool(x), 1))

    return forward


def require_basic_blocks(model: nn.Module) -> None:
    """The fused forward hard-codes torchvision's BasicBlock with its BatchNorms folded away."""
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    ok = blocks and all(isinstance(b.bn1, nn.Identity) and isinstance(b.bn2, nn.Identity) and
                        (b.downsample is None or isinstance(b.downsample[1], nn.Identity)) for b in blocks)
    if not ok or not isinstance(model.bn1, nn.Identity):
        sys.exit("fused_pointwise.py needs a BasicBlock ResNet (resnet18 or resnet34) with its BatchNorms folded")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--batches", type=int, nargs="+", default=(8, 32))
    parser.add_argument("--arch", default="resnet18", choices=("resnet18", "resnet34"))
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds per variant (median)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="seconds per variant and round (the best of three timings of a third each)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    model = timing_model(args.arch, 1000, memory_format="channels_last")
    print(f"# {args.arch}, {args.size[0]}x{args.size[1]}, fp32, BatchNorms folded, channels-last, "
          f"{torch.get_num_threads()} threads; median of {args.rounds} alternating rounds of {args.seconds:g} s "
          "(each the best of three timings)")
    print("batch  eager_img_s  fused_img_s  packed_img_s  fused/eager  packed/eager  logits")
    status = 0
    for batch_size in args.batches:
        runner = ModelRunner(model, batch_size)
        batch = runner.prepare(probe_batch(batch_size, tuple(args.size), torch.device("cpu")))
        variants = {"eager": runner.model, "fused": fused_forward(runner.model, batch, prepack=False),
                    "packed": fused_forward(runner.model, batch, prepack=True)}
        with torch.no_grad():
            reference = runner.model(batch)
            differences = [(forward(batch) - reference).abs().max().item() for forward in variants.values()]
        scale = reference.abs().max().item()
        identical = max(differences) == 0.0
        if max(differences) > ROUND_OFF * scale:
            status = 1
        rates = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, forward in variants.items():
                seconds = best_seconds_per_call(lambda: forward(batch), batch.device, args.seconds)
                rates[name].append(len(batch) / seconds)
        median = {name: statistics.median(values) for name, values in rates.items()}
        print(f"{batch_size:5d}  {median['eager']:11.1f}  {median['fused']:11.1f}  {median['packed']:12.1f}  "
              f"{median['fused'] / median['eager']:10.3f}x  {median['packed'] / median['eager']:11.3f}x  "
              f"{'bit-identical' if identical else f'max diff {max(differences):.2e}'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
