"""Perlin grids for RISE masks: the study's engine (default) and fBm from the `noise` package.

`study` reproduces what the study computed per mask, `PerlinNoise(octaves=frequency, seed=seed)`
from the `perlin-noise` package (version 1.14) evaluated at [i / s, j / s] for every grid cell,
then `g -= g.min(); g /= g.max() + 1e-8` in float32. That package's `octaves` argument is not a
number of octaves: it multiplies the coordinates, so the grid is ONE layer of gradient noise at
`frequency`. Its definition, reproduced here operation by operation in float64:
- coordinates c = (i / s) * frequency per axis; the cell's lattice corners are floor(c) and
  floor(c) + 1 per axis, summed in itertools.product order;
- a corner (a, b) gets the gradient [uniform(-1, 1), uniform(-1, 1)] of Python's `random` after
  `random.seed(seed * max(1, |a + 10 b + 1|))` (distinct corners can share that hash, as there);
- its contribution is fade(1 - |c_a - a|) * fade(1 - |c_b - b|) * (g_a (c_a - a) + g_b (c_b - b))
  with the quintic fade 6t^5 - 15t^4 + 10t^3.
Vectorised over masks and cells; Python's Mersenne Twister runs once per distinct corner seed (a
few dozen per mask), never per cell. tests/test_perlin.py compares it with the real package.

Seeds: the study drew `np.random.randint(10000)` per mask. A seed of 0 makes the package fall back
to `random.randint(1, 10**5)` from Python's global, unseeded stream. We draw that replacement
from our own generator instead, uniformly from [1, 10**5], so the distribution is the package's
and the set stays reproducible; the stored `perlin_seeds` are the effective seeds (never 0), and
`PerlinNoise(octaves=frequency, seed=perlin_seeds[k])` gives grid k exactly.

`fbm` is the former generator: `noise.pnoise2` as octave-summed fBm with a random phase per mask.
"""
from __future__ import annotations

import math
import random

import numpy as np
import torch

ENGINES = ("study", "fbm")
STUDY_SEEDS = 10_000  # the study: np.random.randint(10000) per mask
FALLBACK_SEEDS = (1, 10**5)  # perlin-noise: seed 0 -> random.randint(1, 10**5), both ends included
NORMALISE_EPS = np.float32(1e-8)
# noise.pnoise2 indexes a 512-entry permutation table with (coordinate & 255) + base twice;
# base < 128 and integer coordinates < 128 keep every index inside the table.
FBM_BASES = 128
FBM_MAX_COORDINATE = 128


def draw_study_seeds(n: int, generator: torch.Generator) -> torch.Tensor:
    """n effective per-mask seeds: uniform in [0, 10000), a 0 replaced as described above.
    Always 2n draws, so the stream after them does not depend on how many zeros came up."""
    seeds = torch.randint(0, STUDY_SEEDS, (n,), generator=generator)
    fallback = torch.randint(FALLBACK_SEEDS[0], FALLBACK_SEEDS[1] + 1, (n,), generator=generator)
    return torch.where(seeds == 0, fallback, seeds)


def _fade(t: float) -> float:
    """The package's quintic fade, with the same operations (math.pow) in the same order."""
    return 6 * math.pow(t, 5) - 15 * math.pow(t, 4) + 10 * math.pow(t, 3)


def corner_gradients(seeds: np.ndarray) -> np.ndarray:
    """(..., 2) gradients `[uniform(-1, 1), uniform(-1, 1)]` after `random.seed(seed)`, per seed.
    One Mersenne Twister seeding per distinct seed (Python's own generator: bit-exact)."""
    unique, inverse = np.unique(seeds, return_inverse=True)
    rng = random.Random()

    def draw(seed: int) -> tuple[float, float]:
        rng.seed(seed)
        return rng.random(), rng.random()

    uniforms = np.array([draw(seed) for seed in unique.tolist()], dtype=np.float64).reshape(-1, 2)
    return (-1 + 2 * uniforms)[inverse.reshape(seeds.shape)]  # uniform(a, b) = a + (b - a) * random()


def _axis(s: int, frequency: float):
    """Per axis: the lattice corners used, each cell's two corner positions among them, the
    distances c - corner (s, 2) and the fade weights fade(1 - |c - corner|) (s, 2)."""
    coords = np.arange(s) / s * frequency  # the package: (i / s) * octaves
    low = np.floor(coords).astype(np.int64)
    corners = np.unique(np.concatenate([low, low + 1]))
    position = np.stack([np.searchsorted(corners, low), np.searchsorted(corners, low + 1)], axis=1)
    dist = coords[:, None] - np.stack([low, low + 1], axis=1)
    weight = np.array([[_fade(1 - abs(d)) for d in row] for row in dist.tolist()], dtype=np.float64).reshape(s, 2)
    return corners, position, dist, weight


def study_noise(seeds: np.ndarray, s: int, frequency: float) -> np.ndarray:
    """(n, s, s) float64: PerlinNoise(octaves=frequency, seed=seeds[k])([i / s, j / s])."""
    corners, position, dist, weight = _axis(s, frequency)
    hashes = np.maximum(1, np.abs(corners[:, None] + 10 * corners[None, :] + 1))  # (A, B): corner (a, b)
    gradients = corner_gradients(np.asarray(seeds, dtype=np.int64)[:, None, None] * hashes)  # (n, A, B, 2)
    total = np.zeros((len(seeds), s, s), dtype=np.float64)
    for ka in (0, 1):  # itertools.product order: (low, low), (low, high), (high, low), (high, high)
        for kb in (0, 1):
            g = gradients[:, position[:, ka]][:, :, position[:, kb]]  # (n, s, s, 2)
            dot = g[..., 0] * dist[:, ka][:, None] + g[..., 1] * dist[:, kb][None, :]
            total += (weight[:, ka][:, None] * weight[:, kb][None, :]) * dot
    return total


def study_grids(seeds: torch.Tensor, s: int, frequency: float) -> torch.Tensor:
    """The study's grids: noise in float32, `g -= g.min(); g /= g.max() + 1e-8` per grid."""
    grids = study_noise(seeds.numpy(), s, frequency).astype(np.float32)
    grids -= grids.min(axis=(1, 2), keepdims=True)
    grids /= grids.max(axis=(1, 2), keepdims=True) + NORMALISE_EPS
    return torch.from_numpy(grids)


def fbm_grids(bases: torch.Tensor, phases: torch.Tensor, s: int, frequency: float, octaves: int) -> torch.Tensor:
    """fBm grids sampled at coordinates (i / s) * frequency (+ the mask's phase), min-max
    normalised per grid. The noise package is scalar, so this loops over grid cells (n * s * s
    calls), never over pixels.

    `phase` (default on) adds a random offset in [0, 1)^2 to each mask's coordinates: the
    noise package only takes ~128 safe bases, so without it a set of N = 6000 masks would
    repeat each grid ~47 times.
    """
    from noise import pnoise2

    steps = np.arange(s) / s * frequency
    grids = np.empty((len(bases), s, s), dtype=np.float64)
    for index, (base, (di, dj)) in enumerate(zip(bases.tolist(), phases.tolist())):
        grids[index] = [[pnoise2(u + di, v + dj, octaves=octaves, base=base) for v in steps] for u in steps]
    low = grids.min(axis=(1, 2), keepdims=True)
    span = grids.max(axis=(1, 2), keepdims=True) - low
    # A constant grid (possible only for degenerate settings) becomes all zeros, not NaN.
    grids = np.divide(grids - low, span, out=np.zeros_like(grids), where=span > 0)
    return torch.from_numpy(grids.astype(np.float32))
