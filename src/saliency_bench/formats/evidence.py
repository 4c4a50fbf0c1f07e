"""Evidence masks: the ground truth of where an image's class evidence is, one binary PNG per image
at `<evidence_root>/<image_id>` (or the same stem with .png); values > 127 are evidence. The
localisation scores (`metrics/localisation.py`) and the ground-truth row (`methods/chance.py`) read
them here, resized to the map's size with nearest neighbour."""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

EVIDENCE_FIX = "add <evidence_root>/<image_id> (a binary PNG, 255 = evidence) or set baselines.evidence: false"


def evidence_path(evidence_root: str | os.PathLike, image_id: str) -> Path | None:
    """The mask of an image: same relative path as the image, or the same stem with .png; None if absent."""
    exact = Path(evidence_root) / image_id
    if exact.is_file():
        return exact
    as_png = exact.with_suffix(".png")
    return as_png if as_png.is_file() else None


def evidence_paths(evidence_root: str | os.PathLike, image_ids: Sequence[str], counted: str = "image(s)") -> list[Path]:
    """Every image's mask, or one UserError: how many have none (`counted` says of what), an example, the fix."""
    paths = [evidence_path(evidence_root, image_id) for image_id in image_ids]
    missing = [image_id for image_id, path in zip(image_ids, paths) if path is None]
    if missing:
        raise UserError(f"no evidence mask for {len(missing)} {counted}, e.g. {missing[0]}, under {evidence_root}; "
                        + EVIDENCE_FIX)
    return paths


@functools.lru_cache(maxsize=512)
def load_evidence_mask(path: str, height: int, width: int) -> np.ndarray:
    """Binary mask (H, W) of an evidence PNG (values > 127 are evidence), resized with nearest neighbour."""
    try:
        with Image.open(path) as image:
            resized = image.convert("L").resize((width, height), Image.Resampling.NEAREST)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UserError(f"cannot read evidence mask {path}: {error}; replace it with a binary PNG (255 = evidence)") from None
    mask = np.asarray(resized) > 127
    mask.setflags(write=False)  # shared by the cache
    return mask
