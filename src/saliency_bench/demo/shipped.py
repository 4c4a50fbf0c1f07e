"""The shipped demo model: an fp16 state dict inside the package, its model card, and its sha256.

The demo workflow uses this checkpoint instead of training (demo.train: false), so every
machine explains the images with the same weights. `SHA256` is the one place that names the
file's hash; `verified_checkpoint` refuses a file that differs. The model card (JSON and
MODEL_CARD.md, written by `python -m saliency_bench.demo.card`) records how it was made.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from ..errors import UserError, atomic_path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CHECKPOINT = WEIGHTS_DIR / "demo-resnet18-fp16.pt"
CARD_JSON = WEIGHTS_DIR / "demo-resnet18-fp16.json"
CARD_MD = WEIGHTS_DIR / "MODEL_CARD.md"
SHA256 = "f68b5edeeb859d56ea90344f2eca689a7254976e95c9bfe4a3899ab775b2137c"

# The demo settings the shipped model was trained with: the workflow may use it only when the
# config generates the same data and validates on the same split (else its val images were trained on).
DATA_KEYS = ("per_class", "none", "size", "seed")
SPLIT_KEYS = ("val_fraction", "split_seed")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_checkpoint(path: str | os.PathLike = CHECKPOINT, expected: str = SHA256) -> Path:
    """`path` if its sha256 is `expected`; otherwise one line that says what to do."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"the shipped demo model {path} is missing; reinstall saliency-bench, or set demo.train: true to train one")
    actual = file_sha256(path)
    if actual != expected:
        raise UserError(f"the shipped demo model {path} has sha256 {actual[:12]}..., expected {expected[:12]}... "
                        "(corrupt or replaced); reinstall saliency-bench, or set demo.train: true to train one")
    return path


def shipped_card() -> dict:
    if not CARD_JSON.is_file():
        raise UserError(f"the shipped demo model's card {CARD_JSON} is missing; reinstall saliency-bench, "
                        "or set demo.train: true to train a model")
    return json.loads(CARD_JSON.read_text())


def shipped_settings() -> dict:
    """{'demo': {per_class, none, size, seed}, 'data': {val_fraction, split_seed}} of the shipped model."""
    card = shipped_card()
    manifest = card["data"]["manifest"]
    return {"demo": {key: manifest[key] for key in DATA_KEYS},
            "data": {key: card["training"]["settings"][key] for key in SPLIT_KEYS}}


def install_shipped(out: str | os.PathLike, card: str | os.PathLike) -> Path:
    """Copy the verified checkpoint to `out` and its JSON card to `card` (the workflow's results/demo)."""
    source = verified_checkpoint()
    with atomic_path(out) as tmp:
        shutil.copyfile(source, tmp)
        verified_checkpoint(tmp)  # the copy, too: a full disk must not leave a truncated model behind
    with atomic_path(card) as tmp:
        shutil.copyfile(CARD_JSON, tmp)
    return Path(out)
