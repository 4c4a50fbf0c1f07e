"""Our pipeline against a transcription of the study's code: same model, images, masks and N.

The study side is `study_code.py` beside this script: the original algorithms transcribed step
by step (per-image loops, the unchunked Abs-CAM Final, the scikit-image mask generator, the
CausalMetric step loop), each checked against the golden outputs of the original code.
Our side calls the package: write_masks, compute_maps (RISE streamed from HDF5, Abs-CAM),
causal_curve_sets (all methods and modes in one stream), with --precision and --memory-format,
and the BatchNorms folded into the convolutions for every forward-only pass (--no-fold-bn: not).
Our processes keep freed memory (`runtime.allocator`, as every model job of the command-line
interface); --keep-freed-memory both gives the study's processes the same allocator setting.

The bf16 line: where bf16 is native (CUDA, or a CPU with AVX-512 BF16 / AMX), our side runs every
stage again in bf16 and is compared with the same study run; elsewhere torch emulates bf16 about
8x slower than fp32, so only one bf16 batch runs (to show that it runs) and the line says
"no native bf16 on this CPU; measure elsewhere".

--device cuda runs both sides on the GPU; the study's in-place edit through `.numpy()` cannot
work on CUDA tensors (PROTOCOL.md's known trap), so there its step loop edits a CPU copy and
sends each point to the GPU. Peak GPU memory is reported beside the peak RSS.

Both sides explain the same images with the same masks: by default the study's RISE reads
our mask set (exported to the study's .npy format outside the timing), so that the AUC
difference measures the implementations, not two random mask draws (--own-masks: each
side uses the masks it generated; the mask-generation stage is timed either way).

Every (side, stage) runs in a fresh process (multiprocessing spawn), so its peak RSS
(resource.getrusage ru_maxrss: interpreter, torch, model included) is its own. Printed:
per stage and overall, speed-up = study wall time / ours, memory = our peak / study peak,
the largest difference of any AUC, and whether both sides rank the methods alike.

The machine's limit: every image through the model is counted on both sides (a hook on the model,
which the folded copies keep), and this machine's fastest float32 dense kernel (a matrix product or a
3x3 convolution, the best of timings before and after the stages; `dense_flops_per_second`) with the
model's FLOPs per image gives each side's rate as a share of that limit, and the ceiling: the speed-up
our side would reach if its forward passes ran at that rate and took all of its time (a gradient pass
counts as one forward pass there).

    python benchmarks/compare_study.py --size 224 224 --n-masks 1000 --images 2 --layers layer3 layer4
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from saliency_bench.console import show_messages
from saliency_bench.commands._options import batch_size_arg
from saliency_bench.runtime.throughput import in_fresh_process, native_bf16, peak_rss_mb
from saliency_bench.runtime.tuning import settle_forward_args
from study_code import (StudyCausalMetric, study_abscam_final, study_abscam_init, study_auc, study_generate_masks,
                        study_gkern, study_load_masks, study_rise)

SIDES = ("study", "ours")
IMAGES_THROUGH_MODEL = [0]  # of this process: counted by `count_images`, a forward pre-hook on the model
STAGES = ("masks", "rise", "abscam-init", "abscam-final", "causal")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--n-masks", type=int, default=1000, help="RISE masks N (default 1000; the study: 6000)")
    parser.add_argument("--images", type=int, default=2, help="demo images explained (default 2)")
    parser.add_argument("--layers", nargs="+", default=["layer3", "layer4"], help="Abs-CAM layers (default layer3 layer4)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="our side (the study: fp32)")
    parser.add_argument("--memory-format", default="auto", choices=("auto", "contiguous", "channels_last"),
                        help="our side (the study: contiguous)")
    parser.add_argument("--batch-size", type=batch_size_arg, default="auto",
                        help="our forward batch, or auto (default): the fastest of 8/16/32/64 on a CPU, as the workflow")
    parser.add_argument("--study-batch", type=int, default=100, help="the study's RISE forward batch (gpu_batch, default 100)")
    parser.add_argument("--p", type=float, default=0.5, help="keep probability of the binary masks (default 0.5)")
    parser.add_argument("--s", type=int, default=8, help="mask grid size (default 8)")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--checkpoint", default=None, help="state dict to load (default: random weights from --seed)")
    parser.add_argument("--fc-scale", type=float, default=20.0,
                        help="without a checkpoint: multiply the random fc weights (non-uniform predictions, "
                             "as in the golden recipe; default 20)")
    parser.add_argument("--seed", type=int, default=0, help="model weights and masks (default 0)")
    parser.add_argument("--own-masks", action="store_true", help="the study's RISE uses the study's own masks")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: both sides run there")
    parser.add_argument("--no-bf16-line", dest="bf16_line", action="store_false", help="skip the bf16 line")
    parser.add_argument("--no-fold-bn", dest="fold_bn", action="store_false",
                        help="our side runs the BatchNorms as they are (default: folded, as the workflow)")
    parser.add_argument("--keep-freed-memory", default="ours", choices=("ours", "both", "none"),
                        help="which side's processes keep freed memory (runtime.allocator), as the command-line "
                             "jobs do (default ours; both: the study too, to see what the allocator alone is worth)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write every number to this JSON file")
    show_messages()  # the package's log lines (e.g. the measured forward settings) on stderr
    return parser.parse_args(argv)


# ---- shared setup: the same model and images in every process --------------------------------
def setup(args, side: str):
    import torch

    from saliency_bench.data import preprocess
    from saliency_bench.demo.synth import CLASSES, render_sample
    from saliency_bench.runtime.allocator import keep_freed_memory
    from saliency_bench.runtime.forward import set_fold_bn, set_memory_format
    from saliency_bench.runtime.models import build_model, load_checkpoint, resolve_device
    from PIL import Image

    if args.keep_freed_memory == "both" or (args.keep_freed_memory == "ours" and side != "study"):
        keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build_model(args.arch, args.num_classes)
    model.register_forward_pre_hook(count_images)  # deep copies (the folded model) keep it
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint)
    elif hasattr(model, "fc"):
        with torch.no_grad():
            model.fc.weight.mul_(args.fc_scale)
    device = resolve_device(args.device)
    model = set_fold_bn(model.to(device).eval(), args.fold_bn and side != "study")
    if side != "study" and args.memory_format != "auto":
        set_memory_format(model, args.memory_format)
    render = max(args.size)
    images = torch.stack([preprocess(Image.fromarray(render_sample(0, i % len(CLASSES), i // len(CLASSES), render).image),
                                     tuple(args.size)) for i in range(args.images)])
    return model, images.to(device)


def count_images(_module, inputs) -> None:
    IMAGES_THROUGH_MODEL[0] += len(inputs[0])


def machine_limit(args) -> dict:
    """This machine's float32 dense-kernel rates (GFLOP/s, the stages' thread count) and the model's GFLOP per image."""
    from saliency_bench.runtime.throughput import dense_flops_per_second, forward_flops

    model, images = setup(args, "ours")
    return {"dense_gflops": {kernel: rate / 1e9 for kernel, rate in dense_flops_per_second(images.device).items()},
            "gflop_per_image": forward_flops(model, tuple(args.size)) / 1e9}


def tuning_model(args):
    return setup(args, "ours")[0]  # contiguous until tuned


def method_names(args) -> list[str]:
    return ["rise"] + [f"abscam-init-{layer}" for layer in args.layers] + [f"abscam-final-{layer}" for layer in args.layers]


def run_study_stage(stage: str, args, model, images, folder: Path) -> None:
    import torch
    import torch.nn.functional as F

    out = folder / "study"
    if stage == "masks":
        study_generate_masks(args.n_masks, args.s, args.p, tuple(args.size), args.seed, str(out / "masks.npy"))
    elif stage == "rise":
        masks = study_load_masks(str(out / "masks.npy") if args.own_masks else str(folder / "shared_masks.npy"),
                                 images.device)
        maps = []
        with torch.no_grad():
            for image in images:
                image = image[None]
                c = int(model(image).argmax(dim=1))
                maps.append(study_rise(model, image, masks, args.p, args.study_batch)[c])
        np.save(out / "rise.npy", torch.stack(maps).cpu().numpy())
    elif stage in ("abscam-init", "abscam-final"):
        explain = study_abscam_init if stage == "abscam-init" else study_abscam_final
        for layer in args.layers:
            maps = [explain(model, image[None], layer).detach() for image in images]
            np.save(out / f"{stage}-{layer}.npy", torch.stack(maps).cpu().numpy())
    elif stage == "causal":
        weight = torch.from_numpy(study_gkern()).to(images.device)
        blur = lambda x: F.conv2d(x, weight, padding=weight.shape[-1] // 2)  # noqa: E731 - as in the original
        step = 8 * args.size[1]
        deletion = StudyCausalMetric(model, "del", step, torch.zeros_like)
        insertion = StudyCausalMetric(model, "ins", step, blur)
        result = {}
        for method in method_names(args):
            maps = np.load(out / f"{method}.npy")
            result[method] = {
                "deletion": [study_auc(deletion.single_run(image[None], m)) for image, m in zip(images, maps)],
                "insertion": [study_auc(insertion.single_run(image[None], m)) for image, m in zip(images, maps)]}
        (out / "auc.json").write_text(json.dumps(result))


# ---- our side: the package's API ---------------------------------------------------------------------------
def run_our_stage(stage: str, args, model, images, folder: Path, side: str = "ours") -> None:
    """Our stage; side "ours-bf16" runs it in bf16 on the masks of side "ours". Each stage imports what
    it uses inside its timing, as the study's functions do (h5py only where masks are written or read)."""
    from saliency_bench.explain import compute_maps
    from saliency_bench.runtime.forward import ModelRunner
    from saliency_bench.metrics.causal import CurveRequest, causal_curve_sets
    from saliency_bench.numeric import auc

    out = folder / side
    precision = "bf16" if side == "ours-bf16" else args.precision
    common = dict(batch_size=args.batch_size, precision=precision)
    if stage == "masks":
        from saliency_bench.masks import write_masks

        write_masks(out / "masks.h5", "binary", args.n_masks, tuple(args.size), s=args.s, p=args.p, seed=args.seed)
    elif stage == "rise":
        maps, _, _ = compute_maps(model, images, "rise", masks=folder / "ours" / "masks.h5", p=args.p, **common)
        np.save(out / "rise.npy", maps)
    elif stage == "abscam-init":
        for layer in args.layers:
            np.save(out / f"abscam-init-{layer}.npy", compute_maps(model, images, "abscam-init", layer=layer, **common)[0])
    elif stage == "abscam-final":
        for layer in args.layers:
            np.save(out / f"abscam-final-{layer}.npy", compute_maps(model, images, "abscam-final", layer=layer, **common)[0])
    elif stage == "causal":
        # Every method and both modes in one call: shared first and last points, full batches.
        runner = ModelRunner(model, args.batch_size, precision)
        keys = [(method, mode) for method in method_names(args) for mode in ("deletion", "insertion")]
        requests = [CurveRequest(np.load(out / f"{method}.npy"), mode) for method, mode in keys]
        result = {method: {} for method in method_names(args)}
        for (method, mode), curves in zip(keys, causal_curve_sets(runner, images, requests)):
            result[method][mode] = auc(curves).tolist()
        (out / "auc.json").write_text(json.dumps(result))


def run_stage(side: str, stage: str, args, folder: str) -> dict:
    """In a fresh process: the stage's wall time (setup excluded), the process's peak RSS and on CUDA
    the peak GPU memory allocated by torch."""
    import torch

    from saliency_bench.runtime.throughput import synchronise

    model, images = setup(args, side)
    synchronise(images.device)
    IMAGES_THROUGH_MODEL[0] = 0
    start = time.perf_counter()
    if side == "study":
        run_study_stage(stage, args, model, images, Path(folder))
    else:
        run_our_stage(stage, args, model, images, Path(folder), side)
    synchronise(images.device)
    wall = time.perf_counter() - start
    result = {"wall_s": wall, "peak_rss_mb": peak_rss_mb(), "images": IMAGES_THROUGH_MODEL[0]}
    if images.device.type == "cuda":
        result["gpu_peak_mb"] = torch.cuda.max_memory_allocated(images.device) / 2**20
    return result


def bf16_batch(args) -> dict:
    """One forward batch in bf16 and in fp32 on our side (images/s of each, top-1 agreement): shows that
    bf16 runs where it is emulated, without the minutes a full emulated run would take."""
    from saliency_bench.runtime.forward import ModelRunner
    from saliency_bench.runtime.throughput import capped_images_per_second

    model, images = setup(args, "ours")
    batch = images[:1].expand(args.batch_size, -1, -1, -1).contiguous()
    rates, top1 = {}, {}
    for precision in ("fp32", "bf16"):
        runner = ModelRunner(model, args.batch_size, precision)
        rates[precision] = capped_images_per_second(runner, batch, 2.0)
        top1[precision] = runner(images[:1]).argmax(dim=1).tolist()
    return {"images_per_second": rates, "top1_agrees": top1["fp32"] == top1["bf16"]}


def export_masks(h5_path: str, npy_path: str) -> None:
    """Our mask set in the study's format ((N, 1, H, W) float64 .npy), streamed (untimed)."""
    from saliency_bench.formats.masks import MaskSet

    mask_set = MaskSet(h5_path)
    out = np.lib.format.open_memmap(npy_path, mode="w+", dtype=np.float64, shape=(len(mask_set), 1, *mask_set.size))
    start = 0
    for chunk in mask_set.iter_chunks():
        out[start:start + len(chunk), 0] = chunk.numpy()
        start += len(chunk)
    out.flush()


# ---- the comparison ----------------------------------------------------------------------------------------
def compare_outputs(args, folder: Path, ours: str = "ours") -> dict:
    sides = ("study", ours)
    aucs = {side: json.loads((folder / side / "auc.json").read_text()) for side in sides}
    largest = {"difference": -1.0}
    per_method = {}
    for method in method_names(args):
        worst = 0.0
        for mode in ("deletion", "insertion"):
            study, our = (np.array(aucs[side][method][mode]) for side in sides)
            differences = np.abs(our - study)
            worst = max(worst, float(differences.max()))
            if differences.max() > largest["difference"]:
                image = int(differences.argmax())
                largest = {"difference": float(differences.max()), "method": method, "mode": mode, "image": image}
        study_map, our_map = (np.load(folder / side / f"{method}.npy") for side in sides)
        relative = float(np.abs(our_map - study_map).max() / (np.abs(study_map).max() + 1e-12))
        per_method[method] = {"largest_auc_difference": worst, "map_relative_difference": relative,
                              "tied_pixels": tied_fraction(study_map),
                              **{f"{side}_score": float(np.mean(np.array(aucs[side][method]["insertion"])
                                                                - np.array(aucs[side][method]["deletion"])))
                                 for side in sides}}
    rankings = {side: sorted(per_method, key=lambda m: -per_method[m][f"{side}_score"]) for side in sides}
    return {"largest_auc_difference": largest, "methods": per_method, "rankings": rankings,
            "rankings_identical": rankings["study"] == rankings[ours], "aucs": aucs}


def tied_fraction(maps: np.ndarray) -> float:
    """Mean fraction of a map's pixels whose value another pixel shares: their order differs
    between np.flip(np.argsort) (the study) and our stable order, which moves AUCs by more than
    round-off (e.g. the clamped border bands of an upsampled Abs-CAM map)."""
    flat = maps.reshape(len(maps), -1)
    return float(np.mean([1 - len(np.unique(row)) / len(row) for row in flat]))


def total_wall_s(timings: dict, side: str) -> float:
    """A side's wall time over all stages: the "overall" of every speed-up printed."""
    return sum(timings[side][stage]["wall_s"] for stage in STAGES)


def report(args, timings: dict, comparison: dict) -> None:
    print(f"# {args.arch} ({args.num_classes} classes), {args.size[0]}x{args.size[1]}, {args.images} demo images, "
          f"N={args.n_masks} binary masks p={args.p}, layers {' '.join(args.layers)}; ours: {args.precision} "
          f"{args.memory_format} batch {args.batch_size}, BatchNorms {'folded' if args.fold_bn else 'not folded'}; "
          f"study: fp32 contiguous, RISE batch {args.study_batch}, Abs-CAM Final batch K, metrics batch 1; on {args.device}; "
          f"freed memory kept by: {args.keep_freed_memory}")
    print(f"{'stage':<14}{'study_s':>10}{'ours_s':>10}{'speedup':>9}{'study_mb':>10}{'ours_mb':>9}{'memory':>8}")
    rows = [(stage, timings["study"][stage], timings["ours"][stage]) for stage in STAGES]
    overall = {side: {"wall_s": total_wall_s(timings, side),
                      "peak_rss_mb": max(timings[side][stage]["peak_rss_mb"] for stage in STAGES)} for side in SIDES}
    rows.append(("overall", overall["study"], overall["ours"]))
    for name, study, ours in rows:
        print(f"{name:<14}{study['wall_s']:>10.2f}{ours['wall_s']:>10.2f}{study['wall_s'] / ours['wall_s']:>8.2f}x"
              f"{study['peak_rss_mb']:>10.0f}{ours['peak_rss_mb']:>9.0f}{ours['peak_rss_mb'] / study['peak_rss_mb']:>8.2f}")
    largest = comparison["largest_auc_difference"]
    print(f"largest |AUC difference|: {largest['difference']:.2e} ({largest['method']}, {largest['mode']}, "
          f"image {largest['image']})")
    for method, row in comparison["methods"].items():
        print(f"  {method:<20} AUC diff {row['largest_auc_difference']:.2e}  map rel. diff "
              f"{row['map_relative_difference']:.2e}  tied px {row['tied_pixels']:.1%}  ins-del study {row['study_score']:+.4f} ours {row['ours_score']:+.4f}")
    same = "identical" if comparison["rankings_identical"] else "DIFFERENT"
    print(f"rankings by insertion - deletion: {same}; study {comparison['rankings']['study']}; "
          f"ours {comparison['rankings']['ours']}")
    if any("gpu_peak_mb" in row for row in timings["ours"].values()):
        gpu = {side: max(timings[side][stage].get("gpu_peak_mb", 0.0) for stage in STAGES) for side in SIDES}
        print(f"peak GPU memory: study {gpu['study']:.0f} MB, ours {gpu['ours']:.0f} MB ({gpu['ours'] / max(gpu['study'], 1e-9):.2f})")


def limit_report(timings: dict, limits: list[dict]) -> dict:
    """Each side's forward rate as a share of the machine's fastest dense-kernel rate, and our ceiling (see the
    module's docstring). Stages without forward passes (mask generation) count as measured."""
    rate, kernel = max((gflops, kernel) for limit in limits for kernel, gflops in limit["dense_gflops"].items())
    flop = limits[0]["gflop_per_image"]
    measured = "; ".join(", ".join(f"{name} {gflops:.0f}" for name, gflops in limit["dense_gflops"].items())
                         for limit in limits)
    print(f"machine limit: the fastest float32 dense kernel, {kernel} at {rate:.0f} GFLOP/s (before and after the "
          f"stages: {measured}); the model: {flop:.2f} GFLOP per image, so at most {rate / flop:.1f} images/s")
    print(f"{'stage':<14}{'study_img':>10}{'ours_img':>10}{'study_share':>12}{'ours_share':>11}{'ours_at_limit_s':>16}{'ceiling':>9}")
    at_limit = {}
    for stage in STAGES:
        study, ours = timings["study"][stage], timings["ours"][stage]
        if not ours["images"]:
            at_limit[stage] = ours["wall_s"]
            continue
        at_limit[stage] = ours["images"] * flop / rate
        share = {side: row["images"] * flop / row["wall_s"] / rate for side, row in (("study", study), ("ours", ours))}
        print(f"{stage:<14}{study['images']:>10}{ours['images']:>10}{share['study']:>12.2f}{share['ours']:>11.2f}"
              f"{at_limit[stage]:>16.2f}{study['wall_s'] / at_limit[stage]:>8.2f}x")
    ceiling = total_wall_s(timings, "study") / sum(at_limit.values())
    print(f"{'overall':<14}{'':>10}{'':>10}{'':>12}{'':>11}{sum(at_limit.values()):>16.2f}{ceiling:>8.2f}x")
    return {"dense_gflops": rate, "dense_kernel": kernel, "gflop_per_image": flop, "limits": limits, "ours_at_limit_s": at_limit,
            "ceiling": ceiling}


def bf16_line(args, folder: Path, timings: dict) -> dict:
    """Where bf16 is native: every stage of ours again in bf16, against the same study run. Elsewhere one
    bf16 batch (it runs) and the line says to measure elsewhere."""
    import torch

    device = torch.device(args.device)
    if not native_bf16(device):
        batch = in_fresh_process(bf16_batch, args)
        rates = batch["images_per_second"]
        print(f"bf16: no native bf16 on this CPU; measure elsewhere (one emulated batch ran: {rates['bf16']:.1f} images/s "
              f"against fp32 {rates['fp32']:.1f}; top-1 {'agrees' if batch['top1_agrees'] else 'DIFFERS'})")
        return {"native": False, **batch}
    (folder / "ours-bf16").mkdir(exist_ok=True)
    walls = {"masks": timings["ours"]["masks"]["wall_s"]}  # the masks do not depend on the precision
    for stage in STAGES[1:]:
        walls[stage] = in_fresh_process(run_stage, "ours-bf16", stage, args, str(folder))["wall_s"]
    comparison = compare_outputs(args, folder, "ours-bf16")
    study = total_wall_s(timings, "study")
    largest = comparison["largest_auc_difference"]
    print(f"bf16 (ours): overall {sum(walls.values()):.2f} s, {study / sum(walls.values()):.2f}x the study; largest "
          f"|AUC difference| {largest['difference']:.2e} ({largest['method']}, {largest['mode']}); rankings "
          f"{'identical' if comparison['rankings_identical'] else 'DIFFERENT'}")
    return {"native": True, "wall_s": walls, "largest_auc_difference": largest,
            "rankings_identical": comparison["rankings_identical"]}


def main(argv=None) -> int:
    args = parse_args(argv)
    settle_forward_args(tuning_model, args)
    timings = {side: {} for side in SIDES}
    limits = [in_fresh_process(machine_limit, args)]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for side in SIDES:
            (folder / side).mkdir()
        for stage in STAGES:
            if stage == "rise" and not args.own_masks:
                in_fresh_process(export_masks, str(folder / "ours" / "masks.h5"), str(folder / "shared_masks.npy"))
            for side in SIDES:  # interleaved, so a drift of the machine's speed hits both sides alike
                timings[side][stage] = in_fresh_process(run_stage, side, stage, args, str(folder))
                print(f"#   {stage} {side}: {timings[side][stage]['wall_s']:.2f} s, "
                      f"{timings[side][stage]['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
            if stage == "masks" and not args.own_masks:
                os.remove(folder / "study" / "masks.npy")  # timed and measured; the RISE stages read our masks
        comparison = compare_outputs(args, folder)
        limits.append(in_fresh_process(machine_limit, args))
        report(args, timings, comparison)
        limit = limit_report(timings, limits)
        sys.stdout.flush()
        bf16 = bf16_line(args, folder, timings) if args.bf16_line else None
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "timings": timings, **comparison, "limit": limit, "bf16": bf16},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
