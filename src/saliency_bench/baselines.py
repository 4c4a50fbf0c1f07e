"""Chance maps: what a saliency method must beat.

- "random": uniform noise in [0, 1). Each image draws from its own generator, seeded from
  the configuration's seed and the image's key (its id in the CLI, else its index), so an
  image's map does not depend on how the images are sharded or ordered.
- "centre": a centred isotropic Gaussian, the photographer's-bias prior.
- "evidence": not chance but the ground truth as a map, where evidence masks exist: what a map that
  points at exactly the evidence scores. The signed distance to the evidence's edge orders the
  evidence's core first and the rest by nearness to it (a binary map would leave the order of
  everything outside the evidence to the row-major tie rule).
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import torch

from .errors import UserError, require


def image_seed(seed: int, key: str | int) -> int:
    """A 63-bit seed derived from (seed, key), stable across runs and platforms."""
    digest = hashlib.sha256(f"{int(seed)}:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def random_maps(n: int, size: Sequence[int], seed: int, *, keys: Sequence[str | int] | None = None) -> torch.Tensor:
    """(n, H, W) float32 uniform noise; image i uses the seed derived from (seed, keys[i])."""
    keys = list(range(n)) if keys is None else list(keys)
    require(len(keys) == n, f"random_maps: {len(keys)} keys for {n} images")
    height, width = int(size[0]), int(size[1])
    return torch.stack([torch.rand((height, width), generator=torch.Generator().manual_seed(image_seed(seed, key)))
                        for key in keys]) if n else torch.zeros((0, height, width))


def centre_maps(n: int, size: Sequence[int], sigma_fraction: float = 0.25) -> torch.Tensor:
    """(n, H, W) float32 copies of exp(-r^2 / (2 sigma^2)), sigma = sigma_fraction * min(H, W),
    centred at ((H - 1) / 2, (W - 1) / 2). Symmetric, so it has ties: metrics must order stably."""
    require(sigma_fraction > 0, f"sigma_fraction must be > 0, got {sigma_fraction}")
    height, width = int(size[0]), int(size[1])
    sigma = sigma_fraction * min(height, width)
    rows = (torch.arange(height, dtype=torch.float64) - (height - 1) / 2) ** 2
    cols = (torch.arange(width, dtype=torch.float64) - (width - 1) / 2) ** 2
    prior = torch.exp(-(rows[:, None] + cols[None, :]) / (2 * sigma**2)).float()
    return prior.expand(n, height, width).clone()


def evidence_maps(masks: np.ndarray, keys: Sequence[str] | None = None) -> torch.Tensor:
    """(n, H, W) float32 for boolean evidence masks (n, H, W): inside the evidence, the distance to the
    nearest pixel outside it (>= 1); outside, minus the distance to the nearest evidence pixel. A mask
    that is all evidence gives a constant map; one without evidence is an error naming it by its key
    (its image id; else its index)."""
    from scipy.ndimage import distance_transform_edt

    def depth(mask: np.ndarray) -> np.ndarray:
        # beyond the frame is not evidence: evidence cut by the frame has its core in the visible part
        return distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]

    masks = np.asarray(masks, dtype=bool)
    keys = list(range(len(masks))) if keys is None else list(keys)
    empty = [key for key, mask in zip(keys, masks) if not mask.any()]
    if empty:
        raise UserError(f"the evidence mask of {empty[0]} marks no pixel ({len(empty)} such image(s)); an evidence "
                        "map needs evidence: leave such images out of the data or set baselines.evidence: false")
    # a mask of only evidence has no edge to measure from: every pixel is equally evidence
    maps = [np.ones(mask.shape) if mask.all() else depth(mask) - distance_transform_edt(~mask) for mask in masks]
    return torch.from_numpy(np.stack(maps).astype(np.float32)) if len(maps) else torch.zeros(masks.shape)
