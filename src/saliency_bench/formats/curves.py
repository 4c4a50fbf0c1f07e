"""Curves files: the deletion and insertion curves of one (method configuration, shard), HDF5,
written by `evaluate`.

Layout: `image_id` utf-8 strings (n,); `deletion` and `insertion` float64 (n, steps + 1);
attrs method_id, step, deletion_substrate, insertion_substrate, version.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .. import __version__
from ..errors import atomic_path, require
from .hdf5 import create_file, open_stage_file, read_strings, string_dataset


@dataclass
class CurveSet:
    """All curves of one method: rows aligned with `image_id`; `substrates` {"deletion": name,
    "insertion": name} where the files say them (the figures name the curves' end points)."""
    image_id: list[str]
    deletion: np.ndarray
    insertion: np.ndarray
    substrates: dict[str, str] = field(default_factory=dict)


def write_curves(path: str | os.PathLike, image_id: list[str], deletion: np.ndarray, insertion: np.ndarray, *,
                 method_id: str, step: int, deletion_substrate: str, insertion_substrate: str) -> None:
    with atomic_path(path) as tmp, create_file(tmp) as handle:
        string_dataset(handle, "image_id", image_id)
        handle.create_dataset("deletion", data=np.asarray(deletion, dtype=np.float64))
        handle.create_dataset("insertion", data=np.asarray(insertion, dtype=np.float64))
        handle.attrs.update(method_id=method_id, step=step, version=__version__,
                            deletion_substrate=deletion_substrate, insertion_substrate=insertion_substrate)


def read_curves(path: str | os.PathLike) -> tuple[str, CurveSet]:
    """(method id, curves) of one file."""
    with open_stage_file(path, "curves file", "evaluate") as handle:
        ids = read_strings(handle["image_id"])
        deletion, insertion = handle["deletion"][()], handle["insertion"][()]
        method_id = str(handle.attrs["method_id"])
        substrates = {mode: str(handle.attrs[f"{mode}_substrate"]) for mode in ("deletion", "insertion")
                      if f"{mode}_substrate" in handle.attrs}
    require(deletion.ndim == 2 and deletion.shape == insertion.shape and len(ids) == len(deletion),
            f"{path}: deletion {deletion.shape} / insertion {insertion.shape} / {len(ids)} ids disagree; rerun `saliency-bench evaluate`")
    return method_id, CurveSet(ids, deletion, insertion, substrates)


def read_curve_files(paths: Iterable[str | os.PathLike]) -> dict[str, CurveSet]:
    """Concatenate curves files (one per method and shard) per method id, in the given order."""
    parts: dict[str, list[CurveSet]] = defaultdict(list)
    for path in paths:
        method_id, curves = read_curves(path)
        parts[method_id].append(curves)
    joined = {}
    for method_id, chunks in parts.items():
        widths = {chunk.deletion.shape[1] for chunk in chunks}
        require(len(widths) == 1, f"curves of {method_id} have different lengths {sorted(widths)}; evaluate all shards with the same step")
        substrates = {tuple(sorted(chunk.substrates.items())) for chunk in chunks}
        require(len(substrates) == 1, f"curves of {method_id} were measured with different substrates; evaluate all "
                                      "shards with the same metrics.deletion_substrate and metrics.insertion_substrate")
        joined[method_id] = CurveSet([i for chunk in chunks for i in chunk.image_id],
                                     np.concatenate([c.deletion for c in chunks]), np.concatenate([c.insertion for c in chunks]),
                                     chunks[0].substrates)
    return joined
