"""Saliency maps as numpy arrays: the one min-max scaling that figures and map comparisons use.

Abs-CAM's own scaling (`abscam.min_max`, 1e-8 added to the range) is a step of the study's
method, reproduced as it is, and stays with the method.
"""
from __future__ import annotations

import numpy as np


def minmax(maps: np.ndarray) -> np.ndarray:
    """Each map (the last two axes) scaled to [0, 1], float32; a constant map becomes all zeros
    (it ranks nothing)."""
    maps = np.asarray(maps, dtype=np.float32)
    low = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - low
    return np.divide(maps - low, span, out=np.zeros_like(maps), where=span > 0)
