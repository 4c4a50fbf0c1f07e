"""From a method configuration to maps: what the CLI, the sanity check and the benchmarks call."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .abscam import abscam_final, abscam_init
from .baselines import centre_maps, random_maps
from .errors import require
from .forward import ModelRunner
from .formats.masks import MaskSet
from .rise import rise_saliency

METHODS = ("rise", "abscam-init", "abscam-final", "random", "centre")
METHOD_PARAMS = {
    "rise": {"masks", "p", "score", "chunk_size", "progress"},
    "abscam-init": {"layer"},
    "abscam-final": {"layer", "score", "skip_constant", "progress"},
    "random": {"seed", "keys"},
    "centre": {"sigma_fraction"},
}


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
    random: seed (and keys: per-image ids). centre: sigma_fraction.
    """
    require(method in METHODS, f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    unknown = sorted(set(method_params) - METHOD_PARAMS[method])
    require(not unknown, f"unknown parameter(s) {', '.join(unknown)} for method {method}; "
                         f"allowed: {', '.join(sorted(METHOD_PARAMS[method]))}")
    target, top1_prob = explained_class(model, images, target, batch_size=batch_size, precision=precision)
    size = tuple(images.shape[-2:])
    if method == "rise":
        masks = method_params.pop("masks", None)
        require(masks is not None, "method rise needs masks (an .h5 file from `saliency-bench masks`)")
        if isinstance(masks, (str, os.PathLike)):
            masks = MaskSet(masks)
        p = method_params.pop("p", None)
        if p is None and isinstance(masks, MaskSet) and masks.attrs.get("kind") == "binary":
            p = masks.attrs.get("p")
        maps = rise_saliency(model, images, masks, p=p, target=target, batch_size=batch_size, precision=precision,
                             **method_params)
    elif method == "abscam-init":
        maps = abscam_init(model, images, require_layer(method_params), target)
    elif method == "abscam-final":
        layer = require_layer(method_params)
        maps = abscam_final(model, images, layer, target, batch_size, precision=precision, **method_params)
    elif method == "random":
        seed = method_params.get("seed", 0)
        maps = random_maps(len(images), size, 0 if seed is None else seed, keys=method_params.get("keys"))
    else:
        maps = centre_maps(len(images), size, method_params.get("sigma_fraction", 0.25))
    return (maps.detach().float().cpu().numpy(), target.cpu().numpy().astype(np.int64),
            top1_prob.float().cpu().numpy())


def require_layer(params: dict[str, Any]) -> str:
    layer = params.pop("layer", None)
    require(bool(layer), "Abs-CAM needs a layer, e.g. layer3 for a ResNet (--layer)")
    return layer


def method_variant(method: str, *, p: float | None = None, mask_kind: str | None = None, layer: str | None = None,
                   seed: int | None = None, sigma_fraction: float | None = None, score: str = "logits") -> str:
    """The human-readable variant stored in saliency files: p=0.5, gaussian, layer3, ..."""
    if method == "rise":
        variant = f"p={p:g}" if mask_kind in (None, "binary") and p is not None else str(mask_kind)
    elif method.startswith("abscam"):
        variant = str(layer)
    elif method == "random":
        variant = f"seed={seed or 0}"
    else:
        variant = f"sigma={sigma_fraction:g}"
    return variant + ("/softmax" if score == "softmax" and method in ("rise", "abscam-final") else "")
