"""RISE masks: generation (binary, Gaussian, Perlin) and HDF5 mask sets streamed in chunks.

A mask is an s x s grid of values in [0, 1], upsampled bilinearly to (s + 1) * cell
(cell = ceil(H / s) by ceil(W / s)) and cropped to H x W at a random integer shift
x in [0, cellH), y in [0, cellW) (PROTOCOL.md, "RISE masks").

Border band: the original RISE code resizes with scikit-image
`resize(order=1, mode='reflect')`, which mirrors the grid at its border; we use
`torch.nn.functional.interpolate(mode='bilinear', align_corners=False)`, which clamps.
The two agree inside the grid and differ only in a band of half a cell at the border of
the upsampled grid (PROTOCOL.md accepts either if documented). Saliency is compared on
given masks, so this does not affect the golden comparisons.

Reproducibility: every random number (grids, Perlin bases and phases, shifts) is drawn
up front from one `torch.Generator(seed)`, in a fixed order, before any mask is rendered;
rendering in chunks therefore gives the same masks for every chunk size.
"""
from __future__ import annotations

import json
import math
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError, atomic_path, require

KINDS = ("binary", "gaussian", "perlin")
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "binary": {},
    "gaussian": {"mean": 0.5, "std": 0.25},
    # frequency: noise periods across the grid (the study: 5); phase: see _perlin_grids.
    "perlin": {"frequency": 5.0, "octaves": 5, "phase": True},
}
STORAGE_DTYPES = ("float16", "float32")
# noise.pnoise2 indexes a 512-entry permutation table with (coordinate & 255) + base twice;
# base < 128 and integer coordinates < 128 keep every index inside the table.
PERLIN_BASES = 128
PERLIN_MAX_COORDINATE = 128
RENDER_CHUNK = 256
T = TypeVar("T")


@dataclass
class MaskPlan:
    """Every random draw of a mask set: the grids (n, s, s) and the crop shifts (n, 2)."""
    grids: torch.Tensor
    shifts: torch.Tensor
    size: tuple[int, int]
    s: int
    params: dict[str, Any]

    def render(self, part: slice = slice(None)) -> torch.Tensor:
        return render_masks(self.grids[part], self.shifts[part], self.size, self.s)


def cell_size(size: tuple[int, int], s: int) -> tuple[int, int]:
    return math.ceil(size[0] / s), math.ceil(size[1] / s)


def check_mask_args(kind: str, n: int, size, s: int, p: float | None, params: dict[str, Any]) -> dict[str, Any]:
    """Validate the arguments; return the generator params with their defaults filled in."""
    require(kind in KINDS, f"unknown mask kind {kind!r}; use one of {', '.join(KINDS)}")
    require(isinstance(n, int) and n >= 1, f"the number of masks must be at least 1, got {n}")
    require(len(size) == 2 and all(int(v) >= 1 for v in size), f"mask size must be two positive integers (H W), got {size}")
    require(isinstance(s, int) and s >= 1, f"grid size s must be an integer >= 1, got {s}")
    if kind == "binary":
        require(p is not None, "binary masks need a keep probability p in (0, 1], e.g. --p 0.5")
        require(0 < p <= 1, f"keep probability p must lie in (0, 1], got {p}")
    else:
        require(p is None, f"p is the keep probability of binary masks; {kind} masks take no p (drop it)")
    unknown = sorted(set(params) - set(DEFAULT_PARAMS[kind]))
    require(not unknown, f"unknown parameter(s) {', '.join(unknown)} for {kind} masks; "
                         f"allowed: {', '.join(DEFAULT_PARAMS[kind]) or 'none'}")
    resolved = {**DEFAULT_PARAMS[kind], **{k: v for k, v in params.items() if v is not None}}
    if kind == "gaussian":
        require(resolved["std"] >= 0, f"gaussian std must be >= 0, got {resolved['std']}")
    if kind == "perlin":
        require(int(resolved["octaves"]) >= 1, f"perlin octaves must be >= 1, got {resolved['octaves']}")
        require(resolved["frequency"] > 0, f"perlin frequency must be > 0, got {resolved['frequency']}")
        top = (resolved["frequency"] + 1) * 2 ** (int(resolved["octaves"]) - 1)
        require(top < PERLIN_MAX_COORDINATE, f"perlin frequency {resolved['frequency']} with {resolved['octaves']} octaves "
                                             f"exceeds the noise package's safe range; keep (frequency + 1) * 2^(octaves - 1) < {PERLIN_MAX_COORDINATE}")
        resolved["octaves"] = int(resolved["octaves"])
        resolved["frequency"] = float(resolved["frequency"])
        resolved["phase"] = bool(resolved["phase"])
    return resolved


def _perlin_grids(bases: torch.Tensor, phases: torch.Tensor, s: int, frequency: float, octaves: int) -> torch.Tensor:
    """Perlin grids sampled at coordinates (i / s) * frequency (+ the mask's phase), min-max
    normalised per grid. The noise package is scalar, so this loops over grid cells (n * s * s
    calls), never over pixels.

    `phase` (default on) adds a random offset in [0, 1)^2 to each mask's coordinates: the
    noise package only takes ~128 safe bases, so without it a set of N = 6000 masks would
    repeat each grid ~47 times. phase=False gives the study's fixed coordinates i/s, j/s.
    """
    from noise import pnoise2

    steps = np.arange(s) / s * frequency
    grids = np.empty((len(bases), s, s), dtype=np.float64)
    for index, (base, (di, dj)) in enumerate(zip(bases.tolist(), phases.tolist())):
        grids[index] = [[pnoise2(u + di, v + dj, octaves=octaves, base=base) for v in steps] for u in steps]
    low = grids.min(axis=(1, 2), keepdims=True)
    span = grids.max(axis=(1, 2), keepdims=True) - low
    # A constant grid (possible only for degenerate settings) becomes all zeros, not NaN.
    grids = np.divide(grids - low, span, out=np.zeros_like(grids), where=span > 0)
    return torch.from_numpy(grids.astype(np.float32))


def plan_masks(kind: str, n: int, size, *, s: int = 8, p: float | None = None, seed: int = 0, **params) -> MaskPlan:
    """Draw every random number of the set, in a fixed order, from one torch.Generator(seed)."""
    params = check_mask_args(kind, n, size, s, p, params)
    size = (int(size[0]), int(size[1]))
    generator = torch.Generator().manual_seed(int(seed))
    if kind == "binary":
        grids = (torch.rand((n, s, s), generator=generator) < p).float()
    elif kind == "gaussian":
        grids = torch.randn((n, s, s), generator=generator).mul_(params["std"]).add_(params["mean"]).clamp_(0, 1)
    else:
        bases = torch.randint(0, PERLIN_BASES, (n,), generator=generator)
        phases = torch.rand((n, 2), generator=generator, dtype=torch.float64)
        if not params["phase"]:
            phases.zero_()
        grids = _perlin_grids(bases, phases, s, params["frequency"], params["octaves"])
    cell_h, cell_w = cell_size(size, s)
    shifts = torch.stack([torch.randint(0, cell_h, (n,), generator=generator),
                          torch.randint(0, cell_w, (n,), generator=generator)], dim=1)
    return MaskPlan(grids, shifts, size, s, params)


def interpolation_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) weights of 1-D linear upsampling with align_corners=False (clamped border),
    taken from F.interpolate itself so the weights are exactly torch's."""
    return F.interpolate(torch.eye(n_in)[None], size=n_out, mode="linear", align_corners=False)[0].T.contiguous()


def render_masks(grids: torch.Tensor, shifts: torch.Tensor, size: tuple[int, int], s: int) -> torch.Tensor:
    """Upsample (m, s, s) grids and crop each at its own shift: (m, H, W), vectorised.

    Bilinear upsampling is separable, so upsample-then-crop equals rows @ grid @ cols.T with
    the cropped rows of the 1-D interpolation matrices: two small batched matmuls instead of
    materialising the (m, (s+1)*cell, (s+1)*cell) upsampled grids (equal to F.interpolate
    followed by the crop up to float32 rounding; see tests/test_masks.py).
    """
    height, width = size
    cell_h, cell_w = cell_size(size, s)
    row_weights = interpolation_matrix(s, (s + 1) * cell_h)[shifts[:, 0, None] + torch.arange(height)]  # (m, H, s)
    col_weights = interpolation_matrix(s, (s + 1) * cell_w)[shifts[:, 1, None] + torch.arange(width)]  # (m, W, s)
    return torch.bmm(torch.bmm(row_weights, grids.float()), col_weights.transpose(1, 2)).clamp_(0, 1)


def generate_masks(kind: str, n: int, size, *, s: int = 8, p: float | None = None, seed: int = 0, **params) -> torch.Tensor:
    """n RISE masks of `kind` ("binary" needs p; "gaussian": mean, std; "perlin": frequency,
    octaves, phase) as an (n, H, W) float32 tensor in [0, 1]."""
    plan = plan_masks(kind, n, size, s=s, p=p, seed=seed, **params)
    return torch.cat([plan.render(slice(start, start + RENDER_CHUNK)) for start in range(0, n, RENDER_CHUNK)])


def write_masks(path: str | os.PathLike, kind: str, n: int, size, *, s: int = 8, p: float | None = None, seed: int = 0,
                chunk: int = RENDER_CHUNK, dtype: str = "float16", progress: bool = False, **params) -> "MaskSet":
    """Generate a mask set and write it to HDF5 chunk by chunk (never all n masks in memory).

    float16 storage halves the file (6000 x 224 x 224: 0.6 GB instead of 1.2 GB) and changes
    saliency maps by < 1e-3 relative (tests/test_masks.py).
    """
    import h5py
    from tqdm import tqdm

    from . import __version__

    require(dtype in STORAGE_DTYPES, f"unknown mask storage dtype {dtype!r}; use {' or '.join(STORAGE_DTYPES)}")
    require(isinstance(chunk, int) and chunk >= 1, f"chunk must be a positive integer, got {chunk}")
    plan = plan_masks(kind, n, size, s=s, p=p, seed=seed, **params)
    height, width = plan.size
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        dataset = handle.create_dataset("masks", shape=(n, height, width), dtype=dtype,
                                        chunks=(min(chunk, n, storage_chunk(height, width, dtype)), height, width))
        for start in tqdm(range(0, n, chunk), desc=f"{kind} masks", unit="chunk", disable=not progress):
            part = slice(start, min(start + chunk, n))
            dataset[part] = plan.render(part).numpy().astype(dtype)
        handle.attrs.update(kind=kind, p=float("nan") if p is None else float(p), s=s, n=n, seed=int(seed),
                            height=height, width=width, params=json.dumps(plan.params, sort_keys=True),
                            dtype=dtype, version=__version__)
    return MaskSet(path)


def storage_chunk(height: int, width: int, dtype: str) -> int:
    """Masks per HDF5 chunk: about 4 MB, a good size for sequential streaming."""
    return max(1, (4 << 20) // (height * width * np.dtype(dtype).itemsize))


class MaskSet:
    """A mask set in an HDF5 file (dataset `masks` (N, H, W)), read in chunks on demand."""

    def __init__(self, path: str | os.PathLike):
        import h5py

        self.path = Path(path)
        require(self.path.is_file(), f"mask file not found: {self.path}; create it with `saliency-bench masks`")
        try:
            with h5py.File(self.path, "r") as handle:
                dataset = handle["masks"]
                require(dataset.ndim == 3, f"{self.path}: dataset 'masks' has shape {dataset.shape}, expected (N, H, W)")
                self._shape = tuple(int(v) for v in dataset.shape)
                raw = dict(handle.attrs)
        except (OSError, KeyError) as error:
            raise UserError(f"{self.path} is not a mask file ({error}); create it with `saliency-bench masks`") from None
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

    def iter_chunks(self, chunk_size: int = RENDER_CHUNK) -> Iterator[torch.Tensor]:
        """Yield the masks in order, `chunk_size` at a time, as float32 (c, H, W) tensors."""
        import h5py

        require(chunk_size >= 1, f"chunk_size must be at least 1, got {chunk_size}")
        with h5py.File(self.path, "r") as handle:
            dataset = handle["masks"]
            for start in range(0, len(self), chunk_size):
                yield torch.from_numpy(dataset[start:start + chunk_size].astype(np.float32))

    def read(self) -> torch.Tensor:
        """All masks at once (small sets and tests only)."""
        return torch.cat(list(self.iter_chunks()))

    def mean(self, chunk_size: int = RENDER_CHUNK) -> float:
        """Mean of all mask values, streamed (float64 accumulation), cached."""
        if self._mean is None:
            total = sum(chunk.sum(dtype=torch.float64).item() for chunk in self.iter_chunks(chunk_size))
            self._mean = total / (len(self) * self.size[0] * self.size[1])
        return self._mean


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
