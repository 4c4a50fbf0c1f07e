"""Train the demo model (ResNet-18 from scratch, CPU) on the synthetic water fleas, and check it.

The validation images are exactly the workflow's evaluation split (`select_split(n, "val",
...)` over `discover_images(DIR/images)`), so the model card's accuracy is measured on the
images the benchmark explains. The "none" animals join the training set with a uniform
target over the classes, so no class can be learned by elimination (DEMO-NOTES).

Reproducible: weights, shuffling and augmentation draw from `seed` (torch.manual_seed and
one torch.Generator, no loader workers), so a rerun on the same machine and torch build
gives bit-identical weights. Other CPUs or BLAS builds may differ in the last bits.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import binary_dilation

from .. import __version__
from ..data import IMAGENET_MEAN, IMAGENET_STD, discover_images, load_images, preprocess, select_split
from ..errors import UserError, atomic_path, require
from ..formats.image_table import ImageRecord
from ..runtime.models import build_model
from .synth import NONE, read_manifest, render_sample, sample_from_name

log = logging.getLogger(__name__)

ARCH = "resnet18"
BATCH_SIZE = 32
LEARNING_RATE = 2e-3
MAX_ROTATION_DEGREES = 10.0
BRIGHTNESS = (0.85, 1.15)
EVAL_BATCH = 64


@dataclass
class DemoSplit:
    classes: list[str]
    train: list[ImageRecord]
    val: list[ImageRecord]
    none: list[str]  # paths of the "none" animals (training only)


def demo_split(data: str | os.PathLike, val_fraction: float = 0.2, split_seed: int = 42) -> DemoSplit:
    """The workflow's evaluation split of DIR/images, its complement, and DIR/none."""
    data = Path(data)
    records, classes = discover_images(data / "images")
    val = [records[i] for i in select_split(len(records), "val", val_fraction, split_seed)]
    train = [records[i] for i in select_split(len(records), "train", val_fraction, split_seed)]
    none = sorted(str(p) for p in (data / NONE).glob("*.png")) if (data / NONE).is_dir() else []
    return DemoSplit(classes, train, val, none)


# ---- augmentation: whole batches at once, every draw from `generator` -----------------

_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips, small rotations and brightness on a normalised batch."""
    n = x.shape[0]
    flip_x = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    flip_y = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    angle = torch.deg2rad((torch.rand(n, generator=generator) * 2 - 1) * MAX_ROTATION_DEGREES)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * flip_x, -sin * flip_y, torch.zeros(n)], 1),
                         torch.stack([sin * flip_x, cos * flip_y, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # 'border' repeats the bright slide into the corners instead of inventing a dark frame
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    low, high = BRIGHTNESS
    gain = (low + (high - low) * torch.rand(n, generator=generator)).view(n, 1, 1, 1)
    return ((x * _STD + _MEAN) * gain - _MEAN) / _STD


# ---- training ---------------------------------------------------------------------------

@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities, in eval mode, EVAL_BATCH images at a time."""
    model.eval()
    return torch.cat([F.softmax(model(images[i:i + EVAL_BATCH]), dim=1) for i in range(0, len(images), EVAL_BATCH)])


def train_demo_model(data: str | os.PathLike, out: str | os.PathLike, card: str | os.PathLike, size: int = 112,
                     epochs: int = 10, seed: int = 0, val_fraction: float = 0.2, split_seed: int = 42,
                     time_limit: float = 300.0) -> dict:
    """Train ResNet-18 on DIR, write its state dict to `out` and the model card to `card`; return the card."""
    require(epochs >= 1, f"--epochs must be at least 1, got {epochs}")
    require(size >= 32, f"--size must be at least 32, got {size}")
    require(time_limit > 0, f"--time-limit must be positive, got {time_limit}")
    split = demo_split(data, val_fraction, split_seed)
    num_classes = len(split.classes)
    require(num_classes >= 2, f"{data}/images has {num_classes} class folder; the demo needs at least 2")
    require(len(split.train) >= 1, f"no training images left after the {val_fraction:.0%} validation split; generate more images")

    started = time.perf_counter()
    train_x = load_images(split.train + split.none if split.none else split.train, (size, size))
    targets = torch.zeros(len(train_x), num_classes)
    targets[torch.arange(len(split.train)), torch.tensor([r.label for r in split.train])] = 1.0
    targets[len(split.train):] = 1.0 / num_classes  # "none": no class is more likely than another
    val_x = load_images(split.val, (size, size))
    val_y = torch.tensor([r.label for r in split.val])
    log.info(f"train-demo: {len(split.train)} train + {len(split.none)} none, {len(split.val)} val images at {size} px "
             f"(loaded in {time.perf_counter() - started:.1f} s)")

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_model(ARCH, num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    steps_per_epoch = math.ceil(len(train_x) / BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LEARNING_RATE, total_steps=epochs * steps_per_epoch)

    train_start = time.perf_counter()
    history: list[dict] = []
    stopped = False  # by the time limit
    for epoch in range(epochs):
        loss, accuracy, stopped = _train_epoch(model, optimizer, schedule, train_x, targets, generator,
                                               deadline=train_start + time_limit)
        history.append({"epoch": epoch + 1, "loss": loss, "train_accuracy": accuracy,
                        "seconds": time.perf_counter() - train_start})
        log.info(f"train-demo: epoch {epoch + 1}/{epochs} loss {history[-1]['loss']:.3f} "
                 f"train acc {history[-1]['train_accuracy']:.3f} ({history[-1]['seconds']:.0f} s)")
        if stopped:
            log.warning(f"train-demo: WARNING: --time-limit {time_limit:g} s reached during epoch {epoch + 1}; "
                        "stopping early (the model may be under-trained)")
            break
    training_seconds = time.perf_counter() - train_start

    probabilities = predict(model, val_x)
    card_data = _model_card(split, probabilities, val_y, history, settings={
        "arch": ARCH, "image_size": size, "seed": seed, "epochs": epochs, "epochs_completed": len(history),
        "stopped_by_time_limit": stopped, "time_limit_seconds": time_limit, "training_seconds": round(training_seconds, 2),
        "val_fraction": val_fraction, "split_seed": split_seed})
    card_data["data"] = _data_provenance(data)
    with atomic_path(out) as tmp:
        torch.save(model.state_dict(), tmp)
    card_data["checkpoint_sha256"] = hashlib.sha256(Path(out).read_bytes()).hexdigest()
    with atomic_path(card) as tmp:
        tmp.write_text(json.dumps(card_data, indent=2) + "\n")
    log.info(f"train-demo: val accuracy {card_data['val_accuracy']:.3f} after {training_seconds:.0f} s -> {out}, {card}")
    return card_data


def _train_epoch(model, optimizer, schedule, train_x: torch.Tensor, targets: torch.Tensor, generator: torch.Generator,
                 deadline: float) -> tuple[float, float, bool]:
    """One pass over the training images in a seeded order: (mean loss, accuracy on the labelled
    images, whether the deadline (time.perf_counter) stopped it early)."""
    model.train()
    order = torch.randperm(len(train_x), generator=generator)
    loss_sum, correct, labelled = 0.0, 0, 0
    for start in range(0, len(order), BATCH_SIZE):
        batch = order[start:start + BATCH_SIZE]
        if len(batch) < 2:  # BatchNorm cannot train on a single image
            continue
        logits = model(augment(train_x[batch], generator))
        loss = F.cross_entropy(logits, targets[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        loss_sum += loss.item() * len(batch)
        has_label = targets[batch].max(dim=1).values == 1.0
        correct += (logits.argmax(1) == targets[batch].argmax(1))[has_label].sum().item()
        labelled += int(has_label.sum())
        if time.perf_counter() > deadline:
            return loss_sum / len(order), correct / max(labelled, 1), True
    return loss_sum / len(order), correct / max(labelled, 1), False


def _model_card(split: DemoSplit, probabilities: torch.Tensor, val_y: torch.Tensor, history: list[dict],
                settings: dict) -> dict:
    classes = split.classes
    predicted = probabilities.argmax(1)
    confusion = torch.zeros(len(classes), len(classes), dtype=torch.int64)
    confusion.index_put_((val_y, predicted), torch.ones_like(val_y), accumulate=True)
    per_class = {name: (float(confusion[k, k] / confusion[k].sum()) if confusion[k].sum() else None)
                 for k, name in enumerate(classes)}
    return {
        "model": "saliency-bench demo water-flea classifier",
        "saliency_bench_version": __version__,
        "torch_version": torch.__version__,
        **settings,
        "num_classes": len(classes),
        "class_names": classes,
        "val_accuracy": float((predicted == val_y).float().mean()) if len(val_y) else None,
        "per_class_accuracy": per_class,
        "confusion_matrix": {"rows": "true class", "columns": "predicted class", "matrix": confusion.tolist()},
        "accuracy_per_epoch": [h["train_accuracy"] for h in history],
        "history": history,
        "image_counts": {"train": len(split.train), "none": len(split.none), "val": len(split.val)},
        "training": {"optimizer": "Adam", "learning_rate": LEARNING_RATE, "schedule": "one-cycle", "batch_size": BATCH_SIZE,
                     "loss": "soft-target cross-entropy; none animals: uniform target",
                     "augmentation": f"h/v flips, rotation up to {MAX_ROTATION_DEGREES:g} deg, brightness {BRIGHTNESS}",
                     "preprocessing": "saliency_bench.data.preprocess (resize without cropping, ImageNet normalisation)"},
    }


def _data_provenance(data: str | os.PathLike) -> dict:
    try:
        return {"path": str(data), "manifest": read_manifest(data)}
    except (UserError, ValueError):  # a hand-made ImageFolder without demo.json trains fine too
        return {"path": str(data), "manifest": None}


# ---- the occlusion check: does the model use the evidence? ---------------------------

@dataclass
class OcclusionResult:
    image_id: list[str]
    label: np.ndarray  # true class
    target: np.ndarray  # top-1 class of the unperturbed image
    p_original: np.ndarray  # p(target) on the image
    p_feature: np.ndarray  # p(target) with the evidence (dilated) painted with background
    p_control: np.ndarray  # p(target) with the same shape painted elsewhere (NaN if no room)


def _shifted_control(region: np.ndarray, rng: np.random.Generator, tries: int = 200) -> np.ndarray | None:
    """The same-shaped region moved to a random place where it fits and does not touch the original."""
    rows, cols = np.nonzero(region)
    height, width = region.shape
    keep_out = binary_dilation(region, iterations=3)
    for _ in range(tries):
        dy = rng.integers(-rows.min(), height - rows.max())
        dx = rng.integers(-cols.min(), width - cols.max())
        moved = np.zeros_like(region)
        moved[rows + dy, cols + dx] = True
        if not (moved & keep_out).any():
            return moved
    return None


def occlusion_check(model: torch.nn.Module, data: str | os.PathLike, records: list[ImageRecord], size: int = 112,
                    dilate: int = 2, seed: int = 0) -> OcclusionResult:
    """Paint each image's evidence (widened by `dilate` px) with its background, and a control region.

    The background is re-rendered from the data set's seed (demo.json), so the painted pixels
    are exactly what the slide looked like without the animal.
    """
    manifest = read_manifest(data)
    rng = np.random.default_rng(seed)
    originals, features, controls, has_control = [], [], [], []
    for record in records:
        class_index, index = sample_from_name(record.image_id.split("/")[-1])
        sample = render_sample(manifest["seed"], class_index, index, manifest["size"])
        require(np.array_equal(np.asarray(Image.open(record.path).convert("RGB")), sample.image),
                f"{record.path} differs from its re-rendered sample; regenerate the demo data with this version")
        region = binary_dilation(sample.mask, iterations=dilate)
        control = _shifted_control(region, rng)
        has_control.append(control is not None)
        for batch, occluded in ((originals, None), (features, region), (controls, control)):
            image = sample.image.copy()
            if occluded is not None:
                image[occluded] = sample.background[occluded]
            batch.append(preprocess(Image.fromarray(image), (size, size)))
    p_orig, p_feat, p_ctrl = (predict(model, torch.stack(batch)) for batch in (originals, features, controls))
    target = p_orig.argmax(1)
    pick = lambda p: p.gather(1, target[:, None])[:, 0].numpy()  # noqa: E731
    p_control = pick(p_ctrl)
    p_control[~np.array(has_control)] = np.nan
    return OcclusionResult([r.image_id for r in records], np.array([r.label for r in records]), target.numpy(),
                           pick(p_orig), pick(p_feat), p_control)
