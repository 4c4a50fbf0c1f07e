"""Paired bootstrap, Wilcoxon wrapper and Holm on synthetic data whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from saliency_bench.errors import UserError
from saliency_bench.analysis.stats import (bootstrap_means, has_power, holm, min_wilcoxon_p, pairs_for_power, percentile_ci,
                                  wilcoxon_p)


def test_percentile_ci_covers_the_true_mean_at_about_the_nominal_rate():
    # 400 independent data sets of 60 values each (one per column); the true mean is 0.3.
    rng = np.random.default_rng(1)
    data = rng.normal(0.3, 0.1, size=(60, 400))
    low, high = percentile_ci(bootstrap_means(data, 2000, seed=2), alpha=0.05)
    coverage = np.mean((low <= 0.3) & (0.3 <= high))
    assert 0.90 <= coverage <= 0.99
    assert np.allclose(bootstrap_means(data, 2000, seed=2).mean(axis=0), data.mean(axis=0), atol=0.005)


def test_bootstrap_is_seeded_and_resamples_vary():
    data = np.random.default_rng(0).uniform(size=(30, 3))
    first, again, other = (bootstrap_means(data, 500, seed=s) for s in (7, 7, 8))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == (500, 3) and first.std(axis=0).min() > 0


def test_bootstrap_is_paired_across_columns():
    # Two methods share a large per-image effect and differ by a constant 0.01: their own CIs
    # overlap, but the paired difference is exactly 0.01 in every resample.
    rng = np.random.default_rng(3)
    image_effect = rng.uniform(0, 0.5, size=40)
    a, b = image_effect, image_effect + 0.01
    samples = bootstrap_means(np.column_stack([a, b, b - a]), 1000, seed=0)
    low, high = percentile_ci(samples)
    assert low[1] < high[0]  # individual CIs overlap
    assert np.allclose(samples[:, 2], 0.01)
    assert np.allclose(samples[:, 1] - samples[:, 0], 0.01)


def test_bootstrap_skips_nan_per_column_and_streams_many_images():
    values = np.array([[1.0, np.nan], [3.0, 2.0], [5.0, 4.0]])
    samples = bootstrap_means(values, 300, seed=0)
    assert np.nanmin(samples[:, 1]) >= 2.0 and np.nanmax(samples[:, 1]) <= 4.0
    assert np.isclose(np.nanmean(samples[:, 1]), 3.0, atol=0.1)
    many = np.random.default_rng(0).uniform(size=(5000, 2))  # 5000 images: several chunks of resamples
    big = bootstrap_means(many, 1200, seed=1)
    assert big.shape == (1200, 2) and not np.isnan(big).any()
    assert np.allclose(big.mean(axis=0), many.mean(axis=0), atol=0.002)


def test_bootstrap_rejects_bad_arguments():
    with pytest.raises(UserError):
        bootstrap_means(np.zeros((0, 2)), 10)
    with pytest.raises(UserError):
        bootstrap_means(np.zeros((3, 2)), 0)
    with pytest.raises(UserError):
        percentile_ci(np.zeros((3, 2)), alpha=1.5)


def test_identical_methods_are_indistinguishable():
    a = np.random.default_rng(4).uniform(size=50)
    assert wilcoxon_p(a - a) == 1.0
    low, high = percentile_ci(bootstrap_means(a - a, 500, seed=0))
    assert low[0] == 0.0 == high[0]


def test_a_large_shift_is_significant_and_a_symmetric_one_is_not():
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.05, size=40)
    assert wilcoxon_p(noise + 0.1) < 1e-6
    low, _ = percentile_ci(bootstrap_means(noise + 0.1, 2000, seed=0))
    assert low[0] > 0.05
    symmetric = np.concatenate([noise, -noise])
    assert wilcoxon_p(symmetric) > 0.9


def test_wilcoxon_p_is_scipys_with_nan_pairs_dropped():
    d = np.random.default_rng(6).normal(0.02, 0.1, size=25)
    with_nan = np.concatenate([d, [np.nan, np.nan]])
    assert wilcoxon_p(with_nan) == pytest.approx(scipy_stats.wilcoxon(d).pvalue)
    assert np.isnan(wilcoxon_p(np.array([np.nan])))


def test_power_of_the_signed_rank_test():
    # Five images all in favour of one method: the exact test cannot go below 2/32.
    assert wilcoxon_p(np.array([0.1, 0.2, 0.3, 0.4, 0.5])) == pytest.approx(min_wilcoxon_p(5)) == pytest.approx(0.0625)
    assert not has_power(5, 0.05) and has_power(6, 0.05)
    # Holm multiplies the smallest p by the family's size: 7 pairs reach 0.016 alone, 0.078 among 5 tests
    assert has_power(7, 0.05) and not has_power(7, 0.05, comparisons=5) and has_power(8, 0.05, comparisons=5)
    assert pairs_for_power(0.05) == 6 and pairs_for_power(0.05, comparisons=5) == 8 and pairs_for_power(0.01, 16) == 12


def test_holm_step_down_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone max 0.06
    assert np.allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    adjusted = holm(np.array([np.nan, 0.5, 0.02]))
    assert np.isnan(adjusted[0]) and np.allclose(adjusted[1:], [0.5, 0.04])
    assert np.all(holm(np.array([0.6, 0.7, 0.9])) == 1.0)
    assert holm(np.array([])).size == 0


def test_holm_controls_more_than_raw_p_and_less_than_bonferroni():
    p = np.random.default_rng(7).uniform(0, 0.2, size=8)
    adjusted = holm(p)
    assert np.all(adjusted >= p) and np.all(adjusted <= np.minimum(1, p * len(p)) + 1e-12)
