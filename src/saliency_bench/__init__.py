"""saliency-bench: which explanation method shows what your model really looks at?

Public API (stable; external checks import these names from here):

- masks:   `generate_masks`, `write_masks`, `MaskSet`
- methods: `rise_saliency`, `abscam_init`, `abscam_final`
- metrics: `causal_curves`, `auc`, `gkern`
- inputs:  `load_images`, `build_model`, `load_checkpoint`
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import UserError
from .data import ImageRecord, discover_images, load_images, select_split, preprocess
from .models import build_model, load_checkpoint, load_model, resolve_device

__all__ = [
    "__version__",
    "UserError",
    "ImageRecord",
    "discover_images",
    "load_images",
    "select_split",
    "preprocess",
    "build_model",
    "load_checkpoint",
    "load_model",
    "resolve_device",
]

# Method and metric modules register themselves below as they land.
try:  # noqa: SIM105 - filled in by the methods/metrics modules
    from .masks import MaskSet, generate_masks, write_masks  # noqa: F401
    from .rise import rise_saliency  # noqa: F401
    from .abscam import abscam_final, abscam_init  # noqa: F401
    __all__ += ["MaskSet", "generate_masks", "write_masks", "rise_saliency", "abscam_init", "abscam_final"]
except ImportError:  # pragma: no cover
    pass
try:
    from .metrics import auc, causal_curves, gkern  # noqa: F401
    __all__ += ["auc", "causal_curves", "gkern"]
except ImportError:  # pragma: no cover
    pass
