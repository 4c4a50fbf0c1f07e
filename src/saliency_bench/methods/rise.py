"""RISE (Petsiuk et al. 2018) as the stages know it: its mask sets and configurations (ids),
flags, variants and cost. The computation is `saliency_bench.rise.rise_saliency`; the masks
come from `saliency-bench masks`.

Ids: mask sets `binary-p0.5`, `gaussian`, `perlin`; a RISE configuration is `rise-<mask id>`.
Repeat r > 0 (rise.repeats) draws new masks with seed + r and gets the suffix `-seed<r>`.
Every mask set's generator seed is a hash of that seed and the set's base id
(masks.set_seed), so the sets of one config are independent draws.
"""
from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import require
from .base import Method, MethodConfig, Option

if TYPE_CHECKING:
    from ..config import Config

SCORE_OPTION = Option("--score", "rise: f = logits (the study) or softmax (original RISE)", default="logits",
                      choices=("logits", "softmax"))


@dataclass(frozen=True)
class MaskConfig:
    mask_id: str
    base_id: str  # the id without the repeat suffix; names the variant in tables
    kind: str
    p: float | None
    seed: int
    params: tuple[tuple[str, Any], ...] = ()
    upsample: str = "reflect"

    def cli_args(self) -> str:
        args = ["--kind", self.kind, "--seed", str(self.seed), "--set-id", self.base_id, "--upsample", self.upsample]
        if self.p is not None:
            args += ["--p", f"{self.p:g}"]
        for key, value in self.params:
            if isinstance(value, bool):
                args.append(f"--{key}" if value else f"--no-{key}")
            else:
                args += [f"--{key}", str(value)]
        return shlex.join(args)


def _p_label(p: float) -> str:
    return f"p{p:g}"


def mask_configs(config: Config) -> list[MaskConfig]:
    rise = config.rise
    masks = []
    for repeat in range(rise.repeats):
        suffix = f"-seed{repeat}" if repeat else ""
        seed = rise.seed + repeat
        for p in rise.binary.p:
            base = f"binary-{_p_label(p)}"
            masks.append(MaskConfig(base + suffix, base, "binary", float(p), seed, (), rise.upsample))
        if rise.gaussian.enabled:
            params = (("mean", rise.gaussian.mean), ("std", rise.gaussian.std))
            masks.append(MaskConfig(f"gaussian{suffix}", "gaussian", "gaussian", None, seed, params, rise.upsample))
        perlin = rise.perlin
        if perlin.enabled:
            params = (("perlin-engine", perlin.engine), ("frequency", perlin.frequency))
            if perlin.engine == "fbm":  # octaves and phase belong to the fbm engine only
                params += (("octaves", perlin.octaves), ("phase", perlin.phase))
            masks.append(MaskConfig(f"perlin{suffix}", "perlin", "perlin", None, seed, params, rise.upsample))
    return masks


class Rise(Method):
    name = "rise"
    title = "RISE"
    options = (
        Option("--masks", "rise: mask file from `saliency-bench masks`"),
        Option("--p", "rise: divide by N * p (default: the mask file's p for binary masks, else N * mean(masks))",
               type=float),
        SCORE_OPTION,
    )
    params = frozenset({"masks", "p", "score", "chunk_size", "progress"})

    def configurations(self, config: Config) -> list[MethodConfig]:
        return [MethodConfig(f"rise-{mask.mask_id}", self.name, mask.base_id, mask.mask_id,
                             ("--score", config.rise.score) + (("--p", f"{mask.p:g}") if mask.p is not None else ()))
                for mask in mask_configs(config)]

    def forward_passes(self, config: Config, method: MethodConfig, channels: dict[str, int]) -> int:
        return config.rise.n_masks + 1  # every mask, and the image for its class

    def params_from_args(self, args: argparse.Namespace, image_ids: Sequence[str]) -> tuple[dict, dict]:
        require(args.masks is not None, "method rise needs --masks FILE.h5 (create it with `saliency-bench masks`)")
        from ..formats.masks import MaskSet

        masks = MaskSet(args.masks)  # opened before the model loads: a bad file fails fast
        p = args.p if args.p is not None else default_p(masks)
        recorded = {"masks": str(args.masks), "p": p, "score": args.score, "n_masks": len(masks),
                    "mask_attrs": {k: v for k, v in masks.attrs.items() if k != "version"}}
        return {"masks": masks, "p": p, "score": args.score, "progress": True}, recorded

    def variant(self, recorded: dict) -> str:
        kind, p = recorded.get("mask_attrs", {}).get("kind"), recorded.get("p")
        variant = f"p={p:g}" if kind in (None, "binary") and p is not None else str(kind)
        return variant + ("/softmax" if recorded.get("score") == "softmax" else "")

    def sanity_params(self, masks: Sequence[str], layers: Sequence[str]) -> list[tuple[str, dict]]:
        require(bool(masks), "sanity with rise needs --masks FILE.h5")
        from ..formats.masks import MaskSet

        mask_set = MaskSet(masks[0])
        return [(f"rise-{mask_set.attrs.get('kind', 'masks')}", {"masks": mask_set})]

    def explain(self, model, images, target, *, batch_size: int, precision: str, masks=None, p=None, **params):
        import os

        from ..formats.masks import MaskSet
        from ..rise import rise_saliency

        require(masks is not None, "method rise needs masks (an .h5 file from `saliency-bench masks`)")
        if isinstance(masks, (str, os.PathLike)):
            masks = MaskSet(masks)
        if p is None and isinstance(masks, MaskSet):
            p = default_p(masks)
        return rise_saliency(model, images, masks, p=p, target=target, batch_size=batch_size, precision=precision,
                             **params)


def default_p(masks) -> float | None:
    """Binary masks are normalised by their keep probability p, others by the masks' mean (None)."""
    return masks.attrs.get("p") if masks.attrs.get("kind") == "binary" else None
