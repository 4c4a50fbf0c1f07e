"""What the HDF5 formats share: utf-8 string datasets and one way to open a stage's file and to
create one, so a missing or foreign file, or one HDF5 cannot lock, gives the same one-line error
(which stage to run, or how to turn locking off) everywhere."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Sequence

import h5py
import numpy as np

from ..errors import UserError, require

STRING = h5py.string_dtype("utf-8")
# HDF5 locks every file it opens; where the file system has no locks (some NFS, Lustre or GPFS
# mounts) or another process holds the file, opening fails with this in the message.
LOCK_FAILURE = "unable to lock file"
LOCK_FIX = ("another process has it open, or the file system does not support file locks (NFS, Lustre, GPFS); "
            "on such a file system set HDF5_USE_FILE_LOCKING=FALSE in the environment (README, Cluster)")


def lock_error(path: str | os.PathLike, error: OSError) -> UserError | None:
    """The one-line error for an HDF5 file that could not be locked; None for any other failure."""
    return UserError(f"HDF5 cannot lock {path}: {LOCK_FIX}") if LOCK_FAILURE in str(error) else None


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
        locked = lock_error(path, error) if isinstance(error, OSError) else None
        raise (locked or UserError(f"{path} is not a {what} ({error}); rerun `saliency-bench {command}`")) from None


@contextlib.contextmanager
def create_file(path: str | os.PathLike) -> Iterator[h5py.File]:
    """A new HDF5 file at `path` (a stage's temporary output), opened for writing."""
    try:
        handle = h5py.File(path, "w")
    except OSError as error:
        locked = lock_error(path, error)
        if locked is None:
            raise
        raise locked from None
    with handle:
        yield handle
