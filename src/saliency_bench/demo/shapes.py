"""Shapes for the synthetic micrographs: coverage (0..1 per pixel) of ellipses, blobs and strokes,
computed only inside each shape's bounding window, and painting them onto a canvas.

Only IEEE-exact array arithmetic is used here (see synth.py): transcendentals come from Python's
`math` on scalars or short vectors (`exact_exp`), so the pixels do not depend on the CPU.
"""
from __future__ import annotations

import math

import numpy as np


def exact_exp(values: np.ndarray) -> np.ndarray:
    """exp of a short 1-D vector through `math.exp`, which does not vary with numpy's SIMD dispatch."""
    return np.array([math.exp(v) for v in np.asarray(values, dtype=np.float64).tolist()])


def _window(lo_x: float, hi_x: float, lo_y: float, hi_y: float, size: int):
    """Integer pixel window covering [lo, hi] (plus a 1 px rim), clipped to the image."""
    x0, x1 = max(int(np.floor(lo_x)) - 1, 0), min(int(np.ceil(hi_x)) + 2, size)
    y0, y1 = max(int(np.floor(lo_y)) - 1, 0), min(int(np.ceil(hi_y)) + 2, size)
    if x0 >= x1 or y0 >= y1:
        return None
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return (slice(y0, y1), slice(x0, x1)), xs, ys


def _ellipse_distance(xs, ys, centre, axes, angle: float):
    """Approximate signed distance (px) to an ellipse's boundary, and its normalised radius."""
    a, b = axes
    c, s = math.cos(angle), math.sin(angle)
    u = (xs - centre[0]) * c + (ys - centre[1]) * s
    v = -(xs - centre[0]) * s + (ys - centre[1]) * c
    radius = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return (radius - 1.0) * min(a, b), radius


def blob_coverage(size: int, ellipses, ring: float = 0.0, rim_shading: float = 0.0):
    """Anti-aliased coverage of a union of ellipses `(centre, axes, angle)`, or of its outline `ring` px wide.

    `rim_shading` > 0 makes the fill denser towards the rim, like a translucent shell seen edge-on.
    """
    reach = max(max(axes) for _, axes, _ in ellipses) + ring
    lo = np.min([centre for centre, _, _ in ellipses], axis=0) - reach
    hi = np.max([centre for centre, _, _ in ellipses], axis=0) + reach
    found = _window(lo[0], hi[0], lo[1], hi[1], size)
    if found is None:
        return None
    window, xs, ys = found
    distances, radii = zip(*(_ellipse_distance(xs, ys, *e) for e in ellipses))
    dist, radius = np.min(distances, axis=0), np.min(radii, axis=0)
    if ring:
        return window, np.clip(ring / 2 + 0.5 - np.abs(dist), 0, 1)
    cover = np.clip(0.5 - dist, 0, 1)
    if rim_shading:
        squared = np.clip(radius, 0, 1) ** 2  # squared twice: numpy's power(x, 4) differs between SIMD paths
        cover = cover * (1 - rim_shading + rim_shading * squared * squared)
    return window, cover


def ellipse_coverage(size: int, centre, axes, angle: float, ring: float = 0.0):
    """Anti-aliased coverage of a filled ellipse, or of its outline `ring` px wide."""
    return blob_coverage(size, [(centre, axes, angle)], ring)


def stroke_coverage(size: int, points: np.ndarray, widths):
    """Anti-aliased coverage of a polyline whose width tapers linearly between its points."""
    points = np.asarray(points, dtype=np.float32)
    widths = np.broadcast_to(np.asarray(widths, dtype=np.float32), (len(points),))
    reach = widths.max() / 2 + 1
    found = _window(points[:, 0].min() - reach, points[:, 0].max() + reach,
                    points[:, 1].min() - reach, points[:, 1].max() + reach, size)
    if found is None:
        return None
    window, xs, ys = found
    cover = np.zeros_like(xs)
    for (p, q, wp, wq) in zip(points[:-1], points[1:], widths[:-1], widths[1:]):  # a few segments, not pixels
        d = q - p
        length2 = float(d[0]) * float(d[0]) + float(d[1]) * float(d[1])  # not d @ d: BLAS may fuse multiply-adds
        t = np.clip(((xs - p[0]) * d[0] + (ys - p[1]) * d[1]) / max(length2, 1e-6), 0, 1)
        dx, dy = xs - (p[0] + t * d[0]), ys - (p[1] + t * d[1])
        dist = np.sqrt(dx * dx + dy * dy)
        cover = np.maximum(cover, np.clip((wp + t * (wq - wp)) / 2 + 0.5 - dist, 0, 1))
    return window, cover


def paint(canvas: np.ndarray, shape, colour, opacity: float = 1.0, mask: np.ndarray | None = None) -> None:
    """Alpha-blend `colour` into `canvas` through the shape's coverage; optionally mark `mask`."""
    if shape is None:
        return
    window, cover = shape
    alpha = (cover * opacity)[..., None]
    canvas[window] = canvas[window] * (1 - alpha) + np.asarray(colour, dtype=np.float32) * alpha
    if mask is not None:
        mask[window] |= cover >= 0.5


def bezier(p0, p1, p2, n: int = 8) -> np.ndarray:
    """Points along a quadratic Bezier curve (a smooth bend from three control points)."""
    t = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    p0, p1, p2 = (np.asarray(p, dtype=np.float32) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
