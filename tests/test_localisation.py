"""Pointing game and energy pointing game on hand-made maps and masks."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from saliency_bench.errors import UserError
from saliency_bench.formats.evidence import evidence_path, load_evidence_mask
from saliency_bench.metrics.localisation import dilate, dilation_radius, energy_pointing_game, localise, pointing_game


def square_mask(size=224, top=100, left=100, side=20):
    mask = np.zeros((size, size), dtype=bool)
    mask[top:top + side, left:left + side] = True
    return mask


def peak_map(row, col, size=224):
    saliency = np.zeros((1, size, size), dtype=np.float32)
    saliency[0, row, col] = 1.0
    return saliency


def test_dilation_radius_scales_with_height():
    assert dilation_radius(224) == 15.0
    assert dilation_radius(448) == 30.0
    assert dilation_radius(112) == 7.5


def test_dilation_is_a_euclidean_disc():
    mask = np.zeros((64, 64), dtype=bool)
    mask[32, 32] = True
    dilated = dilate(mask, 15)
    assert dilated[32, 47] and not dilated[32, 48]           # 15 px along an axis in, 16 out
    assert dilated[41, 44] and not dilated[43, 44]           # sqrt(81+144)=15 in, sqrt(121+144)>15 out
    assert abs(dilated.sum() - np.pi * 15 ** 2) < 40
    assert not dilate(np.zeros((8, 8), dtype=bool), 3).any()


def test_pointing_game_hits_inside_and_within_tolerance_only():
    region = dilate(square_mask(), dilation_radius(224))[None]
    assert pointing_game(peak_map(110, 110), region)[0] == 1.0   # inside the evidence
    assert pointing_game(peak_map(134, 110), region)[0] == 1.0   # 15 px below its last row (119)
    assert pointing_game(peak_map(135, 110), region)[0] == 0.0   # 16 px below
    assert pointing_game(peak_map(10, 10), region)[0] == 0.0


def test_pointing_game_splits_ties_and_scores_constant_maps_at_chance():
    region = dilate(square_mask(), 15)[None]
    two_peaks = peak_map(110, 110)
    two_peaks[0, 10, 10] = 1.0
    assert pointing_game(two_peaks, region)[0] == 0.5
    constant = np.full((1, 224, 224), 0.3)
    assert pointing_game(constant, region)[0] == pytest.approx(region.mean())
    assert np.isnan(pointing_game(peak_map(1, 1), np.zeros((1, 224, 224), dtype=bool))[0])


def test_peaks_that_differ_by_round_off_are_ties():
    """Another CPU's kernels move a plateau's values by float32 round-off; the score must not move."""
    region = dilate(square_mask(), 15)[None]
    plateau = peak_map(110, 110)
    plateau[0, 10, 10] = np.nextafter(np.float32(1.0), np.float32(0.0))  # one ulp below: the same peak
    assert pointing_game(plateau, region)[0] == 0.5
    plateau[0, 10, 10] = 0.999  # a real difference: not a tie
    assert pointing_game(plateau, region)[0] == 1.0


def test_energy_pointing_game_counts_positive_saliency_only():
    mask = square_mask()[None]
    assert energy_pointing_game(mask.astype(float), mask)[0] == 1.0
    half = np.where(mask, 1.0, 0.0)
    half[0, 0:2, 0:200] = 1.0                                  # 400 px outside, 400 inside
    assert energy_pointing_game(half, mask)[0] == pytest.approx(0.5)
    with_negative = np.where(mask, 1.0, -5.0)                  # negative evidence outside is ignored
    assert energy_pointing_game(with_negative, mask)[0] == 1.0
    assert np.isnan(energy_pointing_game(-np.ones((1, 224, 224)), mask)[0])


def test_uniform_noise_scores_near_chance():
    # The `random` baseline: its energy share is the mask's area share and its pointing hit rate
    # is the dilated area share, on average over images.
    rng = np.random.default_rng(0)
    tops, lefts, sides = rng.integers(0, 150, 200), rng.integers(0, 150, 200), rng.integers(20, 70, 200)
    masks = np.stack([square_mask(224, t, l, s) for t, l, s in zip(tops, lefts, sides)])
    noise = rng.uniform(size=masks.shape)
    scores = localise(noise, masks)
    assert np.allclose(scores["energy_pointing_game"], scores["energy_chance"], atol=0.01)
    assert abs(scores["pointing_game"].mean() - scores["pointing_chance"].mean()) < 0.08
    peaked = localise(masks * 1.0 + 1e-4 * noise, masks)       # a map that marks the evidence
    assert peaked["pointing_game"].mean() == 1.0
    assert peaked["energy_pointing_game"].min() > 0.95


def test_evidence_masks_are_read_and_resized_with_nearest_neighbour(tmp_path):
    big = np.zeros((448, 448), dtype=np.uint8)
    big[200:240, 100:180] = 255
    (tmp_path / "cls").mkdir()
    Image.fromarray(big).save(tmp_path / "cls" / "a.png")
    assert evidence_path(tmp_path, "cls/a.png") == tmp_path / "cls" / "a.png"
    assert evidence_path(tmp_path, "cls/a.jpg") == tmp_path / "cls" / "a.png"   # same stem, PNG mask
    assert evidence_path(tmp_path, "cls/b.jpg") is None
    mask = load_evidence_mask(str(tmp_path / "cls" / "a.png"), 224, 224)
    assert mask.dtype == bool and mask.shape == (224, 224)
    assert np.array_equal(mask, big[::2, ::2] > 127)
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(UserError, match="evidence mask"):
        load_evidence_mask(str(tmp_path / "bad.png"), 224, 224)
