"""The reference rows as the stages know them: the chance baselines `random` (seeded noise) and
`centre` (a centred Gaussian), and where evidence masks exist and `baselines.evidence` asks for it,
`evidence` (the ground truth as a map). A reference's configuration id is its name; none is ever
"best". The maps come from `saliency_bench.baselines`."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..argtypes import seed
from ..errors import require
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


class EvidenceMaps(Method):
    name = "evidence"
    title = "evidence"
    is_chance = True  # a reference row like the chance maps: compared with, never "best"
    role = "ground truth"
    reads_evidence = True
    options = (Option("--evidence-root", "evidence: folder of evidence masks, <root>/<image_id> (as for aggregate)"),)
    params = frozenset({"evidence_root", "keys"})

    def configurations(self, config: Config) -> list[MethodConfig]:
        # the workflow passes the run's evidence root, as it passes RISE its mask file
        return [MethodConfig(self.name, self.name, "chance")] if config.baselines.evidence else []

    def params_from_args(self, args, image_ids):
        require(args.evidence_root, "--method evidence needs --evidence-root, the folder of the images' evidence masks")
        return {"evidence_root": args.evidence_root, "keys": list(image_ids)}, {"evidence_root": args.evidence_root}

    def variant(self, recorded: dict) -> str:
        return "ground truth"

    def explain(self, model, images, target, *, batch_size: int, precision: str, evidence_root=None, keys=None):
        import numpy as np

        from ..baselines import evidence_maps
        from ..formats.evidence import evidence_paths, load_evidence_mask

        require(evidence_root is not None and keys is not None and len(keys) == len(images),
                "evidence maps need evidence_root and one key (image id) per image")
        height, width = images.shape[-2:]
        paths = evidence_paths(evidence_root, keys)
        return evidence_maps(np.stack([load_evidence_mask(str(path), height, width) for path in paths]), keys)
