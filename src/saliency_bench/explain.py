"""From a method's name and its parameters to maps: what the CLI, the sanity check and the benchmarks call.
The methods themselves are declared in `methods/` (the registry)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import require
from .methods import get_method
from .runtime.forward import ModelRunner


def explained_class(model: torch.nn.Module, images: torch.Tensor, target=None, *, batch_size: int = 64,
                    precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
    """(target, its softmax probability) on the unperturbed images; target defaults to top-1."""
    logits = ModelRunner(model, batch_size, precision).run(images)
    probabilities = logits.softmax(dim=1)
    if target is None:
        target = logits.argmax(dim=1)
    target = torch.as_tensor(target, dtype=torch.long, device=logits.device).reshape(-1)
    require(len(target) == len(images), f"target has {len(target)} entries for {len(images)} images")
    require(bool(((target >= 0) & (target < logits.shape[1])).all()), f"target classes must lie in [0, {logits.shape[1]})")
    return target, probabilities.gather(1, target[:, None])[:, 0]


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
