"""Deletion and insertion metrics (Petsiuk et al. 2018), vectorised over steps and images.

Protocol (docs/protocol.md, "Deletion and insertion"): pixels are ranked by
descending saliency; at step i the pixels ``order[i*step:(i+1)*step]`` are copied, in all
three channels, from the finish image into the current one; the score (softmax probability
of the explained class) is recorded before each change and once after the last one, giving
``n + 1`` points with ``n = ceil(H*W / step)``.

Instead of editing one image step by step (the original's in-place ``.cpu().numpy()``
edit, which silently does nothing on CUDA), point k of an image is built directly as
``where(rank < k * step, finish, start)``, for a batch of (image, point) pairs at a time.

The first and last points are the start and finish images themselves, which every method
of an image shares. They are scored by `SharedScores`, always in the same batches (the
images tensor, `batch_size` at a time), whether or not a cache is passed in: a CPU forward
pass of an image in a batch of another size is not bitwise equal, so one canonical routine
is what keeps the saving exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from ..errors import UserError, require
from ..runtime.forward import ModelRunner, batches, check_target
from .substrates import DEFAULT_SUBSTRATE, canonical_substrate

MODES = ("deletion", "insertion")
DEFAULT_STEP_ROWS = 8


def default_step(width: int) -> int:
    """Pixels changed per step: DEFAULT_STEP_ROWS rows of the image (1792 at 224x224)."""
    return DEFAULT_STEP_ROWS * width


def check_step(step: int, height: int, width: int) -> None:
    """At least 1 pixel, and fewer than the image has: a step of the whole image leaves every curve
    the image and the substrate only (2 points), which ranks no map."""
    require(step >= 1, f"step must be at least 1 pixel, got {step}")
    require(step < height * width, f"a step of {step} pixels replaces all {height * width} pixels of a {height}x{width} "
                                   "image at once, so every curve would be the image and the substrate only; take fewer "
                                   f"(the default: {DEFAULT_STEP_ROWS} rows, {default_step(width)} pixels)")


BLUR_KLEN, BLUR_SIGMA = 11, 5


# ---- blur kernel and substrates ---------------------------------------------------------
def gkern(klen: int = BLUR_KLEN, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """The original RISE blur kernel, (klen, klen) float32.

    `scipy.ndimage.gaussian_filter` (default mode='reflect', truncate=4) of a klen x klen array
    holding a single 1 at the centre, computed here with scipy's own operations in scipy's order
    (`reflect_gaussian_filter`; tests/test_metrics.py compares bit for bit), so that an evaluate
    job need not import scipy (90 ms). With klen=11, sigma=5 it is nearly a box filter (sum 1);
    it is not torchvision's GaussianBlur(11, 5).
    """
    require(klen >= 1 and klen % 2 == 1, f"gkern needs an odd klen >= 1, got {klen}")
    impulse = np.zeros((klen, klen))
    impulse[klen // 2, klen // 2] = 1
    return reflect_gaussian_filter(reflect_gaussian_filter(impulse, sigma, 0), sigma, 1).astype(np.float32)


def reflect_gaussian_filter(values: np.ndarray, sigma: float, axis: int, truncate: float = 4.0) -> np.ndarray:
    """`scipy.ndimage.gaussian_filter1d(values, sigma, axis)` (mode 'reflect', float64), operation for
    operation: scipy's normalised kernel exp(-x^2 / (2 sigma^2)) over |x| <= int(truncate * sigma + 0.5),
    the line extended by half-sample reflection (dcba|abcd|dcba, period 2n), and its loop for
    symmetric kernels, out = v[i] w[0] + sum over k = r .. 1 of (v[i - k] + v[i + k]) w[k]."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 / (sigma * sigma) * x ** 2)
    weights = weights / weights.sum()
    lines = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    n = lines.shape[-1]
    extended = np.arange(-radius, n + radius) % (2 * n)
    padded = lines[..., np.where(extended < n, extended, 2 * n - 1 - extended)]
    out = padded[..., radius:radius + n] * weights[radius]
    for k in range(radius, 0, -1):
        out = out + (padded[..., radius - k:radius - k + n] + padded[..., radius + k:radius + k + n]) * weights[radius - k]
    return np.moveaxis(out, -1, axis)


def gkern_weight(klen: int = BLUR_KLEN, sigma: float = BLUR_SIGMA, channels: int = 3) -> torch.Tensor:
    """`gkern` as a depthwise conv2d weight (channels, 1, klen, klen), for groups=channels."""
    return torch.from_numpy(gkern(klen, sigma)).expand(channels, 1, klen, klen).contiguous()


def blur(images: torch.Tensor, klen: int = BLUR_KLEN, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Per-channel conv2d with `gkern`, zero padding klen // 2 (zero = the mean colour)."""
    weight = gkern_weight(klen, sigma, images.shape[1]).to(images.device, images.dtype)
    return F.conv2d(images, weight, padding=klen // 2, groups=images.shape[1])


def substrate_images(name: str, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The fully replaced image of every input: (B, C, H, W), or (1, C, H, W) for 'zeros'.

    - zeros: 0 in the normalised tensor, i.e. the data set's mean colour (one image for all).
    - blur: `blur(images)` with gkern(11, 5).
    - mean: each image's per-channel mean.
    - uniform noise: uniform in [min, max] of each image's channel; one CPU generator seeded
      with `seed` draws all images in batch order, so CPU and CUDA get the same noise.
    """
    name = canonical_substrate(name)
    if name == "zeros":
        return torch.zeros_like(images[:1])
    if name == "blur":
        return blur(images)
    if name == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images).contiguous()
    low = images.amin(dim=(2, 3), keepdim=True)
    high = images.amax(dim=(2, 3), keepdim=True)
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed), dtype=images.dtype)
    return low + (high - low) * noise.to(images.device)


# ---- pixel order --------------------------------------------------------------------------
def check_saliency(saliency: np.ndarray, images_shape: tuple[int, ...], names: list[str] | None = None) -> None:
    """UserError unless `saliency` is (B, H, W) for images (B, C, H, W) and every value is finite."""
    batch, _, height, width = images_shape
    require(saliency.shape == (batch, height, width),
            f"saliency shape {tuple(saliency.shape)} does not match images {tuple(images_shape)}; "
            f"expected ({batch}, {height}, {width}): explain the same images at the same size")
    finite = np.isfinite(saliency).reshape(batch, -1).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        where = names[bad] if names else f"image {bad} of the batch"
        raise UserError(f"saliency of {where} holds NaN or infinite values; fix or re-run that explanation")


def pixel_ranks(saliency: np.ndarray) -> np.ndarray:
    """Rank of every pixel (B, H*W), int64: 0 = most salient, i.e. the first pixel changed.

    Order: descending saliency; ties keep ascending flat pixel index (row-major), so a
    constant map changes pixels row by row from the top-left. (The original's
    `np.flip(np.argsort(map))` leaves the tie order unspecified.) torch's stable sort gives
    the order of numpy's stable argsort at half its time.
    """
    values = np.asarray(saliency)
    if values.dtype.kind != "f" or not values.dtype.isnative:  # integer, bool or big-endian maps: exact in float64
        values = values.astype(np.float64)
    flat = torch.from_numpy(np.ascontiguousarray(values)).reshape(len(values), -1)
    order = torch.sort(-flat, dim=1, stable=True).indices  # -x keeps ties in index order, unlike flip
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1]).expand_as(order))
    return ranks.numpy()


def n_steps(height: int, width: int, step: int) -> int:
    return math.ceil(height * width / step)


# ---- shared first and last points ----------------------------------------------------------
class SharedScores:
    """Softmax outputs of the images every method of an image shares, computed once.

    Holds p(unperturbed image) and p(fully substituted image) per substrate, for ONE images
    tensor. Pass the same object to every `causal_curves` call on those images (all
    methods, both modes). Scores are always computed here, `runner.batch_size` images at a
    time (the 'zeros' image alone), so a cached value is bit-identical to a fresh one.
    """

    def __init__(self, images: torch.Tensor, seed: int = 0):
        self.shape = tuple(images.shape)
        self.seed = seed
        self._probs: dict[str, torch.Tensor] = {}
        self._substrates: dict[str, torch.Tensor] = {}

    def substrate(self, name: str, images: torch.Tensor) -> torch.Tensor:
        """The substrate image(s) of `images`, made once (blur is not free at 224 x 224)."""
        if name not in self._substrates:
            self._substrates[name] = substrate_images(name, images, self.seed)
        return self._substrates[name]

    def probs(self, key: str, runner: ModelRunner, images: torch.Tensor) -> torch.Tensor:
        """(B, K) or (1, K) softmax probabilities of 'image' or of substrate `key`."""
        require(tuple(images.shape) == self.shape,
                f"shared scores were computed for images {self.shape}, not {tuple(images.shape)}; use one SharedScores per images tensor")
        if key not in self._probs:
            inputs = images if key == "image" else self.substrate(key, images)
            self._probs[key] = softmax_scores(runner, inputs)
        return self._probs[key]


def softmax_scores(runner: ModelRunner, images: torch.Tensor) -> torch.Tensor:
    return torch.softmax(runner.run(images), dim=1)


# ---- the curves ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurveRequest:
    """One set of curves on the images: `saliency` (B, H, W) scored by `mode`, pixels taken
    from `substrate` (None: zeros for deletion, blur for insertion), for class `target`
    (None: the top-1 class of each unperturbed image)."""

    saliency: Any
    mode: str
    substrate: str | None = None
    target: Any = None


@dataclass(frozen=True)
class CurvePlan:
    """A checked request: start and finish images, pixel ranks and classes, on the model's device."""

    start: torch.Tensor
    finish: torch.Tensor
    ranks: torch.Tensor
    target: torch.Tensor
    first: torch.Tensor
    last: torch.Tensor


def causal_curves(model: nn.Module | ModelRunner, images: torch.Tensor, saliency, *, mode: str,
                  step: int | None = None, substrate: str | None = None, batch_size: int = 64,
                  target=None, shared_scores: SharedScores | None = None, seed: int = 0,
                  progress: bool = False) -> np.ndarray:
    """Deletion or insertion curves: (B, n + 1) float64, n = ceil(H*W / step).

    `images` (B, 3, H, W) normalised; `saliency` (B, H, W). `mode`: 'deletion' (start =
    image, finish = substrate, default 'zeros') or 'insertion' (start = substrate, default
    'blur', finish = image). `step` pixels per step, default 8 rows (8 * W). Point k is the
    start image with its k * step most salient pixels (descending saliency; ties in
    ascending row-major pixel index) taken from the finish image; its score is
    softmax(model(x))[target], target defaulting to the top-1 class of the unperturbed image.

    `model` may be a `ModelRunner` (precision, forward-pass counting; its batch size is then
    used instead of `batch_size`). At most `batch_size` perturbed images exist at a time.
    `shared_scores` caches the first and last points across methods and modes (see
    `SharedScores`); the result is bit-identical with or without it. Several maps or modes
    of the same images: `causal_curve_sets` runs them in one stream of full batches.
    """
    request = CurveRequest(saliency, mode, substrate, target)
    return causal_curve_sets(model, images, [request], step=step, batch_size=batch_size, shared_scores=shared_scores,
                             seed=seed, progress=progress)[0]


def causal_curve_sets(model: nn.Module | ModelRunner, images: torch.Tensor, requests: Sequence[CurveRequest], *,
                      step: int | None = None, batch_size: int = 64, shared_scores: SharedScores | None = None,
                      seed: int = 0, progress: bool = False) -> list[np.ndarray]:
    """The curves of every request (see `causal_curves`) on the same images, in request order.

    The interior points of all requests are scored in one stream of batches, so only the
    very last batch is partial: a partial batch costs nearly a full one on the CPU, and one
    per method and mode would cost about 10% of the deletion/insertion time.
    """
    runner = model if isinstance(model, ModelRunner) else ModelRunner(model, batch_size=batch_size)
    images = torch.as_tensor(images).to(runner.device)  # every batch is built where the model runs
    require(images.ndim == 4, f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    require(len(requests) >= 1, "no curves were requested")
    _, _, height, width = images.shape
    step = default_step(width) if step is None else int(step)
    check_step(step, height, width)
    shared = shared_scores if shared_scores is not None else SharedScores(images, seed)
    require(shared.seed == seed, f"shared scores use noise seed {shared.seed}, not {seed}; pass the same seed")
    ranks: dict[int, torch.Tensor] = {}  # per saliency object: deletion and insertion of a map share one sort
    plans = [plan_curves(runner, images, request, shared, ranks) for request in requests]

    steps = n_steps(height, width, step)
    all_curves = []
    for plan in plans:
        curves = torch.empty(len(images), steps + 1, dtype=torch.float64)
        curves[:, 0], curves[:, steps] = plan.first.double().cpu(), plan.last.double().cpu()
        all_curves.append(curves)
    if steps > 1:
        inner = interior_scores(runner, images.shape, plans, step, progress)
        for curves, scores in zip(all_curves, inner):
            curves[:, 1:steps] = scores.double().cpu().view(len(images), steps - 1)
    return [curves.numpy() for curves in all_curves]


def plan_curves(runner: ModelRunner, images: torch.Tensor, request: CurveRequest, shared: SharedScores,
                ranks: dict[int, torch.Tensor]) -> CurvePlan:
    """Check one request and gather what its curves need (first and last points from `shared`; the pixel
    ranks from `ranks`, keyed by the id of the request's saliency object, filled on first use)."""
    mode = request.mode
    require(mode in MODES, f"unknown mode {mode!r}; use 'deletion' or 'insertion'")
    saliency = request.saliency
    saliency = saliency.detach().cpu().numpy() if isinstance(saliency, torch.Tensor) else np.asarray(saliency)
    check_saliency(saliency, tuple(images.shape))
    batch = len(images)
    substrate = canonical_substrate(request.substrate or DEFAULT_SUBSTRATE[mode])
    image_probs = shared.probs("image", runner, images)
    target = request.target
    target = image_probs.argmax(dim=1) if target is None else check_target(target, image_probs.shape, image_probs.device)
    substrate_probs = shared.probs(substrate, runner, images).expand(batch, -1)
    other = shared.substrate(substrate, images)
    rows = torch.arange(batch, device=image_probs.device)
    image_scores, substrate_scores = image_probs[rows, target], substrate_probs[rows, target]
    key = id(request.saliency)  # the requests hold their maps, so no id is reused during the call
    if key not in ranks:
        ranks[key] = torch.from_numpy(pixel_ranks(saliency)).to(device=runner.device, dtype=torch.int32)
    if mode == "deletion":
        return CurvePlan(images, other, ranks[key], target.to(runner.device), image_scores, substrate_scores)
    return CurvePlan(other, images, ranks[key], target.to(runner.device), substrate_scores, image_scores)


def interior_scores(runner: ModelRunner, shape: torch.Size, plans: Sequence[CurvePlan], step: int,
                    progress: bool) -> torch.Tensor:
    """Scores of points 1 .. n-1 of every plan and image: (len(plans), B * (n - 1)).

    The pairs are enumerated plan by plan, image by image, point by point; pair p belongs to
    unit p // (n - 1) (plan unit // B, image unit % B) at point p % (n - 1) + 1. Each batch of
    pairs is written into the runner's batch buffer unit by unit, as `FlatUnit` rows.
    """
    n_images, channels, height, width = shape
    inner = n_steps(height, width, step) - 1
    buffer = runner.batch_buffer((channels, height, width), plans[0].start.dtype)
    rows = flat_rows(buffer)
    unit_rows: FlatUnit | None = None
    scores = []
    for part in tqdm(list(batches(len(plans) * n_images * inner, runner.batch_size)), desc="deletion/insertion",
                     unit="batch", disable=not progress, leave=False):
        targets = []
        for unit in range(part.start // inner, (part.stop - 1) // inner + 1):
            plan, b = plans[unit // n_images], unit % n_images
            if unit_rows is None or unit_rows.unit != unit:  # a unit's points may span two batches
                unit_rows = FlatUnit.of(unit, plan, b, buffer)
            first, last = max(part.start, unit * inner), min(part.stop, (unit + 1) * inner)
            points = torch.arange(first - unit * inner + 1, last - unit * inner + 1, device=runner.device)
            unit_rows.build(points * step, out=rows[first - part.start:last - part.start])
            targets.append(plan.target[b].expand(last - first))
        probs = torch.softmax(runner(buffer[: part.stop - part.start]), dim=1)
        scores.append(probs.gather(1, torch.cat(targets).unsqueeze(1)).squeeze(1))
    return torch.cat(scores).view(len(plans), n_images * inner)


def memory_order(buffer: torch.Tensor) -> list[int]:
    """The dimensions of a (B, C, H, W) buffer from outermost to innermost in memory."""
    return sorted(range(buffer.ndim), key=lambda dim: (-buffer.stride(dim), dim))


def flat_rows(buffer: torch.Tensor) -> torch.Tensor:
    """The buffer as (B, C*H*W) in its memory order (a view): a point's image is then one
    contiguous row, which `torch.where` fills 1.7x faster than the channels-last (B, C, H, W)
    view with a (B, 1, H, W) condition (2 CPUs, 224 px, batch 64: 6.4 against 10.7 ms)."""
    return buffer.permute(memory_order(buffer)).view(len(buffer), -1)


@dataclass(frozen=True)
class FlatUnit:
    """One image of one plan laid out like a `flat_rows` row: each element's pixel rank, and the
    start and finish values. Point k is then where(rank < k * step, finish, start) elementwise."""

    unit: int
    ranks: torch.Tensor
    start: torch.Tensor
    finish: torch.Tensor

    @classmethod
    def of(cls, unit: int, plan: CurvePlan, index: int, buffer: torch.Tensor) -> "FlatUnit":
        order = [dim - 1 for dim in memory_order(buffer)[1:]]  # of one (C, H, W) row

        def flat(image: torch.Tensor) -> torch.Tensor:
            return image.permute(order).reshape(-1)

        ranks = plan.ranks[index].view(1, *buffer.shape[2:]).expand(*buffer.shape[1:])
        return cls(unit, flat(ranks), flat(pick(plan.start, index)), flat(pick(plan.finish, index)))

    def build(self, thresholds: torch.Tensor, out: torch.Tensor) -> None:
        """The points with these `thresholds` (k * step) as rows of `out` ((len(thresholds), C*H*W))."""
        torch.where(self.ranks < thresholds.unsqueeze(1), self.finish, self.start, out=out)


def pick(images: torch.Tensor, index: int) -> torch.Tensor:
    """images[index]; a single shared image (the zeros substrate) serves every index."""
    return images[0] if images.shape[0] == 1 else images[index]


