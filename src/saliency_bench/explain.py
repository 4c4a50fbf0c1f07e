"""From a method's name and its parameters to maps: what the CLI, the sanity check and the benchmarks call.
The methods themselves are declared in `methods/` (the registry)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import require
from .methods import get_method


def compute_maps(model: torch.nn.Module, images: torch.Tensor, method: str, *, target=None, batch_size: int = 64,
                 precision: str = "fp32", **method_params: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maps of the explained class: (maps (B, H, W) float32, target (B,) int64, top1_prob (B,) float32).

    rise: masks (tensor, MaskSet or .h5 path), p (default: the mask file's p for binary masks,
    else normalise by the masks' mean), score. abscam-init: layer. abscam-final: layer, score.
    random: seed (and keys: per-image ids). centre: sigma_fraction. Other registered methods:
    their own `params`.
    """
    spec = get_method(method)
    unknown = sorted(set(method_params) - spec.params)
    require(not unknown, f"unknown parameter(s) {', '.join(unknown)} for method {method}; "
                         f"allowed: {', '.join(sorted(spec.params)) or 'none'}")
    maps, target, top1_prob = spec.explain_with_class(model, images, target, batch_size=batch_size,
                                                      precision=precision, **method_params)
    maps = torch.as_tensor(maps)
    require(tuple(maps.shape) == (len(images), *images.shape[-2:]),
            f"method {method} returned maps of shape {tuple(maps.shape)}; expected (B, H, W) = "
            f"{(len(images), *images.shape[-2:])}")
    return (maps.detach().float().cpu().numpy(), target.cpu().numpy().astype(np.int64),
            top1_prob.detach().float().cpu().numpy())
