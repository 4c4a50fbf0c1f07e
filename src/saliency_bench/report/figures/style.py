"""Shared style of every figure: constants, small helpers, saving and the legibility checks."""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # never open a window, also on machines without a display

import numpy as np  # noqa: E402
from matplotlib import cm, colors, text as mtext  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ...data import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from ...errors import atomic_path  # noqa: E402
from ...numeric import minmax  # noqa: E402

DPI = 110
MIN_FONT_PT = 8.0
MIN_LABEL_GAP_PX = 3  # titles and axis labels closer than this read as one run of text
# The report shows a figure at its pixel size, centred: a taller one loses its top in a 1280x720 window.
MAX_HEIGHT_PX = 650
MAX_HEIGHT_IN = MAX_HEIGHT_PX / DPI
STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8,
         "ytick.labelsize": 8, "legend.fontsize": 8, "figure.titlesize": 10}
SALIENCY_CMAP = "jet"
OVERLAY_ALPHA = 0.5
DIFFERENCE_CMAP = "RdBu_r"


# ---- small helpers ---------------------------------------------------------------------
def unnormalise(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """(3, H, W) normalised tensor/array -> (H, W, 3) RGB in [0, 1] for imshow."""
    array = np.asarray(image, dtype=np.float32)
    rgb = array * np.asarray(std, np.float32)[:, None, None] + np.asarray(mean, np.float32)[:, None, None]
    return np.clip(rgb, 0.0, 1.0).transpose(1, 2, 0)


def new_figure(width: float, height: float) -> Figure:
    # Figure() directly, not pyplot: no global figure registry to leak memory across many figures.
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself: draw() and get_renderer() work without pyplot
    return figure


def image_panel(ax, rgb: np.ndarray, title: str) -> None:
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


def overlay_panel(ax, rgb: np.ndarray, saliency: np.ndarray, title: str) -> None:
    """The image with a min-max normalised map on top (jet, alpha 0.5)."""
    image_panel(ax, rgb, title)
    ax.imshow(minmax(saliency), cmap=SALIENCY_CMAP, alpha=OVERLAY_ALPHA, vmin=0.0, vmax=1.0, interpolation="nearest")


def saliency_colorbar(figure: Figure, axes, label: str, shrink: float = 0.7) -> None:
    # An opaque colour scale: a colorbar of the overlay itself would show the faded alpha-0.5 colours.
    scale = cm.ScalarMappable(colors.Normalize(0.0, 1.0), SALIENCY_CMAP)
    figure.colorbar(scale, ax=axes, shrink=shrink, label=label)


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Save as PNG at `DPI` through `atomic_path`."""
    path = Path(path)
    with atomic_path(path) as tmp, plt.rc_context(STYLE):
        figure.savefig(tmp, format="png", dpi=DPI)
    return path


# ---- legibility checks (used by the tests; cheap enough to run on any figure) ------------
def figure_problems(figure: Figure) -> list[str]:
    """What makes a figure hard to read: unlabelled axes or colorbars, tiny fonts, overlapping titles."""
    problems = []
    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    with plt.rc_context(STYLE):
        figure.canvas.draw()  # lay out, so that text extents are final
    renderer = figure.canvas.get_renderer()
    labels = []
    for index, ax in enumerate(figure.axes):
        if not ax.get_visible():
            continue
        colorbar = getattr(ax, "_colorbar", None)
        if colorbar is not None:
            if not (ax.get_ylabel() or ax.get_xlabel()):
                problems.append(f"colorbar axes #{index} has no label")
        elif ax.axison and not (ax.get_title() or (ax.get_xlabel() and ax.get_ylabel())):
            problems.append(f"axes #{index} has neither a title nor both axis labels")
        for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
            if text.get_text() and text.get_visible():
                labels.append((f"axes #{index} {text.get_text()!r}", text.get_window_extent(renderer)))
    for text in figure.findobj(mtext.Text):
        if text.get_text().strip() and text.get_visible() and text.get_fontsize() < MIN_FONT_PT:
            problems.append(f"text {text.get_text()!r} is {text.get_fontsize():.1f} pt (< {MIN_FONT_PT})")
    for text in figure.texts:  # suptitle, supxlabel, supylabel
        if text.get_text() and text.get_visible():
            labels.append((f"figure {text.get_text()!r}", text.get_window_extent(renderer)))
    half_gap = MIN_LABEL_GAP_PX / 2
    for (name_a, box_a), (name_b, box_b) in itertools.combinations(labels, 2):
        if box_a.padded(half_gap).overlaps(box_b.padded(half_gap)):
            problems.append(f"{name_a} overlaps or touches {name_b}")
    return problems


