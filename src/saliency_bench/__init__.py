"""saliency-bench: which explanation method shows what your model really looks at?

Public API (stable; external checks import these names from here):

- masks:   `generate_masks`, `write_masks`, `MaskSet`
- methods: `rise_saliency`, `abscam_init`, `abscam_final`
- metrics: `causal_curves`, `causal_curve_sets` (+ `CurveRequest`), `SharedScores`, `auc`, `gkern`
- inputs:  `load_images`, `discover_images`, `select_split`, `preprocess`, `build_model`,
  `load_checkpoint`, `load_model`, `resolve_device`
- statistics: `bootstrap_means`, `holm`, `pointing_game`, `energy_pointing_game`

Names are imported on first use, so that light commands (aggregate, figures) start without
loading torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "UserError": "errors",
    "ImageRecord": "formats.image_table", "discover_images": "data", "load_images": "data", "select_split": "data",
    "preprocess": "data", "open_rgb": "data",
    "build_model": "runtime.models", "load_checkpoint": "runtime.models", "load_model": "runtime.models",
    "resolve_device": "runtime.models",
    "generate_masks": "masks", "write_masks": "masks", "MaskSet": "formats.masks",
    "rise_saliency": "rise",
    "abscam_init": "abscam", "abscam_final": "abscam",
    "causal_curves": "metrics.causal", "causal_curve_sets": "metrics.causal", "CurveRequest": "metrics.causal",
    "SharedScores": "metrics.causal", "auc": "numeric", "gkern": "metrics.causal",
    "bootstrap_means": "analysis.stats", "holm": "analysis.stats",
    "pointing_game": "metrics.localisation", "energy_pointing_game": "metrics.localisation",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'saliency_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
