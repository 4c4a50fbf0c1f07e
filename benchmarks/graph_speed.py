"""Would CUDA graphs or torch.compile make the model's forward passes faster? (issue 18, the GPU target)

For each image size and batch size this times the forward pass every stage runs (`ModelRunner`:
BatchNorms folded, channels-last, fp32) three ways, on the same seeded batch:
- eager: as the package runs it now;
- graph (CUDA only): the same forward captured once in a CUDA graph and replayed, which removes the
  per-kernel launch cost that dominates small batches and small images on a GPU;
- compile (with --compile): `torch.compile` (inductor) of the same model, with its compile time; on
  CUDA also mode "reduce-overhead" (inductor plus CUDA graphs).
Each variant's largest logit difference from eager is printed; beyond float32 round-off (relative
1e-4 of the logits' scale) the variant counts as wrong and the exit status is 1. A variant is worth
adopting only where it is measurably faster (ratio well above the run-to-run spread).

    python benchmarks/graph_speed.py --device cuda                     # default cases: 224/112/64 px
    python benchmarks/graph_speed.py --device cuda --compile --cases 112:32 64:32
    python benchmarks/graph_speed.py --device cpu --cases 112:32       # eager only: graphs need CUDA
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

import torch

from saliency_bench.runtime.forward import ModelRunner
from saliency_bench.runtime.models import resolve_device
from saliency_bench.runtime.throughput import best_seconds_per_call, probe_batch, synchronise, timing_model

# (image size, batch): the tuned CUDA batch at the study's and the demo's size, then small batches
# and small images, where launch overhead is the largest share.
CUDA_CASES = ("224:256", "112:256", "112:32", "64:32")
CPU_CASES = ("112:32",)
ROUND_OFF = 1e-4  # largest logit difference allowed, relative to the logits' largest magnitude

Forward = Callable[[torch.Tensor], torch.Tensor]


def case_arg(text: str) -> tuple[int, int]:
    """'SIZE:BATCH' -> (size, batch)."""
    try:
        size, batch = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a case is SIZE:BATCH, e.g. 112:32; got {text!r}") from None
    if size < 32 or batch < 1:
        raise argparse.ArgumentTypeError(f"a case needs SIZE >= 32 and BATCH >= 1; got {text!r}")
    return size, batch


def cuda_graph_forward(runner: ModelRunner, example: torch.Tensor) -> Forward:
    """`runner`'s fp32 forward captured in a CUDA graph for inputs shaped like `example` (on the GPU,
    in the runner's memory format): each call copies its input into the graph's input buffer and
    replays the graph. The returned logits live in the graph's output buffer until the next call."""
    static_input = example.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():  # warm-up outside the graph: cuDNN picks its kernels
        for _ in range(3):
            runner.model(static_input)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        static_output = runner.model(static_input)

    def forward(x: torch.Tensor) -> torch.Tensor:
        static_input.copy_(x)
        graph.replay()
        return static_output

    return forward


def compiled_forward(runner: ModelRunner, example: torch.Tensor, mode: str | None) -> tuple[Forward, float]:
    """(`torch.compile` of the runner's model, seconds its first call took, i.e. compiling)."""
    compiled = torch.compile(runner.model, mode=mode)
    started = time.perf_counter()
    with torch.no_grad():
        compiled(example)
    synchronise(example.device)
    return compiled, time.perf_counter() - started


def variants(runner: ModelRunner, batch: torch.Tensor, compile_too: bool) -> dict[str, tuple[Forward, float]]:
    """{name: (forward, seconds spent preparing it)} for this device."""
    found = {"eager": (runner, 0.0)}
    if batch.device.type == "cuda":
        started = time.perf_counter()
        found["graph"] = (cuda_graph_forward(runner, batch), time.perf_counter() - started)
    if compile_too:
        found["compile"] = compiled_forward(runner, batch, None)
        if batch.device.type == "cuda":
            found["compile-graphs"] = compiled_forward(runner, batch, "reduce-overhead")
    return found


def measure_case(model: torch.nn.Module, size: int, batch_size: int, device: torch.device, seconds: float,
                 compile_too: bool) -> list[dict]:
    """`compare` every variant of this device at one image size and batch size."""
    runner = ModelRunner(model, batch_size, "fp32")
    batch = runner.prepare(probe_batch(batch_size, (size, size), device))
    return compare(batch, variants(runner, batch, compile_too), seconds)


def compare(batch: torch.Tensor, forwards: dict[str, tuple[Forward, float]], seconds: float) -> list[dict]:
    """One row per forward, the first being the reference: images/s, ratio to the first, largest logit
    difference from the first's output and whether that is float32 round-off, preparation seconds."""
    rows, reference = [], None
    for name, (forward, prepared_s) in forwards.items():
        with torch.no_grad():
            logits = forward(batch).float().clone()  # clone: a graph's output buffer is overwritten by its next replay
        reference = logits if reference is None else reference
        difference = float((logits - reference).abs().max())
        rate = len(batch) / best_seconds_per_call(lambda: forward(batch), batch.device, seconds)
        rows.append(dict(size=batch.shape[-1], batch=len(batch), variant=name, images_per_s=rate, max_logit_diff=difference,
                         exact=difference <= ROUND_OFF * float(reference.abs().max()), prepare_s=prepared_s))
    for row in rows:
        row["ratio"] = row["images_per_s"] / rows[0]["images_per_s"]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--cases", type=case_arg, nargs="+", default=None, metavar="SIZE:BATCH",
                        help=f"image sizes and batch sizes (default on CUDA {' '.join(CUDA_CASES)}, on a CPU {' '.join(CPU_CASES)})")
    parser.add_argument("--memory-format", default="channels_last", choices=("contiguous", "channels_last"))
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per case and variant (default 3)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile (slow to compile: seconds to minutes per case)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    cases = args.cases or [case_arg(case) for case in (CUDA_CASES if device.type == "cuda" else CPU_CASES)]
    model = timing_model(args.arch, args.num_classes, device, args.memory_format)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{args.arch} ({args.num_classes} classes), fp32, BatchNorms folded, {args.memory_format}, on {name}; "
          f"torch {torch.__version__}")
    if device.type != "cuda":
        print("graph: CUDA graphs need a CUDA device; only eager" + (" and compile" if args.compile else "") + " here")
    print(f"{'size':>5} {'batch':>5}  {'variant':<15} {'images/s':>10} {'ratio':>6} {'max|logit diff|':>16} {'prepare_s':>9}")
    wrong = []
    for size, batch_size in cases:
        for row in measure_case(model, size, batch_size, device, args.seconds, args.compile):
            flag = "" if row["exact"] else "  NOT float32 round-off"
            print(f"{row['size']:>5} {row['batch']:>5}  {row['variant']:<15} {row['images_per_s']:>10.1f} "
                  f"{row['ratio']:>5.2f}x {row['max_logit_diff']:>16.2e} {row['prepare_s']:>9.1f}{flag}", flush=True)
            if not row["exact"]:
                wrong.append(f"{row['variant']} at {size} px, batch {batch_size}")
    if wrong:
        print("outputs differ beyond float32 round-off: " + ", ".join(wrong), file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
