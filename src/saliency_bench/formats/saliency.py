"""Saliency files: one HDF5 file per (method configuration, shard of images), written by `explain`.

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

from .. import __version__
from ..errors import atomic_path, require
from .hdf5 import create_file, open_stage_file, read_strings, string_dataset
from .json_files import parse_json_object

WHAT, COMMAND = "saliency file", "explain"


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
    with atomic_path(path) as tmp, create_file(tmp) as handle:
        handle.create_dataset("saliency", data=saliency, compression="gzip", compression_opts=1)
        string_dataset(handle, "image_id", image_id)
        handle.create_dataset("target", data=np.asarray(target, dtype=np.int64))
        handle.create_dataset("top1_prob", data=np.asarray(top1_prob, dtype=np.float32))
        handle.attrs.update(method_id=method_id, method=method, variant=variant,
                            params=json.dumps(params or {}, sort_keys=True), version=__version__)


def read_saliency(path: str | os.PathLike) -> SaliencyFile:
    with open_stage_file(path, WHAT, COMMAND) as handle:
        return _read(handle, slice(None))


def read_rows(path: str | os.PathLike, rows: Sequence[int]) -> SaliencyFile:
    """The given rows only, in that order: memory stays bounded however large the file is."""
    with open_stage_file(path, WHAT, COMMAND) as handle:
        return _read(handle, list(rows))


def _read(handle: h5py.File, rows: slice | list[int]) -> SaliencyFile:
    ids = read_strings(handle["image_id"])
    shape = handle["saliency"].shape
    require(len(shape) == 3 and shape[0] == len(ids) == len(handle["target"]) == len(handle["top1_prob"]),
            f"{handle.filename} is not a {WHAT}: saliency {shape} is not one (H, W) map per image id ({len(ids)}); "
            f"rerun `saliency-bench {COMMAND}`")
    if isinstance(rows, slice):
        maps = handle["saliency"][()]
    else:  # one map at a time, in the order asked (h5py's fancy indexing wants sorted, unique rows)
        height, width = handle["saliency"].shape[1:]
        maps = np.stack([handle["saliency"][row] for row in rows]) if rows else np.zeros((0, height, width), np.float32)
        ids = [ids[row] for row in rows]
    finite = np.isfinite(maps).reshape(len(maps), -1).all(axis=1)  # every reader (metrics, localisation, figures)
    require(bool(finite.all()), f"{handle.filename}: saliency of method {handle.attrs.get('method_id')} image "
            f"{ids[int(np.argmin(finite))]} holds NaN or infinite values; fix or re-run that explanation")
    return SaliencyFile(
        saliency=maps,
        image_id=ids,
        target=handle["target"][()][rows].astype(np.int64),  # the (n,) vectors are small: read whole, index here
        top1_prob=handle["top1_prob"][()][rows].astype(np.float32),
        method_id=str(handle.attrs["method_id"]),
        method=str(handle.attrs["method"]),
        variant=str(handle.attrs["variant"]),
        params=_params(handle),
    )


def read_image_ids(path: str | os.PathLike) -> list[str]:
    """Only the ids of a saliency file, without reading its maps."""
    with open_stage_file(path, WHAT, COMMAND) as handle:
        return read_strings(handle["image_id"])


def read_params(path: str | os.PathLike) -> dict[str, Any]:
    """The parameters the maps were computed with (method, precision, batch size, ...)."""
    with open_stage_file(path, WHAT, COMMAND) as handle:
        return _params(handle)


def _params(handle: h5py.File) -> dict[str, Any]:
    fix = f"rerun `saliency-bench {COMMAND}`"
    return parse_json_object(handle.attrs.get("params", "{}"), f"the params attribute of {handle.filename}", fix)
