"""Statistics behind the summary tables: paired bootstrap CIs, Wilcoxon signed-rank tests, Holm.

Paired bootstrap over images: every resample draws n image indices with replacement once and
applies the same draw to every column (every method, every metric, every difference), so
differences between methods keep their pairing. The resampled mean of a column is a weighted
mean with the draw counts as weights, which turns all resamples of a chunk into one matrix
product (no Python loop over resamples). Missing values (NaN) are left out of the mean of their
own column only. Confidence intervals are percentile intervals.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as scipy_stats

from ..errors import require

# A chunk holds at most this many (resample, image) draw counts, so memory stays bounded
# whatever the number of images (about 16 MB of float64).
_MAX_CELLS_PER_CHUNK = 2_000_000


def bootstrap_means(values: np.ndarray, n_resamples: int = 10_000, seed: int = 0) -> np.ndarray:
    """Means of each column of `values` (n_images, K) over paired bootstrap resamples: (n_resamples, K).

    NaNs are skipped per column; a resample that draws no valid value of a column gives NaN there.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n_images = len(values)
    require(n_images >= 1, "no images to bootstrap; the records are empty")
    require(n_resamples >= 1, f"the number of bootstrap resamples must be at least 1, got {n_resamples}")
    valid = ~np.isnan(values)
    filled = np.where(valid, values, 0.0)
    valid = valid.astype(np.float64)
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CELLS_PER_CHUNK // n_images)
    means = np.empty((n_resamples, values.shape[1]))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        counts = _draw_counts(rng, size, n_images)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[start:start + size] = (counts @ filled) / (counts @ valid)
    return means


def _draw_counts(rng: np.random.Generator, size: int, n_images: int) -> np.ndarray:
    """How often each image is drawn in each of `size` resamples of n_images indices: (size, n_images)."""
    indices = rng.integers(0, n_images, size=(size, n_images))
    offsets = (np.arange(size) * n_images)[:, None]
    return np.bincount((indices + offsets).ravel(), minlength=size * n_images).reshape(size, n_images).astype(np.float64)


def percentile_ci(samples: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Percentile (1 - alpha) interval of each column of bootstrap `samples` (n_resamples, K)."""
    require(0 < alpha < 1, f"alpha must lie in (0, 1), got {alpha}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN bounds
        low, high = np.nanpercentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return low, high


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (scipy); NaN pairs are dropped.

    All differences zero (identical methods) gives p = 1; no pairs at all gives NaN.
    """
    differences = np.asarray(differences, dtype=np.float64)
    differences = differences[~np.isnan(differences)]
    if len(differences) == 0:
        return math.nan
    if not np.any(differences != 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about small samples; has_power reports that
        return float(scipy_stats.wilcoxon(differences).pvalue)


def min_wilcoxon_p(n_pairs: int) -> float:
    """Smallest two-sided p the exact signed-rank test can give with n nonzero pairs: 2 / 2**n."""
    return min(1.0, 2.0 / 2.0 ** n_pairs)


def has_power(n_pairs: int, alpha: float = 0.05, comparisons: int = 1) -> bool:
    """Whether the signed-rank test can reach p < alpha at all with n pairs, after Holm's adjustment
    over `comparisons` tests, which multiplies the smallest p by their number (one test at alpha
    0.05: n >= 6; five: n >= 8)."""
    return comparisons * min_wilcoxon_p(n_pairs) < alpha


def pairs_for_power(alpha: float = 0.05, comparisons: int = 1) -> int:
    """The fewest pairs with which `has_power` holds."""
    n_pairs = 1
    while not has_power(n_pairs, alpha, comparisons):
        n_pairs += 1
    return n_pairs


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values; NaNs stay NaN and are not counted.

    Sorted ascending, the i-th smallest of m p-values becomes max over j <= i of (m - j) * p_(j)
    (i, j from 0), capped at 1. Rejecting adjusted p < alpha controls the family-wise error rate.
    """
    p_values = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p_values, np.nan)
    present = np.flatnonzero(~np.isnan(p_values))
    order = present[np.argsort(p_values[present], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * p_values[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted
