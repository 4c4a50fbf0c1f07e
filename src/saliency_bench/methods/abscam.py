"""Abs-CAM Init and Final (Zeng et al. 2022) as the stages know them: flags, ids, variants, cost.
The computation is `saliency_bench.abscam`."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Sequence

from ..errors import require
from .base import Method, MethodConfig, Option

if TYPE_CHECKING:
    from ..config import Config

LAYER_OPTION = Option("--layer", "abscam: module name of the target layer, e.g. layer3")


class AbsCam(Method):
    """What Init and Final share: one configuration per configured layer, id abscam-<variant>-<layer>."""
    abscam_variant = ""

    def configurations(self, config: Config) -> list[MethodConfig]:
        if self.abscam_variant not in config.abscam.variants:
            return []
        return [MethodConfig(f"{self.name}-{layer}", self.name, layer, None, ("--layer", layer))
                for layer in config.abscam.layers]

    def layer_from_args(self, args: argparse.Namespace) -> str:
        require(args.layer is not None, f"method {self.name} needs --layer, e.g. --layer layer3 for a ResNet")
        return args.layer

    def sanity_params(self, masks: Sequence[str], layers: Sequence[str]) -> list[tuple[str, dict]]:
        return [(f"{self.name}-{layer}", {"layer": layer}) for layer in layers]

    def sanity_forward_passes(self, config: Config, channels: dict[str, int]) -> int:
        """One variant per layer (the workflow passes abscam.layers), as its configurations."""
        return sum(self.forward_passes(config, method, channels) for method in self.configurations(config))


def require_layer(layer: str | None) -> str:
    require(bool(layer), "Abs-CAM needs a layer, e.g. layer3 for a ResNet (--layer)")
    return layer


class AbsCamInit(AbsCam):
    name = "abscam-init"
    title = "Abs-CAM Init"
    abscam_variant = "init"
    options = (LAYER_OPTION,)
    params = frozenset({"layer"})
    # one forward and one backward pass: about 3 forward passes
    PASSES = 3

    def forward_passes(self, config: Config, method: MethodConfig, channels: dict[str, int]) -> int:
        return self.PASSES

    def params_from_args(self, args, image_ids):
        layer = self.layer_from_args(args)
        return {"layer": layer}, {"layer": layer}

    def variant(self, recorded: dict) -> str:
        return str(recorded.get("layer"))

    def explain(self, model, images, target, *, batch_size: int, precision: str, layer=None):
        from ..abscam import abscam_init

        return abscam_init(model, images, require_layer(layer), target)

    def explain_with_class(self, model, images, target, *, batch_size: int, precision: str, layer=None):
        if precision != "fp32":  # the class is then the reduced-precision model's, as for every other method
            return super().explain_with_class(model, images, target, batch_size=batch_size, precision=precision,
                                              layer=layer)
        from ..abscam import abscam_init_with_class

        return abscam_init_with_class(model, images, require_layer(layer), target)


class AbsCamFinal(AbsCam):
    name = "abscam-final"
    title = "Abs-CAM Final"
    abscam_variant = "final"
    options = (LAYER_OPTION, Option("--score", "abscam-final: |logit| (the study) or softmax (Score-CAM)",
                                    default="logits", choices=("logits", "softmax")))
    params = frozenset({"layer", "score", "skip_constant", "progress"})

    def forward_passes(self, config: Config, method: MethodConfig, channels: dict[str, int]) -> int:
        return channels.get(method.variant, 0) + 1  # one per channel of the layer, and the image

    def params_from_args(self, args, image_ids):
        layer = self.layer_from_args(args)
        return {"layer": layer, "score": args.score, "progress": True}, {"layer": layer, "score": args.score}

    def variant(self, recorded: dict) -> str:
        return str(recorded.get("layer")) + ("/softmax" if recorded.get("score") == "softmax" else "")

    def explain(self, model, images, target, *, batch_size: int, precision: str, layer=None, **params):
        from ..abscam import abscam_final

        return abscam_final(model, images, require_layer(layer), target, batch_size, precision=precision, **params)
