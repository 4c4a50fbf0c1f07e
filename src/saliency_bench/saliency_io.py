"""Saliency files: one HDF5 file per (method configuration, shard of images).

Layout (the contract between `explain`, `evaluate`, `aggregate` and `figures`):
- `saliency`  float32 (n, H, W): the map of the explained class of each image
- `image_id`  utf-8 strings (n,): ids from the image table
- `target`    int64 (n,): the explained class (top-1 of the unperturbed image by default)
- `top1_prob` float32 (n,): softmax probability of that class on the unperturbed image
- attrs: method_id, method, variant, params (JSON), version
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import h5py
import numpy as np

from . import __version__
from .errors import atomic_path, require

STRING = h5py.string_dtype("utf-8")


@dataclass
class SaliencyFile:
    saliency: np.ndarray
    image_id: list[str]
    target: np.ndarray
    top1_prob: np.ndarray
    method_id: str
    method: str
    variant: str
    params: dict[str, Any] = field(default_factory=dict)


def write_saliency(path: str | os.PathLike, saliency: np.ndarray, image_id: Sequence[str], target: np.ndarray,
                   top1_prob: np.ndarray, *, method_id: str, method: str, variant: str,
                   params: dict[str, Any] | None = None) -> None:
    saliency = np.asarray(saliency, dtype=np.float32)
    require(saliency.ndim == 3 and len(saliency) == len(image_id) == len(target) == len(top1_prob),
            f"saliency {saliency.shape} does not match {len(image_id)} image ids")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("saliency", data=saliency, compression="gzip", compression_opts=1)
        handle.create_dataset("image_id", data=np.array(list(image_id), dtype=object), dtype=STRING)
        handle.create_dataset("target", data=np.asarray(target, dtype=np.int64))
        handle.create_dataset("top1_prob", data=np.asarray(top1_prob, dtype=np.float32))
        handle.attrs.update(method_id=method_id, method=method, variant=variant,
                            params=json.dumps(params or {}, sort_keys=True), version=__version__)


def read_saliency(path: str | os.PathLike) -> SaliencyFile:
    require(os.path.isfile(path), f"saliency file not found: {path}; run `saliency-bench explain` first")
    try:
        with h5py.File(path, "r") as handle:
            return SaliencyFile(
                saliency=handle["saliency"][()],
                image_id=[s.decode() if isinstance(s, bytes) else str(s) for s in handle["image_id"][()]],
                target=handle["target"][()],
                top1_prob=handle["top1_prob"][()],
                method_id=str(handle.attrs["method_id"]),
                method=str(handle.attrs["method"]),
                variant=str(handle.attrs["variant"]),
                params=json.loads(handle.attrs.get("params", "{}")),
            )
    except (OSError, KeyError) as error:
        from .errors import UserError

        raise UserError(f"{path} is not a saliency file ({error}); rerun `saliency-bench explain`") from None
