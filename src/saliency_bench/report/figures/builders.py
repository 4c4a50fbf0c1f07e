"""Figure builders: arrays and tables in, a `matplotlib.figure.Figure` out (never saved here)."""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ...analysis.summary import substrate_images
from ...data import IMAGENET_MEAN, IMAGENET_STD
from ...errors import require
from ...formats.records import SUBSTRATE_COLUMNS
from ...methods import chance_ids, method_sort_key
from ...metrics.substrates import describe_substrate
from ...numeric import auc
from .style import (DIFFERENCE_CMAP, MAX_HEIGHT_IN, STYLE, image_panel, minmax, new_figure, overlay_panel, plt,
                    saliency_colorbar, unnormalise)

OVERVIEW_MAX_ROWS = 3


# ---- builders --------------------------------------------------------------------------
def masks_figure(masks: np.ndarray, image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, title: str = "") -> Figure:
    """"Mask #i" beside "Masked image #i" for each mask; `image` is the normalised (3, H, W) input.

    The masked image is `image * mask` in the normalised space, as the model sees it: a
    pixel multiplied by 0 shows the data set's mean colour.
    """
    masks = np.asarray(masks, dtype=np.float32)
    count = len(masks)
    pairs_per_row = min(count, max(2, -(-count // 2)))  # at most two rows: wider rather than taller
    rows = -(-count // pairs_per_row)
    panel = min(2.3, 11.0 / (2 * pairs_per_row))  # many masks: smaller panels, at most ~1300 px wide
    with plt.rc_context(STYLE):
        figure = new_figure(panel * 2 * pairs_per_row + 0.8, panel * rows + (0.4 if title else 0.1))
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
            image_panel(image_ax, unnormalise(np.asarray(image) * masks[index], mean, std), f"Masked image #{index + 1}")
        figure.colorbar(artist, ax=axes.ravel().tolist(), shrink=0.8, label="mask value (0 = mean colour, 1 = kept)")
        if title:
            figure.suptitle(title)
    return figure


def overview_figure(rgb: np.ndarray, maps: Mapping[str, np.ndarray], top1_prob: float, class_name: str,
                    columns: int = 4) -> Figure:
    """The image ("83.5% class-name") and each configuration's map overlaid on it, one panel each."""
    method_ids = sorted(maps, key=method_sort_key)
    panels = 1 + len(method_ids)
    # At most OVERVIEW_MAX_ROWS rows, smaller panels in more columns: the figure stays within MAX_HEIGHT_IN.
    columns = max(1, min(panels, max(columns, -(-panels // OVERVIEW_MAX_ROWS))))
    rows = -(-panels // columns)
    panel = min(2.4, MAX_HEIGHT_IN / rows - 0.35)  # 0.35 in: the panel's title
    with plt.rc_context(STYLE):
        figure = new_figure(panel * columns + 0.9, min(2.45 * rows, MAX_HEIGHT_IN))
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        image_panel(axes[0], rgb, f"{100 * top1_prob:.1f}% {class_name}")
        for ax, method_id in zip(axes[1:], method_ids):
            overlay_panel(ax, rgb, maps[method_id], method_id)
        for ax in axes[panels:]:
            ax.set_visible(False)
        if method_ids:
            saliency_colorbar(figure, axes.tolist(), "saliency (min-max scaled per map)", shrink=min(0.6, 0.25 * rows + 0.1))
    return figure


def abscam_init_vs_final_figure(rgb: np.ndarray, init: np.ndarray, final: np.ndarray, layer: str) -> Figure:
    """Init, Final (each scaled to [0, 1]) and Final - Init on a diverging colormap centred at 0."""
    init01, final01 = minmax(init), minmax(final)
    difference = final01 - init01
    limit = max(float(np.abs(difference).max()), 1e-6)  # symmetric limits keep 0 at the colormap's centre
    with plt.rc_context(STYLE):
        figure = new_figure(9.6, 3.3)
        axes = figure.subplots(1, 3)
        overlay_panel(axes[0], rgb, init01, f"Init ({layer})")
        overlay_panel(axes[1], rgb, final01, f"Final ({layer})")
        saliency_colorbar(figure, axes[:2].tolist(), "saliency (scaled to [0, 1])", shrink=0.85)
        shown = axes[2].imshow(difference, cmap=DIFFERENCE_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
        axes[2].set_title("Final \u2212 Init")
        axes[2].set_xticks([])
        axes[2].set_yticks([])
        figure.colorbar(shown, ax=axes[2], shrink=0.85, label="difference (red: Final higher)")
    return figure


def abscam_layers_figure(rgb: np.ndarray, init: Mapping[str, np.ndarray], final: Mapping[str, np.ndarray]) -> Figure:
    """Init (top row) and Final (bottom row) for each layer, columns in layer order."""
    layers = sorted(set(init) | set(final), key=natural_key)
    with plt.rc_context(STYLE):
        figure = new_figure(2.3 * len(layers) + 0.9, 4.9)
        axes = figure.subplots(2, len(layers), squeeze=False)
        for column, layer in enumerate(layers):
            for row, (variant, maps) in enumerate((("Init", init), ("Final", final))):
                ax = axes[row, column]
                if layer in maps:
                    overlay_panel(ax, rgb, maps[layer], f"{variant} {layer}")
                else:
                    image_panel(ax, rgb, f"{variant} {layer}: not run")
        saliency_colorbar(figure, axes.ravel().tolist(), "saliency (min-max scaled per map)", shrink=0.8)
    return figure


def natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _curve_axes_labels(ax, which: str) -> None:
    ax.set_xlabel(f"fraction of pixels {'deleted' if which == 'deletion' else 'inserted'}")
    ax.set_ylabel("p(class)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)


def curves_figure(deletion: np.ndarray, insertion: np.ndarray, image_id: str, method_id: str,
                  substrates: Mapping[str, str] | None = None) -> Figure:
    """Deletion and insertion curves of one image, AUCs in the legends, end points marked.

    The last deletion point is p(class) on the fully deleted image, the first insertion point
    p(class) on insertion's first image; `substrates` ({"deletion": name, "insertion": name},
    as the curves files say them) names them in the legends.
    """
    with plt.rc_context(STYLE):
        figure = new_figure(8.0, 3.3)
        axes = figure.subplots(1, 2)
        for ax, which, curve in ((axes[0], "deletion", deletion), (axes[1], "insertion", insertion)):
            curve = np.asarray(curve, dtype=np.float64)
            x = np.linspace(0.0, 1.0, len(curve))
            ax.plot(x, curve, color="C0", label=f"{which.capitalize()} ({_auc_label(curve)})")
            ax.fill_between(x, curve, color="C0", alpha=0.2)
            _mark_end_point(ax, which, curve, substrates)
            ax.set_title(f"{which.capitalize()}: {method_id}")
            _curve_axes_labels(ax, which)
            ax.legend(loc="best")
        figure.suptitle(f"Image {image_id}")
    return figure


def _auc_label(curve: np.ndarray) -> str:
    return f"AUC {float(auc(curve)):.3f}"


def _mark_end_point(ax, which: str, curve: np.ndarray, substrates: Mapping[str, str] | None) -> None:
    """The substrate's point: the last of a deletion curve, the first of an insertion curve."""
    name = (substrates or {}).get(which)
    what = f" ({describe_substrate(name)})" if name else ""
    if which == "deletion":
        ax.plot([1.0], [curve[-1]], "v", color="C3", clip_on=False, label=f"fully deleted{what}: p = {curve[-1]:.3f}")
    else:
        ax.plot([0.0], [curve[0]], "s", color="C3", clip_on=False, label=f"first image{what}: p = {curve[0]:.3f}")


def mean_curves_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], method_id: str, band: str = "se",
                       substrates: Mapping[str, str] | None = None) -> Figure:
    """Mean deletion/insertion curves of `method_id` over images with a band; chance baselines dashed.

    `curves` maps method id -> (deletion (n, steps+1), insertion (n, steps+1)). band: "se"
    (+-1 standard error of the mean) or "percentile" (2.5-97.5 % of the images); `substrates` as
    in `curves_figure`.
    """
    require(band in ("se", "percentile"), f"unknown band {band!r}; use 'se' or 'percentile'")
    band_label = "\u00b11 s.e." if band == "se" else "2.5\u201397.5 %"
    baselines = [b for b in chance_ids() if b in curves and b != method_id]
    with plt.rc_context(STYLE):
        figure = new_figure(8.0, 4.6)
        axes = figure.subplots(1, 2)
        for column, (ax, which) in enumerate(zip(axes, ("deletion", "insertion"))):
            values = np.asarray(curves[method_id][column], dtype=np.float64)
            x = np.linspace(0.0, 1.0, values.shape[1])
            mean = values.mean(0)
            low, high = _band(values, band)
            ax.plot(x, mean, color="C0", label=f"{method_id} ({_auc_label(mean)})")
            ax.fill_between(x, low, high, color="C0", alpha=0.25, label=f"{method_id} {band_label}")
            for index, baseline in enumerate(baselines):
                baseline_mean = np.asarray(curves[baseline][column], dtype=np.float64).mean(0)
                ax.plot(x, baseline_mean, "--", color=f"C{index + 1}", label=f"{baseline} ({_auc_label(baseline_mean)})")
            _mark_end_point(ax, which, mean, substrates)
            ax.set_title(f"Mean {which} curve ({len(values)} images)")
            _curve_axes_labels(ax, which)
            # below the panel: with the baselines' curves there is no free corner inside it
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
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
    """Deletion AUC, Insertion AUC and Score side by side, one row per method, best Score on top.

    Wider rather than taller, so that it fits the report's window. Error bars come from
    `<metric>_lo` / `<metric>_hi` columns when present; reference rows (`random`, `centre`, `evidence`)
    are grey. Dashed lines show the mean p(class) on the fully deleted image (the floor of
    the deletion curves) and on insertion's first image (the start of the insertion curves),
    when `deleted_prob` / `blurred_prob` are present, named with their substrates where given.
    """
    missing = [c for c in ("method_id", *(m for m, _ in SUMMARY_METRICS)) if c not in summary.columns]
    require(not missing, f"summary table lacks columns {', '.join(missing)}; pass the summary.csv written by `saliency-bench aggregate`")
    require(len(summary) > 0, "summary table has no rows; run `saliency-bench aggregate` on some metrics first")
    table = summary.sort_values("score", ascending=True, kind="stable").reset_index(drop=True)  # barh draws bottom-up
    positions = np.arange(len(table))
    chance = table["method_id"].isin(chance_ids()).to_numpy()
    deleted, first = substrate_images({column: table[column].iloc[0] for column in SUBSTRATE_COLUMNS if column in table})
    floors = {"deletion_auc": ("deleted_prob", deleted, ":"), "insertion_auc": ("blurred_prob", first, "-.")}
    with plt.rc_context(STYLE):
        figure = new_figure(10.5, min(1.5 + 0.26 * len(table), MAX_HEIGHT_IN))
        axes = figure.subplots(1, len(SUMMARY_METRICS), sharey=True)
        floor_lines = []
        for index, (ax, (column, label)) in enumerate(zip(axes, SUMMARY_METRICS)):
            values = table[column].to_numpy(dtype=float)
            error = None
            if f"{column}_lo" in table and f"{column}_hi" in table:
                lo, hi = table[f"{column}_lo"].to_numpy(dtype=float), table[f"{column}_hi"].to_numpy(dtype=float)
                error = np.vstack([np.clip(values - lo, 0, None), np.clip(hi - values, 0, None)])
            colours = np.where(chance, "0.65", f"C{index}")
            ax.barh(positions, values, height=0.7, xerr=error, capsize=2, color=colours)
            if column in floors and floors[column][0] in table:
                floor, what, style = floors[column]
                floor_lines.append(ax.axvline(float(table[floor].mean()), color="0.3", linestyle=style, linewidth=1,
                                              label=f"mean p(class), {what}"))
            ax.axvline(0.0, color="black", linewidth=0.8)
            ax.set_title(label)
            ax.set_xlabel("AUC (p(class) \u00d7 fraction of pixels)" if column != "score" else "Insertion AUC \u2212 Deletion AUC")
            ax.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(positions, table["method_id"].astype(str).tolist())
        axes[0].set_ylabel("method configuration (grey: reference rows)")
        if floor_lines:  # below the panels: inside them they would cover the bottom row's bar
            figure.legend(floor_lines, [line.get_label() for line in floor_lines], loc="outside lower center",
                          ncols=len(floor_lines), frameon=False)
        figure.suptitle("Deletion / insertion summary, sorted by Score (bars: 95% CI where given)")
    return figure


def sanity_figure(table: pd.DataFrame) -> Figure:
    """Spearman and SSIM between trained-model and randomised-model maps, per cascade step.

    Curves that stay high as more blocks are randomised belong to methods that do not depend
    on what the model learned (Adebayo et al. 2018).
    """
    require(len(table) > 0, "sanity table has no rows")
    steps = table.drop_duplicates("step").sort_values("step")
    with plt.rc_context(STYLE):
        figure = new_figure(9.0, 3.8)
        axes = figure.subplots(1, 2, sharey=True)
        for ax, column, label in zip(axes, ("spearman", "ssim"), ("Spearman rank correlation", "SSIM")):
            for method_id, rows in table.groupby("method_id", sort=True):
                rows = rows.sort_values("step")
                ax.plot(rows["step"], rows[column], marker="o", label=method_id)
            ax.set_xticks(steps["step"], [r.split("+")[-1] for r in steps["randomised"]], rotation=30)
            ax.set_ylabel(f"{label} with trained-model maps")
            ax.set_title(label)
            ax.axhline(0.0, color="black", linewidth=0.8)
            ax.grid(alpha=0.3)
        figure.supxlabel("randomised down to block (cascading from the output)")  # one for both: two would touch
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside right center", frameon=False)
    return figure


