"""What the HDF5 formats share: utf-8 string datasets and one way to open a stage's file, so a
missing or foreign file gives the same one-line error (which stage to run) everywhere."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Sequence

import h5py
import numpy as np

from ..errors import UserError, require

STRING = h5py.string_dtype("utf-8")


def string_dataset(handle: h5py.Group, name: str, values: Sequence[str]) -> None:
    handle.create_dataset(name, data=np.array(list(values), dtype=object), dtype=STRING)


def read_strings(dataset: h5py.Dataset) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else str(value) for value in dataset[()]]


@contextlib.contextmanager
def open_stage_file(path: str | os.PathLike, what: str, command: str) -> Iterator[h5py.File]:
    """`path` opened read-only; a missing file, or one without the datasets the reader asks
    for, is a UserError that names `what` (e.g. "saliency file") and the `command` to run."""
    require(os.path.isfile(path), f"{what} not found: {path}; run `saliency-bench {command}` first")
    try:
        with h5py.File(path, "r") as handle:
            yield handle
    except (OSError, KeyError) as error:
        raise UserError(f"{path} is not a {what} ({error}); rerun `saliency-bench {command}`") from None
