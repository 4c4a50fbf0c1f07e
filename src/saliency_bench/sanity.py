"""Model-parameter randomisation test (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

The top-level blocks of the model are re-initialised from the output down, cascading
(fc; fc + layer4; ...; everything). After each step every method explains the same images
for the same target classes (those of the trained model), and its maps are compared with
the trained model's maps: Spearman rank correlation and SSIM, averaged over images. A
method whose maps barely change once the whole network is random does not depend on what
the model learned, and is flagged.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from .errors import require
from .numeric import minmax

# Maps that still correlate this much with the trained model's once every block is random
# do not reflect the model: Adebayo et al. call such a method insensitive.
INSENSITIVE_SPEARMAN = 0.5


@dataclass(frozen=True)
class SanityMethod:
    method_id: str
    method: str
    params: tuple[tuple[str, object], ...] = ()


def cascade_blocks(model: nn.Module) -> list[str]:
    """Top-level children that hold parameters, from the output back to the input."""
    blocks = [name for name, child in model.named_children() if any(True for _ in child.parameters())]
    require(bool(blocks), "the model has no parameterised blocks to randomise")
    return blocks[::-1]


def randomise_block(block: nn.Module, seed: int) -> None:
    """Re-initialise every sub-module of `block` with its own default initialiser."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for module in block.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
    finally:
        torch.random.set_rng_state(generator_state)


def map_similarity(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """Mean Spearman rank correlation and mean SSIM (maps scaled to [0, 1]) over images."""
    from skimage.metrics import structural_similarity

    spearman, ssim = [], []
    for ref, oth in zip(minmax(reference), minmax(other)):
        rho = spearmanr(ref.ravel(), oth.ravel()).statistic
        spearman.append(0.0 if np.isnan(rho) else float(rho))
        ssim.append(float(structural_similarity(ref, oth, data_range=1.0)))
    return float(np.mean(spearman)), float(np.mean(ssim))


def run_sanity(model: nn.Module, images: torch.Tensor, methods: list[SanityMethod], *, seed: int = 0,
               batch_size: int = 64, precision: str = "fp32", progress=None) -> list[dict]:
    """Rows of (method_id, randomised blocks, spearman, ssim) for every cascade step."""
    from .explain import compute_maps

    def explain(net: nn.Module, method: SanityMethod, target):
        return compute_maps(net, images, method.method, target=target, batch_size=batch_size,
                            precision=precision, **dict(method.params))

    trained = {m.method_id: explain(model, m, None) for m in methods}
    randomised = copy.deepcopy(model)
    rows, done = [], []
    for step, block in enumerate(cascade_blocks(model)):
        randomise_block(getattr(randomised, block), seed + step)
        done.append(block)
        for method in methods:
            reference, target, _ = trained[method.method_id]
            maps, _, _ = explain(randomised, method, torch.as_tensor(target))
            spearman, ssim = map_similarity(reference, maps)
            rows.append({"method_id": method.method_id, "step": step + 1, "randomised": "+".join(done),
                         "spearman": spearman, "ssim": ssim, "n_images": len(images)})
        if progress:
            progress(f"randomised {'+'.join(done)}")
    final = {r["method_id"]: r for r in rows if r["step"] == len(done)}
    for row in rows:
        row["insensitive"] = bool(final[row["method_id"]]["spearman"] > INSENSITIVE_SPEARMAN)
    return rows
