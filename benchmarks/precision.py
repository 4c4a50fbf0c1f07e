"""bf16 against fp32 on a demo-like case: speed-up, largest AUC change, Spearman correlation of the maps.

The case: the demo generator's images (`render_sample`, the images `saliency-bench demo-data`
writes, image i of class i % 4) at --size px, a freshly initialised resnet18 with 4 classes
from a seed whose fc weights are scaled by --fc-scale (the golden recipe, so predictions are
not uniform; or --checkpoint), RISE with N binary masks, Abs-CAM Init and Final at two
layers, deletion and insertion of every map. Each precision runs in a fresh process
(multiprocessing spawn) through the package's API (compute_maps, causal_curves), with the
same masks file; a first forward pass per process warms up before the timing.

Abs-CAM Init is always computed in fp32 (one forward + backward), so its maps agree exactly;
its AUCs still change through the bf16 deletion/insertion passes.

    python benchmarks/precision.py --size 112 --images 8 --n-masks 250 --layers layer2 layer3 \
        --out benchmarks/results/bf16_vs_fp32
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from saliency_bench.console import show_messages
from saliency_bench.runtime.throughput import in_fresh_process

PRECISIONS = ("fp32", "bf16")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=112, help="image size in px (default 112, the demo's)")
    parser.add_argument("--images", type=int, default=8, help="demo images (default 8)")
    parser.add_argument("--n-masks", type=int, default=250, help="RISE binary masks (default 250)")
    parser.add_argument("--p", type=float, default=0.5)
    parser.add_argument("--layers", nargs="+", default=["layer2", "layer3"], help="Abs-CAM layers (default layer2 layer3)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--memory-format", default="contiguous", choices=("contiguous", "channels_last"))
    parser.add_argument("--checkpoint", default=None, help="resnet18 state dict with 4 classes (default: seeded random)")
    parser.add_argument("--fc-scale", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, metavar="STEM", help="write STEM.json and STEM.md")
    parser.add_argument("--note", default=None, help="a line for the report, e.g. how the checkpoint was made")
    show_messages()  # the package's log lines (e.g. the measured forward settings) on stderr
    return parser.parse_args(argv)


def setup(args):
    import torch
    from PIL import Image

    from saliency_bench.data import preprocess
    from saliency_bench.demo.synth import CLASSES, render_sample
    from saliency_bench.runtime.allocator import keep_freed_memory
    from saliency_bench.runtime.forward import set_memory_format
    from saliency_bench.runtime.models import build_model, load_checkpoint

    keep_freed_memory()  # as every model job of the package
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build_model("resnet18", len(CLASSES))
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint)
    else:
        with torch.no_grad():
            model.fc.weight.mul_(args.fc_scale)
    set_memory_format(model.eval(), args.memory_format)
    images = torch.stack([preprocess(Image.fromarray(render_sample(0, i % len(CLASSES), i // len(CLASSES), args.size).image),
                                     (args.size, args.size)) for i in range(args.images)])
    return model, images


def methods(args) -> list[tuple[str, str, dict]]:
    """(method id, compute_maps method, its parameters)."""
    return ([("rise", "rise", {"p": args.p})]
            + [(f"abscam-init-{layer}", "abscam-init", {"layer": layer}) for layer in args.layers]
            + [(f"abscam-final-{layer}", "abscam-final", {"layer": layer}) for layer in args.layers])


def run_precision(precision: str, args, mask_path: str) -> dict:
    """In a fresh process: maps, AUCs and wall times of every method at one precision."""
    from saliency_bench.explain import compute_maps
    from saliency_bench.runtime.forward import ModelRunner
    from saliency_bench.metrics.causal import SharedScores, causal_curves
    from saliency_bench.numeric import auc

    model, images = setup(args)
    runner = ModelRunner(model, args.batch_size, precision)
    runner.run(images)  # warm-up: allocator, kernel selection
    result = {"maps": {}, "auc": {}, "wall_s": {}, "target": None}
    for method_id, method, params in methods(args):
        extra = {"masks": mask_path} if method == "rise" else {}
        start = time.perf_counter()
        maps, target, _ = compute_maps(model, images, method, batch_size=args.batch_size, precision=precision,
                                       **params, **extra)
        result["wall_s"][method_id] = time.perf_counter() - start
        result["maps"][method_id] = maps
        result["target"] = target.tolist()
    shared = SharedScores(images)
    start = time.perf_counter()
    for method_id, maps in result["maps"].items():
        result["auc"][method_id] = {mode: auc(causal_curves(runner, images, maps, mode=mode, shared_scores=shared)).tolist()
                                    for mode in ("deletion", "insertion")}
    result["wall_s"]["deletion+insertion"] = time.perf_counter() - start
    return result


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def compare(args, runs: dict) -> dict:
    fp32, bf16 = runs["fp32"], runs["bf16"]
    stages = {}
    for stage in fp32["wall_s"]:
        stages[stage] = {"fp32_s": fp32["wall_s"][stage], "bf16_s": bf16["wall_s"][stage],
                         "speedup": fp32["wall_s"][stage] / bf16["wall_s"][stage]}
    total = {precision: sum(runs[precision]["wall_s"].values()) for precision in PRECISIONS}
    per_method = {}
    for method_id in fp32["maps"]:
        changes = [np.abs(np.array(bf16["auc"][method_id][mode]) - np.array(fp32["auc"][method_id][mode])).max()
                   for mode in ("deletion", "insertion")]
        rhos = [spearman(a, b) for a, b in zip(fp32["maps"][method_id], bf16["maps"][method_id])]
        scores = {p: float(np.mean(np.array(runs[p]["auc"][method_id]["insertion"])
                                   - np.array(runs[p]["auc"][method_id]["deletion"]))) for p in PRECISIONS}
        per_method[method_id] = {"largest_auc_change": float(max(changes)), "spearman_min": float(min(rhos)),
                                 "spearman_mean": float(np.mean(rhos)), "score_fp32": scores["fp32"],
                                 "score_bf16": scores["bf16"]}
    rankings = {p: sorted(per_method, key=lambda m: -per_method[m][f"score_{p}"]) for p in PRECISIONS}
    return {"speedup_total": total["fp32"] / total["bf16"], "wall_total_s": total, "stages": stages,
            "largest_auc_change": max(row["largest_auc_change"] for row in per_method.values()),
            "spearman_min": min(row["spearman_min"] for row in per_method.values()),
            "methods": per_method, "rankings": rankings, "rankings_identical": rankings["fp32"] == rankings["bf16"],
            "targets_changed": int(sum(a != b for a, b in zip(fp32["target"], bf16["target"])))}


def cpu_description() -> str:
    import torch

    name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()  # AVX-512 BF16 / AMX: bf16 convolutions in hardware
    return (f"{name}, {torch.get_num_threads()} threads, torch {torch.__version__}, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}, native bf16 {'yes' if native else 'no (emulated)'}")


def markdown(args, result: dict, command: str) -> str:
    lines = [
        f"# bf16 against fp32 ({'the demo model' if args.checkpoint else 'a demo-like case'})", "",
        f"Command: `{command}`", "",
        *([args.note, ""] if args.note else []),
        f"Machine: {result['machine']}.", "",
        f"Case: {args.images} demo images at {args.size} px, resnet18 (4 classes, "
        f"{'checkpoint ' + args.checkpoint if args.checkpoint else f'seeded random weights, fc x{args.fc_scale:g}'}), "
        f"{args.memory_format}, batch {args.batch_size}; "
        f"RISE N={args.n_masks} binary p={args.p:g}; Abs-CAM Init/Final at {', '.join(args.layers)}; deletion + insertion.", "",
        f"- **speed-up of bf16 over fp32: {result['speedup_total']:.2f}x** (all stages: "
        f"{result['wall_total_s']['fp32']:.1f} s fp32, {result['wall_total_s']['bf16']:.1f} s bf16)",
        f"- **largest change of any AUC: {result['largest_auc_change']:.4f}**",
        f"- **Spearman correlation of the maps: min {result['spearman_min']:.6f}** over all images and methods",
        f"- explained classes changed by bf16: {result['targets_changed']} of {args.images}; ranking of the methods by "
        f"insertion - deletion {'identical' if result['rankings_identical'] else 'DIFFERENT'}", "",
        "| stage | fp32 s | bf16 s | speed-up |", "|---|---:|---:|---:|",
        *[f"| {stage} | {row['fp32_s']:.2f} | {row['bf16_s']:.2f} | {row['speedup']:.2f}x |" for stage, row in result["stages"].items()],
        "", "| method | largest AUC change | Spearman min | Spearman mean | ins-del fp32 | ins-del bf16 |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {m} | {row['largest_auc_change']:.4f} | {row['spearman_min']:.6f} | {row['spearman_mean']:.6f} | "
          f"{row['score_fp32']:+.4f} | {row['score_bf16']:+.4f} |" for m, row in result["methods"].items()],
        "", "Abs-CAM Init runs in fp32 whatever the precision (one forward + backward), so its maps are identical;",
        "its AUCs change only through the bf16 deletion/insertion passes.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    from saliency_bench.masks import write_masks

    with tempfile.TemporaryDirectory() as folder:
        mask_path = str(Path(folder) / "masks.h5")
        write_masks(mask_path, "binary", args.n_masks, (args.size, args.size), p=args.p, seed=args.seed)
        runs = {}
        for precision in PRECISIONS:
            runs[precision] = in_fresh_process(run_precision, precision, args, mask_path)
            print(f"# {precision}: {sum(runs[precision]['wall_s'].values()):.1f} s", file=sys.stderr, flush=True)
    result = compare(args, runs)
    result["machine"] = cpu_description()
    command = "python benchmarks/precision.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(args, result, command)
    print(text)
    if args.out:
        stem = Path(args.out)
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".json").write_text(json.dumps({"args": vars(args), **result}, indent=1) + "\n")
        stem.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
