"""RISE saliency (Petsiuk et al. 2018; docs/protocol.md, "RISE saliency").

S_c = (1 / (N * norm)) * sum_i f_c(I * M_i) * M_i, for every class c at once: one matmul
per chunk of masks, scores (n x K) transposed times masks (n x HW). norm = p for binary
masks, else the mean of all masks (the study). f = logits (the study) or softmax (the
original RISE).

Masks are streamed: each chunk is read once (from a tensor or an HDF5 `MaskSet`) and used
for every image before the next chunk is read, so memory holds one chunk, not N masks.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from tqdm import tqdm

from .errors import require
from .formats.masks import MaskSet, prefetched
from .runtime.forward import ModelRunner, batches, pinned

SCORES = ("logits", "softmax")


def mask_chunks(masks: torch.Tensor | MaskSet, chunk_size: int, *, prefetch: int = 0,
                device: torch.device = torch.device("cpu")) -> Iterator[torch.Tensor]:
    """The masks, chunk_size at a time, as float32. prefetch > 0: read that many chunks ahead in a
    background thread. Chunks bound for a CUDA device are pinned (in that thread) for async copies."""
    if isinstance(masks, MaskSet):
        chunks = masks.iter_chunks(chunk_size)
    else:
        chunks = (masks[start:start + chunk_size].float() for start in range(0, len(masks), chunk_size))
    if device.type == "cuda":
        chunks = (pinned(chunk, device) for chunk in chunks)
    return prefetched(chunks, prefetch) if prefetch else chunks


def check_rise_args(images: torch.Tensor, masks, p: float | None, score: str) -> tuple[int, int]:
    require(score in SCORES, f"unknown RISE score {score!r}; use {' or '.join(SCORES)}")
    require(p is None or 0 < p <= 1, f"keep probability p must lie in (0, 1], got {p}")
    require(images.ndim == 4, f"images must be a (B, C, H, W) tensor, got shape {tuple(images.shape)}")
    if isinstance(masks, MaskSet):
        size = masks.size
    else:
        require(isinstance(masks, torch.Tensor) and masks.ndim == 3, "masks must be an (N, H, W) tensor or a MaskSet")
        size = tuple(masks.shape[1:])
    require(len(masks) >= 1, "the mask set is empty; generate masks with `saliency-bench masks`")
    require(tuple(size) == tuple(images.shape[-2:]),
            f"masks are {size[0]}x{size[1]} but the images are {images.shape[-2]}x{images.shape[-1]}; "
            "generate masks with --size equal to the image size")
    return size


def rise_saliency(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor | MaskSet, *, p: float | None = None,
                  score: str = "logits", batch_size: int = 64, target: torch.Tensor | None = None,
                  precision: str = "fp32", chunk_size: int | None = None, progress: bool = False,
                  runner: ModelRunner | None = None, prefetch: int | None = None) -> torch.Tensor:
    """RISE saliency of every class: (B, K, H, W) float32 on the CPU.

    masks: (N, H, W) tensor or MaskSet. Divided by N * p when p is given, else by N * mean(masks)
    (the mean is accumulated while streaming, no extra pass). target: optional (B,) classes;
    then only those maps are computed and the result is (B, H, W) (K = 1000 classes at 224 x 224
    would otherwise need 200 MB per image). Forward passes run through `ModelRunner` in batches
    of at most batch_size; pass `runner` to share one (and its forward-pass count).
    prefetch: mask chunks read ahead in a background thread (None: 1 on CUDA, 0 on the CPU,
    where the read is cheap next to the forward passes); the maps are bit-identical either way.
    """
    height, width = check_rise_args(images, masks, p, score)
    runner = runner or ModelRunner(model, batch_size, precision)
    device = runner.device
    images = images.to(device)
    n_images = len(images)
    if target is not None:
        target = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
        require(len(target) == n_images, f"target has {len(target)} entries for {n_images} images")
    # A multiple of the batch size, so that only the very last forward batch can be partial.
    chunk_size = chunk_size or runner.batch_size * max(1, 256 // runner.batch_size)
    total = None
    mask_sum = torch.zeros((), dtype=torch.float64, device=device)
    n_masks = 0
    prefetch = (1 if device.type == "cuda" else 0) if prefetch is None else prefetch
    require(isinstance(prefetch, int) and prefetch >= 0, f"prefetch must be a whole number of chunks >= 0, got {prefetch}")
    source = mask_chunks(masks, chunk_size, prefetch=prefetch, device=device)
    with contextlib.closing(source):  # stops a prefetching reader even if a forward pass fails
        chunks = tqdm(source, total=-(-len(masks) // chunk_size), desc="RISE", unit="chunk", disable=not progress)
        for chunk in chunks:
            chunk = chunk.to(device, non_blocking=True)
            scores = torch.stack([chunk_scores(runner, image, chunk, score) for image in images])  # (B, n, K)
            if target is not None:
                scores = scores.gather(2, target[:, None, None].expand(-1, len(chunk), 1))  # (B, n, 1)
            classes = scores.shape[2]
            # One matmul per chunk for all images and classes: (B*K, n) @ (n, HW).
            update = scores.transpose(1, 2).reshape(n_images * classes, len(chunk)) @ chunk.reshape(len(chunk), -1)
            total = update if total is None else total.add_(update)
            if p is None:
                mask_sum += chunk.sum(dtype=torch.float64)
            n_masks += len(chunk)
    norm = p if p is not None else (mask_sum / (n_masks * height * width)).item()
    require(norm > 0, "the masks are all zero, so RISE saliency is undefined; regenerate the masks")
    saliency = (total / (n_masks * norm)).reshape(n_images, classes, height, width).cpu()
    return saliency[:, 0] if target is not None else saliency


def chunk_scores(runner: ModelRunner, image: torch.Tensor, chunk: torch.Tensor, score: str) -> torch.Tensor:
    """Scores (n, K) of one image under each mask of the chunk, batch_size images per forward pass."""
    outputs = [runner(runner.masked(image, chunk[part])) for part in batches(len(chunk), runner.batch_size)]
    logits = torch.cat(outputs)
    return logits.softmax(dim=1) if score == "softmax" else logits
