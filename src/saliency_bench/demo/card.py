"""Make the shipped demo model from a `train-demo` checkpoint: fp16 state dict plus its model card.

    python -m saliency_bench.demo.card --data DIR --trained model.pt --train-card model_card.json

DIR is the `demo-data` output the model was trained on. Everything in the card about the
shipped model (accuracy, occlusion drops) is measured on the fp16 file loaded as float32,
exactly as the workflow loads it. Run once by a maintainer; the workflow only reads the result.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import __version__
from ..data import load_images
from ..errors import atomic_path, require
from ..runtime.models import load_model, read_state_dict
from .shipped import CARD_JSON, CARD_MD, CHECKPOINT, file_sha256
from .synth import read_manifest
from .train import ARCH, demo_split, occlusion_check, predict


def export_fp16(trained: str | os.PathLike, out: str | os.PathLike) -> None:
    """The trained state dict with every floating tensor in fp16 (half the size; loads back as float32)."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in read_state_dict(trained).items()}
    with atomic_path(out) as tmp:
        torch.save(state, tmp)


def dataset_sha256(root: str | os.PathLike) -> str:
    """sha256 over the decoded pixels of every image and mask (not the PNG bytes, which vary with zlib) and the manifest."""
    root = Path(root)
    digest = hashlib.sha256(json.dumps(read_manifest(root), sort_keys=True).encode())
    for path in sorted(p for p in root.rglob("*.png") if not p.name.startswith(".")):
        pixels = np.asarray(Image.open(path))
        digest.update(f"{path.relative_to(root).as_posix()} {pixels.shape} {pixels.dtype}\n".encode())
        digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def evaluate_shipped(data: str | os.PathLike, checkpoint: str | os.PathLike, size: int, val_fraction: float,
                     split_seed: int) -> dict:
    """Val accuracy, per-class accuracy and occlusion drops of the checkpoint loaded as float32."""
    split = demo_split(data, val_fraction, split_seed)
    model = load_model(ARCH, len(split.classes), str(checkpoint))
    require(all(p.dtype == torch.float32 for p in model.parameters()), "the fp16 checkpoint did not load as float32")
    labels = np.array([r.label for r in split.val])
    predicted = predict(model, load_images(split.val, (size, size))).argmax(1).numpy()
    occlusion = occlusion_check(model, data, split.val, size=size)
    feature_drop = occlusion.p_original - occlusion.p_feature
    control_drop = occlusion.p_original - occlusion.p_control
    per_class, drops = {}, {}
    for k, name in enumerate(split.classes):
        mine = labels == k
        per_class[name] = float((predicted[mine] == k).mean())
        drops[name] = {"images": int(mine.sum()), "feature_drop": float(feature_drop[mine].mean()),
                       "control_drop": float(np.nanmean(control_drop[mine])),
                       "controls_placed": int((~np.isnan(control_drop[mine])).sum())}
    drops["all"] = {"images": len(labels), "feature_drop": float(feature_drop.mean()),
                    "control_drop": float(np.nanmean(control_drop)), "controls_placed": int((~np.isnan(control_drop)).sum())}
    return {"val_accuracy": float((predicted == labels).mean()), "per_class_accuracy": per_class,
            "val_images": len(labels), "val_image_ids": [r.image_id for r in split.val],
            "occlusion": {"what": "mean drop of p(top-1 class) when the evidence mask, widened by 2 px, is painted with "
                                  "the background, and when the same-shaped region is painted elsewhere (control)",
                          "per_class": drops}}


def build_card(data: Path, trained_card: dict, commands: list[str]) -> dict:
    settings = {k: trained_card[k] for k in ("arch", "image_size", "seed", "epochs", "epochs_completed",
                                             "stopped_by_time_limit", "time_limit_seconds", "val_fraction", "split_seed")}
    require(not trained_card["stopped_by_time_limit"], "training stopped at its time limit; retrain with a larger --time-limit")
    shipped = evaluate_shipped(data, CHECKPOINT, trained_card["image_size"], trained_card["val_fraction"],
                               trained_card["split_seed"])
    return {
        "model": "saliency-bench demo water-flea classifier (shipped)",
        "file": CHECKPOINT.name, "sha256": file_sha256(CHECKPOINT), "size_bytes": CHECKPOINT.stat().st_size,
        "storage": "state dict, floating tensors in fp16; load_model reads it into a float32 resnet18(num_classes=4)",
        "class_names": trained_card["class_names"],
        "commands": commands,
        "data": {"manifest": read_manifest(data), "pixels_sha256": dataset_sha256(data),
                 "image_counts": trained_card["image_counts"]},
        "training": {"settings": settings, "training_seconds": trained_card["training_seconds"],
                     "fp32_val_accuracy": trained_card["val_accuracy"], "history": trained_card["history"],
                     **trained_card["training"], "saliency_bench_version": trained_card["saliency_bench_version"],
                     "torch_version": trained_card["torch_version"]},
        "evaluated_with": {"saliency_bench_version": __version__, "torch_version": torch.__version__},
        **shipped,
    }


def render_markdown(card: dict) -> str:
    settings, occlusion = card["training"]["settings"], card["occlusion"]["per_class"]
    lines = ["# Model card: the shipped demo model", "",
             f"`{card['file']}`: ResNet-18 (`resnet18(num_classes=4)`, trained from scratch) that tells four synthetic "
             "water-flea classes apart by one feature each. The demo workflow uses it with `demo.train: false` (the default).", "",
             f"- sha256: `{card['sha256']}` ({card['size_bytes'] / 1e6:.1f} MB; {card['storage']})",
             f"- trained at {settings['image_size']} px, {settings['epochs_completed']} epochs, seed {settings['seed']}, "
             f"in {card['training']['training_seconds']:.0f} s (a busy shared 2-core machine); torch {card['training']['torch_version']}",
             f"- data: generator version {card['data']['manifest']['version']}, seed {card['data']['manifest']['seed']}, "
             f"{card['data']['manifest']['per_class']} images per class + {card['data']['manifest']['none']} 'none' animals at "
             f"{card['data']['manifest']['size']} px; pixels sha256 `{card['data']['pixels_sha256']}`",
             f"- validation split: val_fraction {settings['val_fraction']}, split_seed {settings['split_seed']} "
             f"({card['val_images']} images; the workflow explains images of this split)", "",
             "## How it was made", "", "```", *card["commands"], "```", "",
             "## Accuracy (fp16 file loaded as float32)", "",
             f"Validation accuracy **{card['val_accuracy']:.3f}** (float32 model before export: "
             f"{card['training']['fp32_val_accuracy']:.3f}).", "",
             "| class | accuracy | val images | p drop, evidence hidden | p drop, same shape elsewhere |",
             "|---|---|---|---|---|"]
    for name in card["class_names"]:
        row = occlusion[name]
        lines.append(f"| {name} | {card['per_class_accuracy'][name]:.3f} | {row['images']} | {row['feature_drop']:.3f} | "
                     f"{row['control_drop']:.3f} |")
    row = occlusion["all"]
    lines += [f"| all | {card['val_accuracy']:.3f} | {row['images']} | {row['feature_drop']:.3f} | {row['control_drop']:.3f} |",
              "", f"Occlusion: {card['occlusion']['what']}. The model uses the evidence, so a saliency map that "
              "points at it is right for the right reason.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m saliency_bench.demo.card", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="the demo-data folder the model was trained on")
    parser.add_argument("--trained", required=True, help="train-demo --out (float32 state dict)")
    parser.add_argument("--train-card", required=True, help="train-demo --card (JSON)")
    parser.add_argument("--command", action="append", default=[], help="a command that made the inputs (repeatable)")
    args = parser.parse_args(argv)
    export_fp16(args.trained, CHECKPOINT)
    card = build_card(args.data, json.loads(Path(args.train_card).read_text()),
                      args.command + ["python -m saliency_bench.demo.card --data DIR --trained model.pt --train-card model_card.json"])
    with atomic_path(CARD_JSON) as tmp:
        tmp.write_text(json.dumps(card, indent=2) + "\n")
    with atomic_path(CARD_MD) as tmp:
        tmp.write_text(render_markdown(card))
    print(f"shipped model {CHECKPOINT} sha256 {card['sha256']}: set SHA256 in shipped.py", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
