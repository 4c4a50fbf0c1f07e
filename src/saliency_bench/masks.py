"""RISE masks: generation (binary, Gaussian, Perlin), written in the mask file format of `formats.masks`.

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
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import require
from .formats.masks import MaskSet, write_mask_file
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
RENDER_CHUNK = 256


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
                progress: bool = False, **params) -> MaskSet:
    """Generate a mask set and write it to HDF5 chunk by chunk (never all n masks in memory),
    with its draws (`grids`, `shifts`, `perlin_seeds`) and, in attrs, the seeds that made them.

    float16 storage halves the file (6000 x 224 x 224: 0.6 GB instead of 1.2 GB) and changes
    saliency maps by < 1e-3 relative (tests/test_masks.py).
    """
    from tqdm import tqdm

    require(isinstance(chunk, int) and chunk >= 1, f"chunk must be a positive integer, got {chunk}")
    set_id = set_id or default_set_id(kind, p)
    plan = plan_masks(kind, n, size, s=s, p=p, seed=seed, set_id=set_id, upsample=upsample, **params)
    parts = [slice(start, min(start + chunk, n)) for start in range(0, n, chunk)]
    rendered = ((part, plan.render(part)) for part in tqdm(parts, desc=f"{kind} masks", unit="chunk",
                                                                   disable=not progress))
    draws = {"grids": plan.grids.numpy(), "shifts": plan.shifts.numpy()}
    if plan.perlin_seeds is not None:
        draws["perlin_seeds"] = plan.perlin_seeds.numpy()
    attrs = dict(kind=kind, p=None if p is None else float(p), s=s, n=n, seed=int(seed), set_id=set_id,
                 generator_seed=set_seed(seed, set_id), upsample=upsample, params=plan.params)
    return write_mask_file(path, n, plan.size, rendered, draws, attrs, dtype=dtype, chunk=chunk)


def stored_plan(masks: MaskSet) -> MaskPlan:
    """The draws stored with a mask set as a MaskPlan that re-renders it."""
    draws = masks.read_draws()
    seeds = draws.get("perlin_seeds")
    return MaskPlan(torch.from_numpy(draws["grids"]), torch.from_numpy(draws["shifts"]), masks.size,
                    int(masks.attrs["s"]), masks.attrs.get("params") or {}, str(masks.attrs.get("upsample", "reflect")),
                    None if seeds is None else torch.from_numpy(seeds))


def rerender_error(masks: MaskSet, chunk_size: int = RENDER_CHUNK) -> float:
    """Largest |stored mask - mask re-rendered from the stored draws| (an audit of the file)."""
    plan = stored_plan(masks)
    require(len(plan.grids) == len(masks) and len(plan.shifts) == len(masks),
            f"{masks.path}: {len(plan.grids)} grids / {len(plan.shifts)} shifts for {len(masks)} masks; regenerate the masks")
    worst = 0.0
    for start, stored in zip(range(0, len(masks), chunk_size), masks.iter_chunks(chunk_size)):
        worst = max(worst, (plan.render(slice(start, start + chunk_size)) - stored).abs().max().item())
    return worst
