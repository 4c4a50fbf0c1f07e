"""How much faster could Winograd convolutions make the model's fp32 forward pass on this machine?

Winograd's F(m x m, 3 x 3) computes a 3x3 convolution with (m+2)^2 / (9 m^2) of its multiplications
(F(2,3): 1/2.25, F(4,3): 1/4), exact up to float32 round-off. PyTorch's CPU convolutions (oneDNN) are
direct, so the only way to use it here is eager tensor code: transform the input tiles, one batched
matrix product per tile position, transform back. For every distinct 3x3 stride-1 convolution of the
folded model (channels last, the tuned batch) this times:
- direct: `F.conv2d`, what the model runs now;
- product: the batched matrix products alone (the better of `torch.bmm` and a grouped 1x1 convolution),
  i.e. Winograd with free transforms: a bound no implementation can beat;
- full: the whole Winograd convolution (tile gather, transform products, scatter), and its largest
  error against float64;
- NNPACK: PyTorch's built-in fast-algorithm convolution (Winograd or FFT, its own choice), where the
  build has it.
It then bounds the model: its measured batch time minus, for every such convolution, what the product
alone (or the full version) would save. If even the bound stays small, Winograd is not worth writing.

    python benchmarks/winograd_bound.py --size 224 224
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from saliency_bench.commands._options import batch_size_arg
from saliency_bench.runtime.forward import ModelRunner, set_memory_format
from saliency_bench.runtime.throughput import best_seconds_per_call, images_per_second, probe_batch, timing_model
from saliency_bench.runtime.throughput import conv_inputs as all_conv_inputs
from saliency_bench.runtime.tuning import tune_forward

CPU = torch.device("cpu")

# Lavin & Gray (2016) transforms, interpolation points 0, 1, -1 (F(2,3)) and 0, +-1, +-2 (F(4,3))
TRANSFORMS = {
    2: ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: ([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
         [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
         [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
}


class WinogradConv3x3:
    """A stride-1, padding-1 3x3 convolution as Winograd F(m x m, 3 x 3) in eager tensor code (NHWC inside)."""

    def __init__(self, conv: nn.Conv2d, m: int):
        input_t, kernel_t, output_t = (torch.tensor(a, dtype=torch.float64) for a in TRANSFORMS[m])
        self.m, self.t = m, m + 2
        weight = conv.weight.detach().double()  # (O, C, 3, 3) -> (t*t, C, O)
        kernel = torch.einsum("ik,ockl,jl->ijco", kernel_t, weight, kernel_t)
        self.kernel = kernel.reshape(self.t ** 2, weight.shape[1], weight.shape[0]).float().contiguous()
        self.input_t = torch.kron(input_t, input_t).float()
        self.output_t = torch.kron(output_t, output_t).float()
        self.bias = conv.bias.detach() if conv.bias is not None else torch.zeros(weight.shape[0])

    def tiles(self, x: torch.Tensor) -> tuple[int, int]:
        return -(-x.shape[2] // self.m), -(-x.shape[3] // self.m)

    def transformed_input(self, x: torch.Tensor) -> torch.Tensor:
        """(t*t, tiles, C): the input tiles in the transformed domain."""
        n, c, h, w = x.shape
        rows, cols = self.tiles(x)
        padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, cols * self.m + 1 - w, 1, rows * self.m + 1 - h))
        tiles = padded.unfold(1, self.t, self.m).unfold(2, self.t, self.m)  # N rows cols C t t
        tiles = tiles.permute(4, 5, 0, 1, 2, 3).reshape(self.t ** 2, -1)
        return (self.input_t @ tiles).view(self.t ** 2, n * rows * cols, c)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        rows, cols = self.tiles(x)
        product = torch.bmm(self.transformed_input(x), self.kernel)
        out = (self.output_t @ product.view(self.t ** 2, -1)).view(self.m, self.m, n, rows, cols, -1)
        out = out.permute(2, 3, 0, 4, 1, 5).reshape(n, rows * self.m, cols * self.m, -1)[:, :h, :w]
        return (out + self.bias).permute(0, 3, 1, 2)


def product_seconds(winograd: WinogradConv3x3, x: torch.Tensor, seconds: float) -> float:
    """Seconds of the t*t matrix products alone: the faster of a batched product and a grouped 1x1 convolution."""
    data = winograd.transformed_input(x)
    blocks, tiles, channels = data.shape
    rows, cols = winograd.tiles(x)
    grouped_in = data.view(blocks, x.shape[0], rows, cols, channels).permute(1, 0, 4, 2, 3)
    grouped_in = grouped_in.reshape(x.shape[0], blocks * channels, rows, cols).contiguous(
        memory_format=torch.channels_last)
    grouped_w = winograd.kernel.permute(0, 2, 1).reshape(-1, channels, 1, 1).contiguous()
    candidates = (lambda: torch.bmm(data, winograd.kernel), lambda: F.conv2d(grouped_in, grouped_w, groups=blocks))
    return min(best_seconds_per_call(run, CPU, seconds) for run in candidates)


def conv_inputs(model: nn.Module, batch: torch.Tensor) -> list[tuple[nn.Conv2d, torch.Tensor]]:
    """Every 3x3 stride-1 padding-1 dense convolution of the model with the input it gets."""
    def dense_3x3(conv: nn.Conv2d) -> bool:
        return (conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
                and conv.groups == 1 and conv.dilation == (1, 1))

    return [(conv, x) for _, conv, x in all_conv_inputs(model, batch, dense_3x3)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--batch-size", type=batch_size_arg, default="auto")
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per variant and shape (default 2)")
    args = parser.parse_args(argv)
    model = timing_model(args.arch, args.num_classes)
    settings = tune_forward(model, tuple(args.size), "fp32", args.batch_size, "auto", rounds=1)
    set_memory_format(model, settings.memory_format)
    batch = probe_batch(settings.batch_size, tuple(args.size), CPU)
    runner = ModelRunner(model, settings.batch_size, fold_bn=True)
    model_s = settings.batch_size / images_per_second(runner, batch, 3 * args.seconds)
    convs = conv_inputs(runner.model, batch)
    counts = Counter((tuple(x.shape), conv.out_channels) for conv, x in convs)
    examples = {(tuple(x.shape), conv.out_channels): (conv, x) for conv, x in convs}
    print(f"{args.arch} {args.size[0]}x{args.size[1]} {settings.memory_format} batch {settings.batch_size}, "
          f"{torch.get_num_threads()} threads: folded model {1e3 * model_s:.1f} ms per batch "
          f"({settings.batch_size / model_s:.1f} images/s)")
    print("input shape          out  count  direct_ms  F(m,3)  product_ms  ratio  full_ms  ratio  full_max_rel_err")
    saved = {(m, kind): 0.0 for m in TRANSFORMS for kind in ("product", "full")} | {"NNPACK": 0.0}
    with torch.no_grad():
        for key, count in counts.items():
            conv, x = examples[key]
            reference = F.conv2d(x.double(), conv.weight.double(), conv.bias.double() if conv.bias is not None
                                 else None, padding=1)
            direct = best_seconds_per_call(lambda: conv(x), CPU, args.seconds)
            for m in TRANSFORMS:
                winograd = WinogradConv3x3(conv, m)
                error = float((winograd(x).double() - reference).abs().max() / reference.abs().max())
                product = product_seconds(winograd, x, args.seconds)
                full = best_seconds_per_call(lambda: winograd(x), CPU, args.seconds)
                saved[m, "product"] += count * max(0.0, direct - product)
                saved[m, "full"] += count * max(0.0, direct - full)
                print(f"{str(list(key[0])):20s} {key[1]:4d} {count:6d} {1e3 * direct:10.2f}  F({m},3) "
                      f"{1e3 * product:11.2f} {direct / product:5.2f}x {1e3 * full:8.2f} {direct / full:5.2f}x "
                      f"{error:17.1e}")
            if torch.backends.nnpack.is_available():
                nnpack_x, weight = x.contiguous(), conv.weight.contiguous()
                nnpack_conv = lambda: torch._nnpack_spatial_convolution(nnpack_x, weight, conv.bias, [1, 1], [1, 1])
                nnpack = best_seconds_per_call(nnpack_conv, CPU, args.seconds)
                error = float((nnpack_conv().double() - reference).abs().max() / reference.abs().max())
                saved["NNPACK"] += count * max(0.0, direct - nnpack)
                print(f"{'':32s} NNPACK {1e3 * nnpack:11.2f} {direct / nnpack:5.2f}x {'':15s} {error:17.1e}")
    for m in TRANSFORMS:
        print(f"F({m},3) at every such convolution: the model at most {model_s / (model_s - saved[m, 'product']):.2f}x "
              f"faster with free transforms, {model_s / (model_s - saved[m, 'full']):.2f}x with these transforms "
              f"(each convolution where Winograd is faster, the rest direct)")
    if torch.backends.nnpack.is_available():
        print(f"NNPACK where it is faster: the model {model_s / (model_s - saved['NNPACK']):.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
