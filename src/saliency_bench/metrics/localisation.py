"""Localisation against ground-truth evidence masks: pointing game and energy pointing game.

Evidence masks (`formats/evidence.py`) are binary images at `<evidence_root>/<image_id>` (255 =
evidence), resized to the saliency map's size with nearest neighbour.

- Pointing game: a hit when the saliency maximum lies in the evidence mask dilated by
  15 px at 224 x 224 (scaled to 15 * H / 224 for other heights; a Euclidean disc). When
  several pixels share the maximum (e.g. a constant map), the score is the share of them that
  hit, i.e. the expected hit of a random tie-break, so ties neither help nor hurt. Pixels within
  PEAK_TOLERANCE of the map's range below its maximum share it: upsampled coarse maps (Abs-CAM at
  layer4) have plateaus whose values differ only by float32 round-off, which other CPU kernels
  change, and the score must not depend on that.
- Energy pointing game: the share of the positive saliency that lies inside the undilated mask.

Chance levels, reported next to them: a uniformly random point hits with probability equal to
the dilated mask's area share; a uniform-noise map puts the mask's area share of its energy
inside the mask.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

DILATION_AT_224 = 15.0
PEAK_TOLERANCE = 1e-5  # of max - min: far above float32 round-off (~1e-7), far below any real difference


def dilation_radius(height: int) -> float:
    """Tolerance of the pointing game in pixels: 15 px at H = 224, proportional otherwise."""
    return DILATION_AT_224 * height / 224.0


def dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within Euclidean distance `radius` of the mask (a disc dilation); empty stays empty."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= radius


def pointing_game(saliency: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Hit score of each map in `saliency` (n, H, W) against `region` (n, H, W), tie-aware; NaN if no region."""
    saliency = np.asarray(saliency, dtype=np.float64)
    region = np.asarray(region, dtype=bool)
    top = saliency.max(axis=(1, 2), keepdims=True)
    span = top - saliency.min(axis=(1, 2), keepdims=True)
    peaks = saliency >= top - PEAK_TOLERANCE * span  # all-NaN maps have no peak
    n_peaks = peaks.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        hits = (peaks & region).sum(axis=(1, 2)) / n_peaks
    return np.where(region.any(axis=(1, 2)) & (n_peaks > 0), hits, np.nan)


def energy_pointing_game(saliency: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Share of positive saliency inside `mask`, per map (n,); NaN without positive saliency or mask."""
    positive = np.clip(np.asarray(saliency, dtype=np.float64), 0.0, None)
    mask = np.asarray(mask, dtype=bool)
    total = positive.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (positive * mask).sum(axis=(1, 2)) / total
    return np.where((total > 0) & mask.any(axis=(1, 2)), share, np.nan)


def localise(saliency: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-map localisation scores and chance levels for maps (n, H, W) and evidence masks (n, H, W)."""
    masks = np.asarray(masks, dtype=bool)
    radius = dilation_radius(masks.shape[1])
    dilated = np.stack([dilate(mask, radius) for mask in masks]) if len(masks) else masks
    has_mask = masks.any(axis=(1, 2))
    return {
        "pointing_game": pointing_game(saliency, dilated),
        "energy_pointing_game": energy_pointing_game(saliency, masks),
        "pointing_chance": np.where(has_mask, dilated.mean(axis=(1, 2)), math.nan),
        "energy_chance": np.where(has_mask, masks.mean(axis=(1, 2)), math.nan),
    }
