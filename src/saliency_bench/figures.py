"""All matplotlib figures of the benchmark, built from the stage outputs.

Two layers:
- builders (`masks_figure`, `overview_figure`, `abscam_init_vs_final_figure`,
  `abscam_layers_figure`, `curves_figure`, `mean_curves_figure`, `summary_figure`) take
  arrays / tables and return a `matplotlib.figure.Figure` without saving it, so tests
  can inspect it (`figure_problems`);
- writers (`write_mask_figures`, `write_saliency_figures`, `write_curve_figures`,
  `write_summary_figure`) read the files passed between stages and save PNGs with
  fixed, predictable names (see `docs` of each writer). A writer renders everything into
  a temporary folder first and moves the finished files into place at the end, so a
  failure leaves no half-written figure behind.

Every figure uses the Agg backend, constrained layout, fonts >= 8 pt at the saved
size, a title or axis labels on every axes and a label on every colorbar.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # never open a window, also on machines without a display

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import cm, colors, text as mtext  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from tqdm import tqdm  # noqa: E402

from .data import IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD, ImageRecord, load_images  # noqa: E402
from .errors import UserError, atomic_path, require  # noqa: E402

DPI = 110
MIN_FONT_PT = 8.0
STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8,
         "ytick.labelsize": 8, "legend.fontsize": 8, "figure.titlesize": 10}
SALIENCY_CMAP = "jet"
OVERLAY_ALPHA = 0.5
DIFFERENCE_CMAP = "RdBu_r"
BASELINE_IDS = ("random", "centre")
# Panel order: RISE masks, Abs-CAM init then final, then the chance baselines.
_FAMILY_ORDER = ("rise-binary", "rise-gaussian", "rise-perlin", "rise", "abscam-init", "abscam-final", "abscam")
_ABSCAM_ID = re.compile(r"^abscam-(init|final)-(.+)$")


# ---- small helpers ---------------------------------------------------------------------
def method_sort_key(method_id: str) -> tuple:
    """Order method ids: RISE, Abs-CAM init, Abs-CAM final, other methods, then random, centre."""
    if method_id in BASELINE_IDS:
        return (len(_FAMILY_ORDER) + 1, BASELINE_IDS.index(method_id), method_id)
    for rank, family in enumerate(_FAMILY_ORDER):
        if method_id.startswith(family):
            return (rank, 0, method_id)
    return (len(_FAMILY_ORDER), 0, method_id)


def file_stem(name: str) -> str:
    """A file-name-safe stem for an image id, method id or layer name.

    'class_a/img 01.png' -> 'class_a__img_01': the image extension is dropped, '/' becomes
    '__', anything outside [A-Za-z0-9._-] becomes '_'.
    """
    stem = name
    if stem.lower().endswith(IMAGE_EXTENSIONS):
        stem = stem.rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem.replace("/", "__"))
    return stem.strip(".") or "_"


def unique_stems(names: Sequence[str]) -> dict[str, str]:
    """`file_stem` of each name; two names with the same stem would overwrite each other's figures."""
    stems: dict[str, str] = {}
    owner: dict[str, str] = {}
    for name in names:
        stem = file_stem(name)
        require(owner.setdefault(stem, name) == name,
                f"ids {owner[stem]!r} and {name!r} give the same figure file name {stem!r}; rename one of them")
        stems[name] = stem
    return stems


def unnormalise(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """(3, H, W) normalised tensor/array -> (H, W, 3) RGB in [0, 1] for imshow."""
    array = np.asarray(image, dtype=np.float32)
    rgb = array * np.asarray(std, np.float32)[:, None, None] + np.asarray(mean, np.float32)[:, None, None]
    return np.clip(rgb, 0.0, 1.0).transpose(1, 2, 0)


def minmax(saliency: np.ndarray) -> np.ndarray:
    """Scale a map to [0, 1]; a constant map becomes all zeros (it ranks nothing)."""
    saliency = np.asarray(saliency, dtype=np.float32)
    low, high = float(saliency.min()), float(saliency.max())
    return (saliency - low) / (high - low) if high > low else np.zeros_like(saliency)


def curve_auc(curve: np.ndarray) -> np.ndarray:
    """Trapezoid AUC with x in [0, 1], over the last axis (the protocol's definition)."""
    curve = np.asarray(curve, dtype=np.float64)
    steps = curve.shape[-1] - 1
    return (curve.sum(-1) - curve[..., 0] / 2 - curve[..., -1] / 2) / steps


def _new_figure(width: float, height: float) -> Figure:
    # Figure() directly, not pyplot: no global figure registry to leak memory across many figures.
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself: draw() and get_renderer() work without pyplot
    return figure


def _image_panel(ax, rgb: np.ndarray, title: str) -> None:
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


def _overlay_panel(ax, rgb: np.ndarray, saliency: np.ndarray, title: str) -> None:
    """The image with a min-max normalised map on top (jet, alpha 0.5)."""
    _image_panel(ax, rgb, title)
    ax.imshow(minmax(saliency), cmap=SALIENCY_CMAP, alpha=OVERLAY_ALPHA, vmin=0.0, vmax=1.0, interpolation="nearest")


def _saliency_colorbar(figure: Figure, axes, label: str, shrink: float = 0.7) -> None:
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
    for (name_a, box_a), (name_b, box_b) in itertools.combinations(labels, 2):
        if box_a.overlaps(box_b):
            problems.append(f"{name_a} overlaps {name_b}")
    return problems


# ---- builders --------------------------------------------------------------------------
def masks_figure(masks: np.ndarray, image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, title: str = "") -> Figure:
    """"Mask #i" beside "Masked image #i" for each mask; `image` is the normalised (3, H, W) input.

    The masked image is `image * mask` in the normalised space, as the model sees it: a
    pixel multiplied by 0 shows the data set's mean colour.
    """
    masks = np.asarray(masks, dtype=np.float32)
    count = len(masks)
    pairs_per_row = 2 if count > 1 else 1
    rows = -(-count // pairs_per_row)
    with plt.rc_context(STYLE):
        figure = _new_figure(2.3 * 2 * pairs_per_row + 0.8, 2.3 * rows + (0.4 if title else 0.1))
        axes = np.atleast_2d(figure.subplots(rows, 2 * pairs_per_row, squeeze=False))
        artist = None
        for index in range(rows * pairs_per_row):
            mask_ax, image_ax = axes[index // pairs_per_row, 2 * (index % pairs_per_row): 2 * (index % pairs_per_row) + 2]
            if index >= count:
                mask_ax.set_visible(False)
                image_ax.set_visible(False)
                continue
            artist = mask_ax.imshow(masks[index], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            mask_ax.set_title(f"Mask #{index + 1}")
            mask_ax.set_xticks([])
            mask_ax.set_yticks([])
            _image_panel(image_ax, unnormalise(np.asarray(image) * masks[index], mean, std), f"Masked image #{index + 1}")
        figure.colorbar(artist, ax=axes.ravel().tolist(), shrink=0.8, label="mask value (0 = mean colour, 1 = kept)")
        if title:
            figure.suptitle(title)
    return figure


def overview_figure(rgb: np.ndarray, maps: Mapping[str, np.ndarray], top1_prob: float, class_name: str,
                    columns: int = 4) -> Figure:
    """The image ("83.5% class-name") and each configuration's map overlaid on it, one panel each."""
    method_ids = sorted(maps, key=method_sort_key)
    panels = 1 + len(method_ids)
    columns = max(1, min(columns, panels))
    rows = -(-panels // columns)
    with plt.rc_context(STYLE):
        figure = _new_figure(2.4 * columns + 0.9, 2.45 * rows)
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        _image_panel(axes[0], rgb, f"{100 * top1_prob:.1f}% {class_name}")
        for ax, method_id in zip(axes[1:], method_ids):
            _overlay_panel(ax, rgb, maps[method_id], method_id)
        for ax in axes[panels:]:
            ax.set_visible(False)
        if method_ids:
            _saliency_colorbar(figure, axes.tolist(), "saliency (min-max scaled per map)", shrink=min(0.6, 0.25 * rows + 0.1))
    return figure


def abscam_init_vs_final_figure(rgb: np.ndarray, init: np.ndarray, final: np.ndarray, layer: str) -> Figure:
    """Init, Final (each scaled to [0, 1]) and Final - Init on a diverging colormap centred at 0."""
    init01, final01 = minmax(init), minmax(final)
    difference = final01 - init01
    limit = max(float(np.abs(difference).max()), 1e-6)  # symmetric limits keep 0 at the colormap's centre
    with plt.rc_context(STYLE):
        figure = _new_figure(9.6, 3.3)
        axes = figure.subplots(1, 3)
        _overlay_panel(axes[0], rgb, init01, f"Init ({layer})")
        _overlay_panel(axes[1], rgb, final01, f"Final ({layer})")
        _saliency_colorbar(figure, axes[:2].tolist(), "saliency (scaled to [0, 1])", shrink=0.85)
        shown = axes[2].imshow(difference, cmap=DIFFERENCE_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
        axes[2].set_title("Final \u2212 Init")
        axes[2].set_xticks([])
        axes[2].set_yticks([])
        figure.colorbar(shown, ax=axes[2], shrink=0.85, label="difference (red: Final higher)")
    return figure


def abscam_layers_figure(rgb: np.ndarray, init: Mapping[str, np.ndarray], final: Mapping[str, np.ndarray]) -> Figure:
    """Init (top row) and Final (bottom row) for each layer, columns in layer order."""
    layers = sorted(set(init) | set(final), key=_natural_key)
    with plt.rc_context(STYLE):
        figure = _new_figure(2.3 * len(layers) + 0.9, 4.9)
        axes = figure.subplots(2, len(layers), squeeze=False)
        for column, layer in enumerate(layers):
            for row, (variant, maps) in enumerate((("Init", init), ("Final", final))):
                ax = axes[row, column]
                if layer in maps:
                    _overlay_panel(ax, rgb, maps[layer], f"{variant} {layer}")
                else:
                    _image_panel(ax, rgb, f"{variant} {layer}: not run")
        _saliency_colorbar(figure, axes.ravel().tolist(), "saliency (min-max scaled per map)", shrink=0.8)
    return figure


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _curve_axes_labels(ax, which: str) -> None:
    ax.set_xlabel(f"fraction of pixels {'deleted' if which == 'deletion' else 'inserted'}")
    ax.set_ylabel("p(class)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)


def curves_figure(deletion: np.ndarray, insertion: np.ndarray, image_id: str, method_id: str) -> Figure:
    """Deletion and insertion curves of one image, AUCs in the legends, end points marked.

    The last deletion point is p(class) on the fully deleted (mean-colour) image, the
    first insertion point p(class) on the fully blurred image.
    """
    with plt.rc_context(STYLE):
        figure = _new_figure(8.0, 3.3)
        axes = figure.subplots(1, 2)
        for ax, which, curve in ((axes[0], "deletion", deletion), (axes[1], "insertion", insertion)):
            curve = np.asarray(curve, dtype=np.float64)
            x = np.linspace(0.0, 1.0, len(curve))
            ax.plot(x, curve, color="C0", label=f"{which.capitalize()} (AUC {curve_auc(curve):.3f})")
            ax.fill_between(x, curve, color="C0", alpha=0.2)
            _mark_end_point(ax, which, curve)
            ax.set_title(f"{which.capitalize()}: {method_id}")
            _curve_axes_labels(ax, which)
            ax.legend(loc="best")
        figure.suptitle(f"Image {image_id}")
    return figure


def _mark_end_point(ax, which: str, curve: np.ndarray) -> None:
    if which == "deletion":
        ax.plot([1.0], [curve[-1]], "v", color="C3", clip_on=False, label=f"fully deleted: p = {curve[-1]:.3f}")
    else:
        ax.plot([0.0], [curve[0]], "s", color="C3", clip_on=False, label=f"fully blurred: p = {curve[0]:.3f}")


def mean_curves_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], method_id: str, band: str = "se") -> Figure:
    """Mean deletion/insertion curves of `method_id` over images with a band; chance baselines dashed.

    `curves` maps method id -> (deletion (n, steps+1), insertion (n, steps+1)). band: "se"
    (+-1 standard error of the mean) or "percentile" (2.5-97.5 % of the images).
    """
    require(band in ("se", "percentile"), f"unknown band {band!r}; use 'se' or 'percentile'")
    band_label = "\u00b11 s.e." if band == "se" else "2.5\u201397.5 %"
    baselines = [b for b in BASELINE_IDS if b in curves and b != method_id]
    with plt.rc_context(STYLE):
        figure = _new_figure(8.0, 3.4)
        axes = figure.subplots(1, 2)
        for column, (ax, which) in enumerate(zip(axes, ("deletion", "insertion"))):
            values = np.asarray(curves[method_id][column], dtype=np.float64)
            x = np.linspace(0.0, 1.0, values.shape[1])
            mean = values.mean(0)
            low, high = _band(values, band)
            ax.plot(x, mean, color="C0", label=f"{method_id} (AUC {curve_auc(mean):.3f})")
            ax.fill_between(x, low, high, color="C0", alpha=0.25, label=f"{method_id} {band_label}")
            for index, baseline in enumerate(baselines):
                baseline_mean = np.asarray(curves[baseline][column], dtype=np.float64).mean(0)
                ax.plot(x, baseline_mean, "--", color=f"C{index + 1}", label=f"{baseline} (AUC {curve_auc(baseline_mean):.3f})")
            _mark_end_point(ax, which, mean)
            ax.set_title(f"Mean {which} curve ({len(values)} images)")
            _curve_axes_labels(ax, which)
            ax.legend(loc="best")
    return figure


def _band(values: np.ndarray, band: str) -> tuple[np.ndarray, np.ndarray]:
    if band == "percentile":
        return np.percentile(values, 2.5, axis=0), np.percentile(values, 97.5, axis=0)
    mean = values.mean(0)
    error = values.std(0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.zeros_like(mean)
    return mean - error, mean + error


SUMMARY_METRICS = (("deletion_auc", "Deletion AUC (lower is better)"), ("insertion_auc", "Insertion AUC (higher is better)"),
                   ("score", "Score = Insertion \u2212 Deletion"))


def summary_figure(summary: pd.DataFrame) -> Figure:
    """Grouped horizontal bars of Deletion AUC, Insertion AUC and Score per method, best Score on top.

    Error bars come from `<metric>_lo` / `<metric>_hi` columns when present. Dashed lines
    show the mean p(class) on the fully deleted and the fully blurred image, the floor and
    the start of the curves, when `deleted_prob` / `blurred_prob` are present.
    """
    missing = [c for c in ("method_id", *(m for m, _ in SUMMARY_METRICS)) if c not in summary.columns]
    require(not missing, f"summary table lacks columns {', '.join(missing)}; pass the summary.csv written by `saliency-bench aggregate`")
    require(len(summary) > 0, "summary table has no rows; run `saliency-bench aggregate` on some metrics first")
    table = summary.sort_values("score", ascending=True, kind="stable").reset_index(drop=True)  # barh draws bottom-up
    positions = np.arange(len(table))
    height = 0.26
    with plt.rc_context(STYLE):
        figure = _new_figure(7.5, 1.2 + 0.55 * len(table))
        ax = figure.subplots()
        for offset, (column, label) in zip((height, 0.0, -height), SUMMARY_METRICS):
            values = table[column].to_numpy(dtype=float)
            error = None
            if f"{column}_lo" in table and f"{column}_hi" in table:
                lo, hi = table[f"{column}_lo"].to_numpy(dtype=float), table[f"{column}_hi"].to_numpy(dtype=float)
                error = np.vstack([np.clip(values - lo, 0, None), np.clip(hi - values, 0, None)])
            ax.barh(positions + offset, values, height=height, xerr=error, capsize=2, label=label)
        for column, text, style in (("deleted_prob", "mean p(class), fully deleted image", ":"),
                                    ("blurred_prob", "mean p(class), fully blurred image", "-.")):
            if column in table:
                ax.axvline(float(table[column].mean()), color="0.3", linestyle=style, linewidth=1, label=text)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_yticks(positions, table["method_id"].astype(str).tolist())
        ax.set_ylabel("method configuration")
        ax.set_xlabel("AUC or score (p(class) \u00d7 fraction of pixels)")
        ax.set_title("Deletion / insertion summary, sorted by Score")
        ax.grid(axis="x", alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        bars_first = sorted(range(len(labels)), key=lambda i: not labels[i].startswith(("Deletion", "Insertion", "Score")))
        figure.legend([handles[i] for i in bars_first], [labels[i] for i in bars_first], loc="outside lower center",
                      ncol=2, frameon=False)
    return figure


def sanity_figure(table: pd.DataFrame) -> Figure:
    """Spearman and SSIM between trained-model and randomised-model maps, per cascade step.

    Curves that stay high as more blocks are randomised belong to methods that do not depend
    on what the model learned (Adebayo et al. 2018).
    """
    require(len(table) > 0, "sanity table has no rows")
    steps = table.drop_duplicates("step").sort_values("step")
    with plt.rc_context(STYLE):
        figure = _new_figure(9.0, 3.8)
        axes = figure.subplots(1, 2, sharey=True)
        for ax, column, label in zip(axes, ("spearman", "ssim"), ("Spearman rank correlation", "SSIM")):
            for method_id, rows in table.groupby("method_id", sort=True):
                rows = rows.sort_values("step")
                ax.plot(rows["step"], rows[column], marker="o", label=method_id)
            ax.set_xticks(steps["step"], [r.split("+")[-1] for r in steps["randomised"]], rotation=30)
            ax.set_xlabel("randomised down to block (cascading from the output)")
            ax.set_ylabel(f"{label} with trained-model maps")
            ax.set_title(label)
            ax.axhline(0.0, color="black", linewidth=0.8)
            ax.grid(alpha=0.3)
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside right center", frameon=False)
    return figure


# ---- readers ---------------------------------------------------------------------------
def read_first_masks(path: str | os.PathLike, count: int) -> tuple[np.ndarray, dict]:
    """The first `count` masks of a mask file (never the whole set) and its attrs."""
    require(os.path.isfile(path), f"mask file not found: {path}; run `saliency-bench masks` first")
    try:
        with h5py.File(path, "r") as handle:
            dataset = handle["masks"]
            require(dataset.ndim == 3, f"{path}: dataset 'masks' has shape {dataset.shape}, expected (N, H, W); regenerate it")
            return dataset[: max(1, count)].astype(np.float32), dict(handle.attrs)
    except (OSError, KeyError) as error:
        raise UserError(f"{path} is not a mask file ({error}); rerun `saliency-bench masks`") from None


def mask_title(mask_id: str, attrs: Mapping) -> str:
    parts = [f"{attrs['kind']} masks" if "kind" in attrs else "masks", mask_id]
    for key in ("p", "s", "n"):
        if key in attrs and attrs[key] is not None and not (isinstance(attrs[key], float) and np.isnan(attrs[key])):
            parts.append(f"{key}={attrs[key]:g}" if isinstance(attrs[key], (float, np.floating)) else f"{key}={attrs[key]}")
    return " \u2014 ".join(parts[:2]) + (" (" + ", ".join(parts[2:]) + ")" if len(parts) > 2 else "")


@dataclass
class CurveSet:
    """All curves of one method: rows aligned with `image_id`."""
    image_id: list[str]
    deletion: np.ndarray
    insertion: np.ndarray


def read_curve_files(paths: Iterable[str | os.PathLike]) -> dict[str, CurveSet]:
    """Concatenate curves files (one per method and shard) per method id, in the given order."""
    parts: dict[str, list[tuple[list[str], np.ndarray, np.ndarray]]] = defaultdict(list)
    for path in paths:
        require(os.path.isfile(path), f"curves file not found: {path}; run `saliency-bench evaluate` first")
        try:
            with h5py.File(path, "r") as handle:
                ids = [s.decode() if isinstance(s, bytes) else str(s) for s in handle["image_id"][()]]
                deletion, insertion = handle["deletion"][()], handle["insertion"][()]
                method_id = str(handle.attrs["method_id"])
        except (OSError, KeyError) as error:
            raise UserError(f"{path} is not a curves file ({error}); rerun `saliency-bench evaluate`") from None
        require(deletion.ndim == 2 and deletion.shape == insertion.shape and len(ids) == len(deletion),
                f"{path}: deletion {deletion.shape} / insertion {insertion.shape} / {len(ids)} ids disagree; rerun `saliency-bench evaluate`")
        parts[method_id].append((ids, deletion, insertion))
    curves = {}
    for method_id, chunks in parts.items():
        widths = {chunk[1].shape[1] for chunk in chunks}
        require(len(widths) == 1, f"curves of {method_id} have different lengths {sorted(widths)}; evaluate all shards with the same step")
        curves[method_id] = CurveSet([i for chunk in chunks for i in chunk[0]],
                                     np.concatenate([c[1] for c in chunks]), np.concatenate([c[2] for c in chunks]))
    return curves


def class_name_lookup(records: Sequence[ImageRecord], class_names: Sequence[str] | None = None):
    """Class index -> name: an explicit list first, else the image table's (label, class_name) pairs."""
    from_table = {r.label: r.class_name for r in records if r.label >= 0 and r.class_name}

    def name(index: int) -> str:
        if class_names is not None and 0 <= index < len(class_names):
            return class_names[index]
        return from_table.get(int(index), f"class {int(index)}")

    return name


# ---- writers: stage outputs -> PNG files -------------------------------------------------
class _StagedOutputs:
    """Render into a temporary folder next to `out_dir`; move everything into place only on success."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.tmp-", dir=self.out_dir.parent))
        self.names: list[str] = []

    def save(self, figure: Figure, name: str) -> None:
        with plt.rc_context(STYLE):  # ticks are created at draw time: same style as the builders
            figure.savefig(self.staging / name, format="png", dpi=DPI)
        self.names.append(name)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        try:
            if kind is None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                for name in self.names:
                    os.replace(self.staging / name, self.out_dir / name)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)


def _progress(items, description: str):
    return tqdm(items, desc=description, unit="fig", file=sys.stderr, disable=None, leave=False)


def write_mask_figures(mask_paths: Sequence[str | os.PathLike], records: Sequence[ImageRecord], out_dir: str | os.PathLike,
                       *, count: int = 4, size: tuple[int, int] | None = None, mean: Sequence[float] = IMAGENET_MEAN,
                       std: Sequence[float] = IMAGENET_STD, image_index: int = 0) -> list[Path]:
    """Writes `masks-<mask_id>.png` per mask file (mask_id = the file's stem).

    The example image is row `image_index` of the image table, resized to the masks' size.
    """
    require(count >= 1, f"--count must be at least 1, got {count}")
    require(len(records) > 0, "the image table is empty; run `saliency-bench images` on a folder with images")
    require(0 <= image_index < len(records), f"--image-index {image_index} is outside the image table (0..{len(records) - 1})")
    stems = unique_stems([Path(p).stem for p in mask_paths])
    images: dict[tuple[int, int], np.ndarray] = {}
    with _StagedOutputs(out_dir) as staged:
        for path in _progress(mask_paths, "mask figures"):
            masks, attrs = read_first_masks(path, count)
            shape = tuple(size) if size else masks.shape[1:]
            require(tuple(masks.shape[1:]) == tuple(shape),
                    f"{path}: masks are {masks.shape[1:]}, not --size {tuple(shape)}; drop --size or regenerate the masks")
            if shape not in images:
                images[shape] = load_images([records[image_index]], shape, mean, std)[0].numpy()
            mask_id = Path(path).stem
            figure = masks_figure(masks, images[shape], mean, std, title=mask_title(mask_id, attrs))
            staged.save(figure, f"masks-{stems[mask_id]}.png")
    return [staged.out_dir / name for name in staged.names]


SALIENCY_KINDS = ("overview", "abscam-init-vs-final", "abscam-layers")


def write_saliency_figures(saliency_paths: Sequence[str | os.PathLike], records: Sequence[ImageRecord], out_dir: str | os.PathLike,
                           *, max_images: int = 8, kinds: Sequence[str] = SALIENCY_KINDS, size: tuple[int, int] | None = None,
                           mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                           class_names: Sequence[str] | None = None) -> list[Path]:
    """Per explained image (the first `max_images` in image-table order that any saliency file holds):

    - `overview-<image>.png`: every configuration's map;
    - `abscam-init-vs-final-<image>-<layer>.png`: for each layer with both Abs-CAM Init and Final;
    - `abscam-layers-<image>.png`: when any Abs-CAM map exists.
    <image> is `file_stem(image_id)`, <layer> the part after `abscam-init-` in the method id.
    The images are shown at the maps' size (`size`, when given, must match it). With
    `max_images=0` the folder is created empty.
    """
    require(max_images >= 0, f"--max-images must be at least 0, got {max_images}")
    unknown = sorted(set(kinds) - set(SALIENCY_KINDS))
    require(not unknown, f"unknown figure kinds {unknown}; choose from {', '.join(SALIENCY_KINDS)}")
    maps, top1 = _collect_maps(saliency_paths, records, max_images)
    chosen = list(maps)
    stems = unique_stems(chosen)
    by_id = {r.image_id: r for r in records}
    name_of = class_name_lookup(records, class_names)
    with _StagedOutputs(out_dir) as staged:
        for image_id in _progress(chosen, "saliency figures"):
            image_maps = maps[image_id]
            shape = next(iter(image_maps.values())).shape
            require(size is None or tuple(size) == tuple(shape),
                    f"saliency maps of {image_id} are {tuple(shape)}, not --size {tuple(size or ())}; pass the size used by explain")
            rgb = unnormalise(load_images([by_id[image_id]], shape, mean, std)[0].numpy(), mean, std)
            target, prob = top1[image_id]
            stem = stems[image_id]
            if "overview" in kinds:
                staged.save(overview_figure(rgb, image_maps, prob, name_of(target)), f"overview-{stem}.png")
            init, final = _abscam_maps(image_maps)
            if "abscam-init-vs-final" in kinds:
                for layer in sorted(set(init) & set(final), key=_natural_key):
                    figure = abscam_init_vs_final_figure(rgb, init[layer], final[layer], layer)
                    staged.save(figure, f"abscam-init-vs-final-{stem}-{file_stem(layer)}.png")
            if "abscam-layers" in kinds and (init or final):
                staged.save(abscam_layers_figure(rgb, init, final), f"abscam-layers-{stem}.png")
    return [staged.out_dir / name for name in staged.names]


def _collect_maps(paths, records, max_images):
    """{image_id: {method_id: map}} for the first `max_images` images, and {image_id: (target, top1_prob)}.

    Reads only the chosen images' rows, so memory stays bounded however large a saliency file is.
    """
    files = list(paths)
    require(len(files) > 0, "no saliency files given; pass --saliency results/saliency/<method_id>/shard-<k>.h5 ...")
    ids_by_file = {path: _saliency_image_ids(path) for path in files}
    available = {image_id for ids in ids_by_file.values() for image_id in ids}
    order = [r.image_id for r in records if r.image_id in available]
    require(bool(order), "no image of the image table appears in the saliency files; pass the matching --images table")
    chosen = order[:max_images]
    wanted = set(chosen)
    maps: dict[str, dict[str, np.ndarray]] = {image_id: {} for image_id in chosen}
    top1: dict[str, tuple[int, float]] = {}
    for path, ids in ids_by_file.items():
        rows = [row for row, image_id in enumerate(ids) if image_id in wanted]
        if not rows:
            continue
        try:
            with h5py.File(path, "r") as handle:
                method_id = str(handle.attrs["method_id"])
                for row in rows:
                    maps[ids[row]][method_id] = handle["saliency"][row]
                    top1.setdefault(ids[row], (int(handle["target"][row]), float(handle["top1_prob"][row])))
        except KeyError as error:
            raise UserError(f"{path} is not a saliency file (missing {error}); rerun `saliency-bench explain`") from None
    return maps, top1


def _saliency_image_ids(path) -> list[str]:
    """Only the ids of a saliency file, without reading its maps."""
    require(os.path.isfile(path), f"saliency file not found: {path}; run `saliency-bench explain` first")
    try:
        with h5py.File(path, "r") as handle:
            return [s.decode() if isinstance(s, bytes) else str(s) for s in handle["image_id"][()]]
    except (OSError, KeyError) as error:
        raise UserError(f"{path} is not a saliency file ({error}); rerun `saliency-bench explain`") from None


def _abscam_maps(image_maps: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    init, final = {}, {}
    for method_id, saliency in image_maps.items():
        match = _ABSCAM_ID.match(method_id)
        if match:
            (init if match.group(1) == "init" else final)[match.group(2)] = saliency
    return init, final


CURVE_KINDS = ("curves", "mean-curves")


def write_curve_figures(curve_paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, max_images: int = 8,
                        kinds: Sequence[str] = CURVE_KINDS, band: str = "se") -> list[Path]:
    """Writes, for every method id found in the curves files:

    - `curves-<image>-<method_id>.png` for the first `max_images` image ids (order of
      first appearance across the given files) that the method has;
    - `mean-curves-<method_id>.png`: mean over all its images, with the chance baselines.
    """
    require(max_images >= 0, f"--max-images must be at least 0, got {max_images}")
    unknown = sorted(set(kinds) - set(CURVE_KINDS))
    require(not unknown, f"unknown figure kinds {unknown}; choose from {', '.join(CURVE_KINDS)}")
    curves = read_curve_files(curve_paths)
    require(bool(curves), "no curves files given; pass --curves results/metrics/<method_id>/shard-<k>.curves.h5 ...")
    method_ids = sorted(curves, key=method_sort_key)
    method_stems = unique_stems(method_ids)
    first_seen = list(dict.fromkeys(i for m in method_ids for i in curves[m].image_id))
    chosen = first_seen[:max_images]
    image_stems = unique_stems(chosen)
    jobs = []
    if "curves" in kinds:
        jobs += [(image_id, method_id) for image_id in chosen for method_id in method_ids]
    if "mean-curves" in kinds:
        jobs += [(None, method_id) for method_id in method_ids]
    pairs = {m: (c.deletion, c.insertion) for m, c in curves.items()}
    with _StagedOutputs(out_dir) as staged:
        for image_id, method_id in _progress(jobs, "curve figures"):
            if image_id is None:
                figure = mean_curves_figure(pairs, method_id, band)
                staged.save(figure, f"mean-curves-{method_stems[method_id]}.png")
                continue
            rows = curves[method_id].image_id
            if image_id not in rows:
                continue
            row = rows.index(image_id)
            figure = curves_figure(curves[method_id].deletion[row], curves[method_id].insertion[row], image_id, method_id)
            staged.save(figure, f"curves-{image_stems[image_id]}-{method_stems[method_id]}.png")
    return [staged.out_dir / name for name in staged.names]


def write_summary_figure(summary_csv: str | os.PathLike, out: str | os.PathLike) -> Path:
    """summary.csv -> one bar chart at `out`."""
    require(os.path.isfile(summary_csv), f"summary table not found: {summary_csv}; run `saliency-bench aggregate` first")
    return save_figure(summary_figure(pd.read_csv(summary_csv)), out)
