"""The numpy definitions several stages share, torch-free so that figure jobs stay light: the one
min-max scaling of maps (figures, map comparisons) and the one AUC of a curve (records, figures,
benchmarks; `metrics` re-exports it).

Abs-CAM's own scaling (`abscam.min_max`, 1e-8 added to the range) is a step of the study's
method, reproduced as it is, and stays with the method.
"""
from __future__ import annotations

import numpy as np

from .errors import require


def minmax(maps: np.ndarray) -> np.ndarray:
    """Each map (the last two axes) scaled to [0, 1], float32; a constant map becomes all zeros
    (it ranks nothing)."""
    maps = np.asarray(maps, dtype=np.float32)
    low = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - low
    return np.divide(maps - low, span, out=np.zeros_like(maps), where=span > 0)


def auc(curves) -> np.ndarray:
    """Trapezoid AUC of each curve (the last axis) with x in [0, 1]: (sum(a) - a[0]/2 - a[n]/2) / n.
    The one AUC of the package: tables, figures and benchmarks all call it."""
    curves = np.asarray(curves, dtype=np.float64)
    require(curves.ndim >= 1 and curves.shape[-1] >= 2, f"a curve needs at least 2 points, got shape {curves.shape}")
    steps = curves.shape[-1] - 1
    return (curves.sum(axis=-1) - curves[..., 0] / 2 - curves[..., -1] / 2) / steps
