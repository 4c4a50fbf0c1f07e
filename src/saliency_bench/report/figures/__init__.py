"""All matplotlib figures of the benchmark, built from the stage outputs.

Three modules:
- `style`: constants, helpers, `save_figure` and `figure_problems` (the legibility checks
  the tests run on any figure);
- `builders` (`masks_figure`, `overview_figure`, `abscam_init_vs_final_figure`,
  `abscam_layers_figure`, `curves_figure`, `mean_curves_figure`, `summary_figure`,
  `sanity_figure`) take arrays / tables and return a `matplotlib.figure.Figure` without
  saving it, so tests can inspect it;
- `writers` (`write_mask_figures`, `write_saliency_figures`, `write_curve_figures`,
  `write_summary_figure`) read the stage outputs (through `saliency_bench.formats`) and save PNGs with
  fixed, predictable names (see `docs` of each writer). A writer renders everything into
  a temporary folder first and moves the finished files into place at the end, so a
  failure leaves no half-written figure behind.

Every figure uses the Agg backend, constrained layout, fonts >= 8 pt at the saved
size, a title or axis labels on every axes and a label on every colorbar, and is at most
`MAX_HEIGHT_PX` tall, so that it fits a 1280x720 browser window in the report.
"""
from __future__ import annotations

from ...data import IMAGENET_MEAN, IMAGENET_STD
from ...methods import method_sort_key
from .builders import (SUMMARY_METRICS, abscam_init_vs_final_figure, abscam_layers_figure, curves_figure, masks_figure,
                       mean_curves_figure, overview_figure, sanity_figure, summary_figure)
from ..names import file_stem, split_stem, unique_stems
from .style import DPI, MAX_HEIGHT_PX, MIN_FONT_PT, STYLE, figure_problems, minmax, save_figure, unnormalise
from .writers import (CURVE_KINDS, SALIENCY_KINDS, class_name_lookup, mask_title, write_curve_figures,
                      write_mask_figures, write_saliency_figures, write_summary_figure)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "SUMMARY_METRICS", "abscam_init_vs_final_figure", "abscam_layers_figure",
           "curves_figure", "masks_figure", "mean_curves_figure", "overview_figure", "sanity_figure", "summary_figure",
           "DPI", "MAX_HEIGHT_PX", "MIN_FONT_PT", "STYLE", "figure_problems", "file_stem",
           "method_sort_key", "minmax", "save_figure", "split_stem", "unique_stems", "unnormalise", "CURVE_KINDS", "SALIENCY_KINDS",
           "class_name_lookup", "mask_title", "write_curve_figures",
           "write_mask_figures", "write_saliency_figures", "write_summary_figure"]
