"""Mask files: one RISE mask set in HDF5, written by `masks`, streamed by RISE in chunks.

Layout:
- `masks`  float16 or float32 (N, H, W), HDF5 chunks of about 4 MB (`storage_chunk`)
- `grids`  float32 (N, s, s), `shifts` int64 (N, 2) and, for the study's Perlin engine,
  `perlin_seeds` int64 (N,): every random draw, so the set can be re-rendered and audited
- attrs: kind, p (NaN when none), s, n, seed, set_id, generator_seed, upsample, height, width,
  params (JSON), dtype, version
"""
from __future__ import annotations

import json
import math
import os
import queue
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

import h5py
import numpy as np
import torch

from .. import __version__
from ..errors import atomic_path, require
from .hdf5 import create_file, open_stage_file

STORAGE_DTYPES = ("float16", "float32")
_TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32}
READ_CHUNK = 256  # masks per chunk when streaming
DRAWS = ("grids", "shifts", "perlin_seeds")
DRAW_DTYPES = {"grids": np.float32, "shifts": np.int64, "perlin_seeds": np.int64}
T = TypeVar("T")


def storage_chunk(height: int, width: int, dtype: str) -> int:
    """Masks per HDF5 chunk: about 4 MB, a good size for sequential streaming."""
    return max(1, (4 << 20) // (height * width * np.dtype(dtype).itemsize))


def to_storage(masks: torch.Tensor | np.ndarray, dtype: str) -> np.ndarray:
    """Masks as stored: `dtype` with round-to-nearest-even, the same bits as numpy's `astype`.
    Cast by torch, whose vectorised float32 -> float16 conversion is about 5x numpy's (that cast
    was half of the masks stage)."""
    return torch.as_tensor(masks).to(_TORCH_DTYPES[dtype]).numpy()


def from_storage(masks: np.ndarray) -> torch.Tensor:
    """Stored masks as float32 (exact: every float16 is a float32), cast by torch (3x numpy's astype)."""
    return torch.from_numpy(masks).float()


def write_mask_file(path: str | os.PathLike, n: int, size: tuple[int, int],
                    chunks: Iterable[tuple[slice, torch.Tensor | np.ndarray]],
                    draws: dict[str, np.ndarray], attrs: dict[str, Any], *, dtype: str = "float16",
                    chunk: int = READ_CHUNK) -> "MaskSet":
    """Write n masks arriving as (rows, masks) chunks, never all at once, plus their draws and attrs."""
    require(dtype in STORAGE_DTYPES, f"unknown mask storage dtype {dtype!r}; use {' or '.join(STORAGE_DTYPES)}")
    height, width = size
    with atomic_path(path) as tmp, create_file(tmp) as handle:
        dataset = handle.create_dataset("masks", shape=(n, height, width), dtype=dtype,
                                        chunks=(min(chunk, n, storage_chunk(height, width, dtype)), height, width))
        for rows, masks in chunks:
            dataset[rows] = to_storage(masks, dtype)
        for name, values in draws.items():
            handle.create_dataset(name, data=np.asarray(values).astype(DRAW_DTYPES[name]))
        stored = {key: value for key, value in attrs.items() if key != "params"}
        stored["p"] = float("nan") if stored.get("p") is None else float(stored["p"])
        handle.attrs.update({**stored, "height": height, "width": width,
                             "params": json.dumps(attrs.get("params", {}), sort_keys=True), "dtype": dtype,
                             "version": __version__})
    return MaskSet(path)


class MaskSet:
    """A mask set in an HDF5 file (dataset `masks` (N, H, W)), read in chunks on demand."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with open_stage_file(self.path, "mask file", "masks") as handle:
            dataset = handle["masks"]
            require(dataset.ndim == 3, f"{self.path}: dataset 'masks' has shape {dataset.shape}, expected (N, H, W); "
                                       "regenerate it with `saliency-bench masks`")
            self._shape = tuple(int(v) for v in dataset.shape)
            raw = dict(handle.attrs)
        self.attrs = {key: (value.item() if isinstance(value, np.generic) else value) for key, value in raw.items()}
        if isinstance(self.attrs.get("p"), float) and math.isnan(self.attrs["p"]):
            self.attrs["p"] = None
        if isinstance(self.attrs.get("params"), str):
            self.attrs["params"] = json.loads(self.attrs["params"])
        self._mean: float | None = None

    def __len__(self) -> int:
        return self._shape[0]

    @property
    def size(self) -> tuple[int, int]:
        return self._shape[1], self._shape[2]

    def __repr__(self) -> str:
        return f"MaskSet({str(self.path)!r}, n={len(self)}, size={self.size}, kind={self.attrs.get('kind')!r})"

    def iter_chunks(self, chunk_size: int = READ_CHUNK) -> Iterator[torch.Tensor]:
        """Yield the masks in order, `chunk_size` at a time, as float32 (c, H, W) tensors."""
        require(chunk_size >= 1, f"chunk_size must be at least 1, got {chunk_size}")
        with h5py.File(self.path, "r") as handle:
            dataset = handle["masks"]
            for start in range(0, len(self), chunk_size):
                yield from_storage(dataset[start:start + chunk_size])

    def read(self) -> torch.Tensor:
        """All masks at once (small sets and tests only)."""
        return torch.cat(list(self.iter_chunks()))

    def first(self, count: int) -> np.ndarray:
        """The first `count` masks (at least one; never the whole set), float32 (for figures)."""
        with h5py.File(self.path, "r") as handle:
            return from_storage(handle["masks"][: max(1, count)]).numpy()

    def mean(self, chunk_size: int = READ_CHUNK) -> float:
        """Mean of all mask values, streamed (float64 accumulation), cached."""
        if self._mean is None:
            total = sum(chunk.sum(dtype=torch.float64).item() for chunk in self.iter_chunks(chunk_size))
            self._mean = total / (len(self) * self.size[0] * self.size[1])
        return self._mean

    def read_draws(self) -> dict[str, np.ndarray]:
        """The stored random draws (`grids`, `shifts` and, if any, `perlin_seeds`)."""
        with h5py.File(self.path, "r") as handle:
            missing = [name for name in DRAWS[:2] if name not in handle]
            require(not missing, f"{self.path} has no {' or '.join(missing)} (an older mask file); "
                                 f"regenerate the masks with `saliency-bench masks` (the workflow does so when rerun)")
            return {name: handle[name][()].astype(DRAW_DTYPES[name]) for name in DRAWS if name in handle}


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield `items` in order while a background thread reads up to `depth` of them ahead.

    For mask chunks: the HDF5 read, the float16 -> float32 cast (and pinning, on CUDA) of
    the next chunk overlap the forward passes of the current one, so a GPU is not left
    waiting for the disk. The values are exactly those of iterating `items` directly.
    At most depth + 2 items exist at once (queued, being read, in use). An error in the
    reader is raised here; leaving the loop early stops the reader and closes `items`.
    """
    require(isinstance(depth, int) and depth >= 1, f"prefetch depth must be a positive integer, got {depth}")
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():  # a bounded wait, so a consumer that left cannot block the reader forever
            try:
                slots.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        iterator = None
        try:
            iterator = iter(items)
            for item in iterator:
                if not offer(("item", item)):
                    return
            offer(("end", None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer and raised there
            offer(("error", error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # e.g. MaskSet.iter_chunks closes its HDF5 file

    reader = threading.Thread(target=read, name="saliency-bench-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "error":
                raise value
            if kind == "end":
                return
            yield value
    finally:
        stop.set()
        reader.join()
