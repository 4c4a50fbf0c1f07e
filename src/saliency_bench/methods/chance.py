"""The chance baselines as the stages know them: `random` (seeded noise) and `centre` (a centred
Gaussian). A chance method's configuration id is its name. The maps come from `saliency_bench.baselines`."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..argtypes import seed
from .base import Method, MethodConfig, Option

if TYPE_CHECKING:
    from ..config import Config


class RandomMaps(Method):
    name = "random"
    title = "random"
    is_chance = True
    options = (Option("--seed", "random: seed of the noise maps (default 0)", type=seed, default=0),)
    params = frozenset({"seed", "keys"})

    def configurations(self, config: Config) -> list[MethodConfig]:
        return [MethodConfig(self.name, self.name, "chance", None, ("--seed", str(config.baselines.seed)))]

    def params_from_args(self, args, image_ids):
        # every image's noise is seeded by its id, so a map does not depend on the sharding
        return {"seed": args.seed, "keys": list(image_ids)}, {"seed": args.seed}

    def variant(self, recorded: dict) -> str:
        return f"seed={recorded.get('seed') or 0}"

    def explain(self, model, images, target, *, batch_size: int, precision: str, seed=0, keys=None):
        from ..baselines import random_maps

        return random_maps(len(images), tuple(images.shape[-2:]), 0 if seed is None else seed, keys=keys)


class CentreMaps(Method):
    name = "centre"
    title = "centre"
    is_chance = True
    options = (Option("--sigma-fraction", "centre: Gaussian sigma / min(H, W) (default 0.25)", type=float,
                      default=0.25),)
    params = frozenset({"sigma_fraction"})

    def configurations(self, config: Config) -> list[MethodConfig]:
        return [MethodConfig(self.name, self.name, "chance")]

    def variant(self, recorded: dict) -> str:
        return f"sigma={recorded.get('sigma_fraction', 0.25):g}"

    def explain(self, model, images, target, *, batch_size: int, precision: str, sigma_fraction=0.25):
        from ..baselines import centre_maps

        return centre_maps(len(images), tuple(images.shape[-2:]), sigma_fraction)
