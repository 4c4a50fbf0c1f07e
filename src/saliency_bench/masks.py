"""RISE masks: generation (binary, Gaussian, Perlin) and HDF5 mask sets streamed in chunks.

A mask is an s x s grid of values in [0, 1], upsampled bilinearly to (s + 1) * cell
(cell = ceil(H / s) by ceil(W / s)) and cropped to H x W at a random integer shift
x in [0, cellH), y in [0, cellW) (PROTOCOL.md, "RISE masks").

Upsampling (`upsample`): `reflect` (the default, the protocol) equals scikit-image
`resize(order=1, mode='reflect', anti_aliasing=False)` as the RISE authors and the study call it:
half-pixel centres, mirrored at the grid border (index -1 reads index 1). `clamp` is
`F.interpolate(mode='bilinear', align_corners=False)` (index -1 reads index 0); the two differ
only in a border band of half a cell.

Perlin grids come from perlin.py: the study's engine (default) or fBm.

Reproducibility: every random number (grids, Perlin seeds or bases and phases, shifts) is
drawn up front from one `torch.Generator`, in a fixed order, before any mask is rendered;
rendering in chunks therefore gives the same masks for every chunk size. Each set's
generator seed is derived from the configured seed and the set's id (`set_seed`), so
the sets of one config are independent draws (the study drew them from one continuing
stream). The draws are stored beside the masks (`grids`, `shifts`, `perlin_seeds`).
"""
from __future__ import annotations

import functools
import hashlib
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
from .perlin import ENGINES, FBM_BASES, FBM_MAX_COORDINATE, draw_study_seeds, fbm_grids, study_grids

KINDS = ("binary", "gaussian", "perlin")
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "binary": {},
    "gaussian": {"mean": 0.5, "std": 0.25},
    # engine: perlin.ENGINES; frequency: the study's PerlinNoise `octaves` argument (a coordinate
    # scale); octaves and phase: fbm only (see perlin.py).
    "perlin": {"engine": "study", "frequency": 5.0, "octaves": 5, "phase": True},
}
FBM_ONLY = ("octaves", "phase")
UPSAMPLE_MODES = ("reflect", "clamp")
STORAGE_DTYPES = ("float16", "float32")
RENDER_CHUNK = 256
T = TypeVar("T")


@dataclass
class MaskPlan:
    """Every random draw of a mask set: the grids (n, s, s), the crop shifts (n, 2) and, for the
    study's Perlin engine, the per-mask seeds (n,)."""
    grids: torch.Tensor
    shifts: torch.Tensor
    size: tuple[int, int]
    s: int
    params: dict[str, Any]
    upsample: str = "reflect"
    perlin_seeds: torch.Tensor | None = None

    def render(self, part: slice = slice(None)) -> torch.Tensor:
        return render_masks(self.grids[part], self.shifts[part], self.size, self.s, self.upsample)


def cell_size(size: tuple[int, int], s: int) -> tuple[int, int]:
    return math.ceil(size[0] / s), math.ceil(size[1] / s)


def default_set_id(kind: str, p: float | None) -> str:
    """The id a set gets when none is given: the workflow's mask ids (`binary-p0.5`, `gaussian`)."""
    return f"{kind}-p{p:g}" if kind == "binary" and p is not None else kind


def set_seed(seed: int, set_id: str) -> int:
    """The generator seed of one mask set: a stable hash (sha256) of the configured seed and the
    set's id, so that the sets of one config are independent draws (63 bits)."""
    digest = hashlib.sha256(f"{int(seed)}/{set_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _check_perlin(resolved: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    require(resolved["engine"] in ENGINES, f"unknown Perlin engine {resolved['engine']!r}; use one of {', '.join(ENGINES)}")
    require(resolved["frequency"] > 0, f"perlin frequency must be > 0, got {resolved['frequency']}")
    if resolved["engine"] == "study":
        stray = [key for key in FBM_ONLY if key in given]
        require(not stray, f"perlin {' and '.join(stray)} apply to the fbm engine only; drop them or use --perlin-engine fbm")
        return {"engine": "study", "frequency": float(resolved["frequency"])}
    require(int(resolved["octaves"]) >= 1, f"perlin octaves must be >= 1, got {resolved['octaves']}")
    top = (resolved["frequency"] + 1) * 2 ** (int(resolved["octaves"]) - 1)
    require(top < FBM_MAX_COORDINATE, f"perlin frequency {resolved['frequency']} with {resolved['octaves']} octaves "
                                      f"exceeds the noise package's safe range; keep (frequency + 1) * 2^(octaves - 1) < {FBM_MAX_COORDINATE}")
    return {"engine": "fbm", "frequency": float(resolved["frequency"]), "octaves": int(resolved["octaves"]),
            "phase": bool(resolved["phase"])}


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
    given = {k: v for k, v in params.items() if v is not None}
    resolved = {**DEFAULT_PARAMS[kind], **given}
    if kind == "gaussian":
        require(resolved["std"] >= 0, f"gaussian std must be >= 0, got {resolved['std']}")
    if kind == "perlin":
        resolved = _check_perlin(resolved, given)
    return resolved


def plan_masks(kind: str, n: int, size, *, s: int = 8, p: float | None = None, seed: int = 0, set_id: str | None = None,
               upsample: str = "reflect", **params) -> MaskPlan:
    """Draw every random number of the set, in a fixed order, from one torch.Generator seeded
    with set_seed(seed, set_id) (set_id defaults to default_set_id(kind, p))."""
    params = check_mask_args(kind, n, size, s, p, params)
    require(upsample in UPSAMPLE_MODES, f"unknown upsample mode {upsample!r}; use {' or '.join(UPSAMPLE_MODES)}")
    size = (int(size[0]), int(size[1]))
    generator = torch.Generator().manual_seed(set_seed(seed, set_id or default_set_id(kind, p)))
    perlin_seeds = None
    if kind == "binary":
        grids = (torch.rand((n, s, s), generator=generator) < p).float()
    elif kind == "gaussian":
        grids = torch.randn((n, s, s), generator=generator).mul_(params["std"]).add_(params["mean"]).clamp_(0, 1)
    elif params["engine"] == "study":
        perlin_seeds = draw_study_seeds(n, generator)
        grids = study_grids(perlin_seeds, s, params["frequency"])
    else:
        bases = torch.randint(0, FBM_BASES, (n,), generator=generator)
        phases = torch.rand((n, 2), generator=generator, dtype=torch.float64)
        if not params["phase"]:
            phases.zero_()
        grids = fbm_grids(bases, phases, s, params["frequency"], params["octaves"])
    cell_h, cell_w = cell_size(size, s)
    shifts = torch.stack([torch.randint(0, cell_h, (n,), generator=generator),
                          torch.randint(0, cell_w, (n,), generator=generator)], dim=1)
    return MaskPlan(grids, shifts, size, s, params, upsample, perlin_seeds)


@functools.lru_cache(maxsize=32)
def interpolation_matrix(n_in: int, n_out: int, mode: str = "reflect") -> torch.Tensor:
    """(n_out, n_in) weights of 1-D linear upsampling with half-pixel centres.

    clamp: taken from F.interpolate(align_corners=False) itself, so the weights are exactly torch's.
    reflect: source coordinate (o + 0.5) * n_in / n_out - 0.5 as in scipy.ndimage.zoom(grid_mode=True),
    which scikit-image's resize calls; the two neighbours are mirrored into [0, n_in) the numpy
    'reflect' way (index -1 reads index 1, index n_in reads n_in - 2).
    """
    require(mode in UPSAMPLE_MODES, f"unknown upsample mode {mode!r}; use {' or '.join(UPSAMPLE_MODES)}")
    if mode == "clamp":
        return F.interpolate(torch.eye(n_in)[None], size=n_out, mode="linear", align_corners=False)[0].T.contiguous()
    source = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    low = np.floor(source).astype(np.int64)
    frac = source - low
    period = max(2 * n_in - 2, 1)
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    for index, weight in ((low, 1 - frac), (low + 1, frac)):
        folded = np.abs(index) % period
        np.add.at(weights, (np.arange(n_out), np.where(folded >= n_in, period - folded, folded)), weight)
    return torch.from_numpy(weights.astype(np.float32))


def render_masks(grids: torch.Tensor, shifts: torch.Tensor, size: tuple[int, int], s: int,
                 upsample: str = "reflect") -> torch.Tensor:
    """Upsample (m, s, s) grids and crop each at its own shift: (m, H, W), vectorised.

    Bilinear upsampling is separable, so upsample-then-crop equals rows @ grid @ cols.T with
    the cropped rows of the 1-D interpolation matrices: two small batched matmuls instead of
    materialising the (m, (s+1)*cell, (s+1)*cell) upsampled grids (equal to scikit-image's
    resize, or F.interpolate for clamp, followed by the crop up to float32 rounding; see
    tests/test_masks.py).
    """
    height, width = size
    cell_h, cell_w = cell_size(size, s)
    rows = interpolation_matrix(s, (s + 1) * cell_h, upsample)[shifts[:, 0, None] + torch.arange(height)]  # (m, H, s)
    cols = interpolation_matrix(s, (s + 1) * cell_w, upsample)[shifts[:, 1, None] + torch.arange(width)]  # (m, W, s)
    return torch.bmm(torch.bmm(rows, grids.float()), cols.transpose(1, 2)).clamp_(0, 1)


def generate_masks(kind: str, n: int, size, *, s: int = 8, p: float | None = None, seed: int = 0, **params) -> torch.Tensor:
    """n RISE masks of `kind` ("binary" needs p; "gaussian": mean, std; "perlin": engine,
    frequency, and for fbm octaves, phase) as an (n, H, W) float32 tensor in [0, 1]. Also takes
    set_id and upsample (see plan_masks)."""
    plan = plan_masks(kind, n, size, s=s, p=p, seed=seed, **params)
    return torch.cat([plan.render(slice(start, start + RENDER_CHUNK)) for start in range(0, n, RENDER_CHUNK)])


def write_masks(path: str | os.PathLike, kind: str, n: int, size, *, s: int = 8, p: float | None = None, seed: int = 0,
                set_id: str | None = None, upsample: str = "reflect", chunk: int = RENDER_CHUNK, dtype: str = "float16",
                progress: bool = False, **params) -> "MaskSet":
    """Generate a mask set and write it to HDF5 chunk by chunk (never all n masks in memory),
    with its draws (`grids`, `shifts`, `perlin_seeds`) and, in attrs, the seeds that made them.

    float16 storage halves the file (6000 x 224 x 224: 0.6 GB instead of 1.2 GB) and changes
    saliency maps by < 1e-3 relative (tests/test_masks.py).
    """
    import h5py
    from tqdm import tqdm

    from . import __version__

    require(dtype in STORAGE_DTYPES, f"unknown mask storage dtype {dtype!r}; use {' or '.join(STORAGE_DTYPES)}")
    require(isinstance(chunk, int) and chunk >= 1, f"chunk must be a positive integer, got {chunk}")
    set_id = set_id or default_set_id(kind, p)
    plan = plan_masks(kind, n, size, s=s, p=p, seed=seed, set_id=set_id, upsample=upsample, **params)
    height, width = plan.size
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        dataset = handle.create_dataset("masks", shape=(n, height, width), dtype=dtype,
                                        chunks=(min(chunk, n, storage_chunk(height, width, dtype)), height, width))
        for start in tqdm(range(0, n, chunk), desc=f"{kind} masks", unit="chunk", disable=not progress):
            part = slice(start, min(start + chunk, n))
            dataset[part] = plan.render(part).numpy().astype(dtype)
        handle.create_dataset("grids", data=plan.grids.numpy().astype(np.float32))
        handle.create_dataset("shifts", data=plan.shifts.numpy().astype(np.int64))
        if plan.perlin_seeds is not None:
            handle.create_dataset("perlin_seeds", data=plan.perlin_seeds.numpy().astype(np.int64))
        handle.attrs.update(kind=kind, p=float("nan") if p is None else float(p), s=s, n=n, seed=int(seed),
                            set_id=set_id, generator_seed=set_seed(seed, set_id), upsample=upsample,
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

    def draws(self) -> MaskPlan:
        """The stored draws (grids, shifts, Perlin seeds) as a MaskPlan that re-renders the set."""
        import h5py

        with h5py.File(self.path, "r") as handle:
            missing = [name for name in ("grids", "shifts") if name not in handle]
            require(not missing, f"{self.path} has no {' or '.join(missing)} (an older mask file); "
                                 f"regenerate the masks with `saliency-bench masks` (the workflow does so when rerun)")
            grids = torch.from_numpy(handle["grids"][()].astype(np.float32))
            shifts = torch.from_numpy(handle["shifts"][()].astype(np.int64))
            seeds = torch.from_numpy(handle["perlin_seeds"][()].astype(np.int64)) if "perlin_seeds" in handle else None
        return MaskPlan(grids, shifts, self.size, int(self.attrs["s"]), self.attrs.get("params") or {},
                        str(self.attrs.get("upsample", "reflect")), seeds)

    def rerender_error(self, chunk_size: int = RENDER_CHUNK) -> float:
        """Largest |stored mask - mask re-rendered from the stored draws| (an audit of the file)."""
        plan = self.draws()
        require(len(plan.grids) == len(self) and len(plan.shifts) == len(self),
                f"{self.path}: {len(plan.grids)} grids / {len(plan.shifts)} shifts for {len(self)} masks; regenerate the masks")
        worst = 0.0
        for start, stored in zip(range(0, len(self), chunk_size), self.iter_chunks(chunk_size)):
            worst = max(worst, (plan.render(slice(start, start + chunk_size)) - stored).abs().max().item())
        return worst


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
