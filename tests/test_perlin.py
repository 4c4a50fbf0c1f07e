"""The study's Perlin engine against the real `perlin-noise` package (a test dependency)."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from saliency_bench.masks import plan_masks
from saliency_bench.perlin import FALLBACK_SEEDS, STUDY_SEEDS, corner_gradients, draw_study_seeds, study_grids, study_noise

PerlinNoise = pytest.importorskip("perlin_noise").PerlinNoise


def package_grid(seed: int, s: int, frequency: float) -> np.ndarray:
    """The study's code for one mask, with the package: raw values, then float32 min-max."""
    noise = PerlinNoise(octaves=frequency, seed=seed)
    grid = np.zeros((s, s), dtype=np.float32)
    for xi in range(s):
        for yi in range(s):
            grid[xi, yi] = noise([xi / s, yi / s])
    grid -= grid.min()
    grid /= grid.max() + 1e-8
    return grid


@pytest.mark.parametrize("s, frequency", [(8, 5), (8, 2.5), (5, 7), (11, 3), (3, 5)])
def test_study_grids_equal_the_package(s, frequency):
    seeds = torch.from_numpy(np.random.default_rng(s).integers(1, STUDY_SEEDS, 50))
    expected = np.stack([package_grid(int(seed), s, frequency) for seed in seeds])
    ours = study_grids(seeds, s, frequency).numpy()
    assert ours.dtype == np.float32 and ours.shape == (50, s, s)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)


def test_raw_noise_is_the_package_bit_for_bit():
    """Same operations in the same order: the float64 noise values are identical."""
    seeds = np.array([1, 77, 9999, 4242, 100000])
    expected = np.array([[[PerlinNoise(octaves=5, seed=int(seed))([i / 8, j / 8]) for j in range(8)] for i in range(8)]
                         for seed in seeds])
    assert np.array_equal(study_noise(seeds, 8, 5), expected)
    # The lattice lines the study's fixed coordinates sit on: cell (0, 0) is always exactly 0.
    assert (expected[:, 0, 0] == 0).all()


def test_corner_gradients_are_pythons_random():
    seeds = np.array([[3, 123456789], [3, 2**40 + 5]])
    gradients = corner_gradients(seeds)
    for index in np.ndindex(seeds.shape):
        random.seed(int(seeds[index]))
        assert list(gradients[index]) == [random.uniform(-1, 1), random.uniform(-1, 1)]


def test_seed_zero_is_replaced_from_the_generator_in_the_package_fallback_range():
    seeds = draw_study_seeds(200_000, torch.Generator().manual_seed(0))
    assert (seeds != 0).all() and seeds.max() <= FALLBACK_SEEDS[1]
    replaced = seeds[seeds >= STUDY_SEEDS]  # only the replacements of a drawn 0 lie above 9999
    assert 0 < len(replaced) < 60  # about 200000 / 10000 = 20 zeros were drawn
    again = draw_study_seeds(200_000, torch.Generator().manual_seed(0))
    assert torch.equal(seeds, again)  # reproducible, unlike the package's own fallback


def test_stored_seeds_reproduce_every_grid_with_the_package():
    plan = plan_masks("perlin", 60, (24, 24), seed=3)
    assert plan.params == {"engine": "study", "frequency": 5.0}
    assert plan.perlin_seeds.shape == (60,) and (plan.perlin_seeds >= 1).all()
    expected = np.stack([package_grid(int(seed), 8, 5) for seed in plan.perlin_seeds])
    np.testing.assert_allclose(plan.grids.numpy(), expected, rtol=0, atol=1e-6)
    assert len(torch.unique(plan.grids.flatten(1), dim=0)) >= 58  # seeds from [0, 10000): nearly all distinct
