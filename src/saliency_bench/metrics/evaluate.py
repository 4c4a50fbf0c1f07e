"""Evaluate one saliency file: deletion and insertion curves, per-image records, the baselines.

Its outputs are written in the formats of `formats.records` (one row per image; `deleted_prob`
and `blurred_prob` are the model's output on the fully deleted and the fully blurred image: the
baselines the AUCs should be read against) and `formats.curves`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import require
from ..formats.curves import write_curves
from ..formats.records import write_records
from ..formats.saliency import SaliencyFile
from ..numeric import auc
from ..runtime.forward import ModelRunner
from .causal import CurveRequest, SharedScores, causal_curve_sets, check_saliency, default_step
from .substrates import DEFAULT_SUBSTRATE, canonical_substrate

log = logging.getLogger(__name__)

@dataclass
class Evaluation:
    image_id: list[str]
    method_id: str
    step: int
    deletion: np.ndarray  # (n, steps + 1) float64
    insertion: np.ndarray
    records: list[dict]
    deletion_substrate: str
    insertion_substrate: str


def check_ids(saliency_ids: Sequence[str], image_ids: Sequence[str], source: str) -> None:
    """UserError unless the saliency file covers exactly these images, in this order."""
    require(len(saliency_ids) == len(image_ids),
            f"{source} holds {len(saliency_ids)} images but the image shard has {len(image_ids)}; "
            "evaluate the shard it was explained on (--shard)")
    for position, (found, expected) in enumerate(zip(saliency_ids, image_ids)):
        require(found == expected, f"{source} image {position} is {found!r} but the image shard has {expected!r}; "
                                   "use the image table and --shard it was explained with")


def evaluate_saliency(model: torch.nn.Module | ModelRunner, images: torch.Tensor, image_ids: Sequence[str],
                      saliency: SaliencyFile, *, step: int | None = None,
                      deletion_substrate: str = DEFAULT_SUBSTRATE["deletion"],
                      insertion_substrate: str = DEFAULT_SUBSTRATE["insertion"], batch_size: int = 64,
                      shared_scores: SharedScores | None = None, seed: int = 0, source: str = "saliency file",
                      progress: bool = False) -> Evaluation:
    """Deletion and insertion curves and per-image records of one method on `images`.

    The explained class is the one stored in the saliency file. Pass one `shared_scores`
    to several calls on the same images to score the shared first and last points once.
    """
    deletion_substrate, insertion_substrate = map(canonical_substrate, (deletion_substrate, insertion_substrate))
    check_ids(saliency.image_id, image_ids, source)
    check_saliency(saliency.saliency, tuple(images.shape), [f"method {saliency.method_id} image {i}" for i in image_ids])
    runner = model if isinstance(model, ModelRunner) else ModelRunner(model, batch_size=batch_size)
    shared = shared_scores if shared_scores is not None else SharedScores(images, seed)
    step = default_step(images.shape[3]) if step is None else step
    substrates = {"deletion": deletion_substrate, "insertion": insertion_substrate}
    if progress:
        log.info(f"evaluate {saliency.method_id}: deletion ({deletion_substrate}) and insertion ({insertion_substrate}) "
                 f"on {len(image_ids)} images")
    requests = [CurveRequest(saliency.saliency, mode, substrate, saliency.target) for mode, substrate in substrates.items()]
    curves = dict(zip(substrates, causal_curve_sets(runner, images, requests, step=step, shared_scores=shared, seed=seed,
                                                    progress=progress)))
    records = make_records(saliency, curves["deletion"], curves["insertion"], substrates, int(step))
    return Evaluation(list(image_ids), saliency.method_id, int(step), curves["deletion"], curves["insertion"], records,
                      deletion_substrate, insertion_substrate)


def make_records(saliency: SaliencyFile, deletion: np.ndarray, insertion: np.ndarray, substrates: dict[str, str],
                 step: int) -> list[dict]:
    """One record per image; `substrates` ({"deletion": name, "insertion": name}) and `step` (pixels per
    step) say how the AUCs were measured."""
    flat = saliency.saliency.reshape(len(saliency.saliency), -1)
    constant = flat.max(axis=1) == flat.min(axis=1)
    deletion_auc, insertion_auc = auc(deletion), auc(insertion)
    return [
        dict(image_id=image_id, method_id=saliency.method_id, method=saliency.method, variant=saliency.variant,
             target=int(saliency.target[i]), top1_prob=float(deletion[i, 0]),  # deletion starts on the image
             deletion_auc=float(deletion_auc[i]), insertion_auc=float(insertion_auc[i]),
             deleted_prob=float(deletion[i, -1]), blurred_prob=float(insertion[i, 0]), constant_map=bool(constant[i]),
             deletion_substrate=substrates["deletion"], insertion_substrate=substrates["insertion"], step=step)
        for i, image_id in enumerate(saliency.image_id)
    ]


def write_evaluation(evaluation: Evaluation, records_path: str | os.PathLike, curves_path: str | os.PathLike) -> None:
    write_records(records_path, evaluation.records)
    write_curves(curves_path, evaluation.image_id, evaluation.deletion, evaluation.insertion,
                 method_id=evaluation.method_id, step=evaluation.step, deletion_substrate=evaluation.deletion_substrate,
                 insertion_substrate=evaluation.insertion_substrate)
