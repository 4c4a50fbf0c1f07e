"""Speed of RISE mask generation: the study's Perlin engine against binary masks, and mirrored
(reflect) against clamped upsampling (issue 14: study Perlin <= 2x binary; reflect <= 1.1x clamp).

Times generation in memory (every draw, then rendering in chunks of RENDER_CHUNK, as write_masks
does), not the HDF5 write. Cases run interleaved for --rounds rounds and the minimum per case is
kept, so that load from other processes on a shared machine inflates no case alone.

    python benchmarks/masks_speed.py [--n 6000] [--size 224] [--rounds 3] [--out FILE]
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from saliency_bench.masks import RENDER_CHUNK, plan_masks

CASES = {
    "binary p=0.5, reflect": ("binary", {"p": 0.5, "upsample": "reflect"}),
    "binary p=0.5, clamp": ("binary", {"p": 0.5, "upsample": "clamp"}),
    "perlin study, reflect": ("perlin", {"engine": "study", "upsample": "reflect"}),
    "perlin fbm, reflect": ("perlin", {"engine": "fbm", "upsample": "reflect"}),
}


def generate(kind: str, n: int, size: tuple[int, int], params: dict) -> tuple[float, float]:
    """Seconds to draw the set and to render it, chunk by chunk."""
    start = time.perf_counter()
    plan = plan_masks(kind, n, size, seed=0, **params)
    drawn = time.perf_counter()
    for first in range(0, n, RENDER_CHUNK):
        plan.render(slice(first, first + RENDER_CHUNK))
    return drawn - start, time.perf_counter() - drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args()
    size = (args.size, args.size)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, (kind, params) in CASES.items():
            draw, render = generate(kind, args.n, size, params)
            if name not in best or draw + render < sum(best[name]):
                best[name] = (draw, render)
    total = {name: sum(times) for name, times in best.items()}
    lines = [f"# RISE mask generation, N={args.n} at {args.size}x{args.size}, s=8, min of {args.rounds} interleaved rounds",
             f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
             "| case | draws (s) | render (s) | total (s) |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {draw:.2f} | {render:.2f} | {draw + render:.2f} |" for name, (draw, render) in best.items()]
    lines += ["",
              f"study Perlin / binary (both reflect): {total['perlin study, reflect'] / total['binary p=0.5, reflect']:.2f} (limit 2)",
              f"reflect / clamp (binary, render only): "
              f"{best['binary p=0.5, reflect'][1] / best['binary p=0.5, clamp'][1]:.2f} (limit 1.10)"]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
