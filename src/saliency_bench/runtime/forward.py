"""Batched, no-grad forward passes with the configured precision: the hot path of every stage.

All methods and metrics call the model through `ModelRunner`, so precision (autocast),
memory format and batch size are decided in one place, and the benchmark can count the
forward passes each stage needs.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import torch
from torch import nn

from ..errors import require
from .folding import fold_batchnorm

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MEMORY_FORMATS = ("contiguous", "channels_last")


def autocast_context(device: torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager:
    """Autocast for bf16/fp16, a no-op for fp32."""
    check_precision(device.type, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def check_precision(device_type: str, precision: str) -> None:
    """A precision the device can run: fp16 is CUDA-only (CPU fp16 convs are slow and lossy)."""
    require(precision in PRECISIONS, f"unknown precision {precision!r}; use fp32, bf16 or fp16")
    require(precision != "fp16" or device_type == "cuda", "precision fp16 needs a CUDA device; use bf16 on the CPU")


def pinned(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`x` in page-locked memory when it is a CPU tensor bound for a CUDA device, so that the
    copy can run asynchronously (non_blocking); otherwise `x` itself."""
    if device.type == "cuda" and x.device.type == "cpu" and not x.is_pinned():
        return x.pin_memory()
    return x


def exact_float32(device: torch.device) -> None:
    """On CUDA, run float32 convolutions and matrix products in float32: PyTorch lets cuDNN use
    TF32 by default, whose 10-bit mantissa rounds each input to about 5e-4 relative (float32: 6e-8),
    far beyond the golden tolerances. Called wherever the package puts a model to work (ModelRunner, the
    Abs-CAM gradient pass, `models.resolve_device`); a no-op on other devices. Reduced precision
    is asked for explicitly instead (`precision: bf16` / `fp16`)."""
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def batches(n: int, batch_size: int) -> Iterator[slice]:
    require(batch_size >= 1, f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def uses_channels_last(model: nn.Module) -> bool:
    """Whether the model's first 4-d weight (its stem convolution) is stored channels-last."""
    weight = next((p for p in model.parameters() if p.dim() == 4), None)
    return weight is not None and not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last)


def set_memory_format(model: nn.Module, memory_format: str) -> nn.Module:
    """Store the model contiguous or channels-last; every ModelRunner then feeds inputs alike.

    Channels-last is faster on many CPUs and GPUs, not all: `tuning.tune_forward` measures
    it (memory_format: auto). Results agree to float32 round-off.
    """
    require(memory_format in MEMORY_FORMATS,
            f"unknown memory format {memory_format!r}; use contiguous or channels_last")
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    return model.to(memory_format=fmt)


# Attribute that `set_fold_bn` stores on a model; absent means the default, folding on.
FOLD_BN_ATTRIBUTE = "_saliency_bench_fold_bn"


def set_fold_bn(model: nn.Module, enabled: bool) -> nn.Module:
    """Whether ModelRunners of `model` fold its BatchNorms into the convolutions (config fold_bn;
    default True). Stored on the model, so that every runner of a process agrees."""
    setattr(model, FOLD_BN_ATTRIBUTE, bool(enabled))
    return model


def folds_bn(model: nn.Module) -> bool:
    return getattr(model, FOLD_BN_ATTRIBUTE, True)


class ModelRunner:
    """Runs `model` on batches without gradients; returns float32 outputs on the model's device.

    `channels_last` feeds inputs channels-last (None: as the model is stored, see `set_memory_format`),
    running a channels-last copy if the model is not stored so; the model passed in keeps its format.
    `fold_bn` (None: follow `set_fold_bn`, default on): run a copy of the model with its
    BatchNorms folded into the preceding convolutions (`folding.fold_batchnorm`; eval mode only,
    a model in training mode runs as it is). Same function, float32 round-off apart; the model
    passed in is not changed. `forward_passes` counts images fed to the model, for the benchmarks.
    """

    def __init__(self, model: nn.Module, batch_size: int = 64, precision: str = "fp32", channels_last: bool | None = None,
                 fold_bn: bool | None = None):
        require(batch_size >= 1, f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.device = model_device(model)
        exact_float32(self.device)
        self.batch_size = batch_size
        self.precision = precision
        autocast_context(self.device, precision)  # validate early
        # None: follow the model (see `set_memory_format`), so every runner of a process agrees.
        self.channels_last = uses_channels_last(model) if channels_last is None else channels_last
        in_training = any(module.training for module in model.modules())
        self.fold_bn = (folds_bn(model) if fold_bn is None else fold_bn) and not in_training
        if self.fold_bn:
            self.model = fold_batchnorm(model)
        if self.channels_last and not uses_channels_last(self.model):
            # a full copy: the folded one shares tensors with `model`, which must keep its memory format
            self.model = copy.deepcopy(self.model).to(memory_format=torch.channels_last)
        self.forward_passes = 0
        self._batch_buffer: torch.Tensor | None = None

    def batch_buffer(self, row_shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A reused (batch_size, *row_shape) tensor on the model's device, in its memory format:
        batches built in it go to the model without another copy. Its contents are overwritten
        by the next user, so build a batch in it only right before running it."""
        memory_format = torch.channels_last if self.channels_last and len(row_shape) == 3 else torch.contiguous_format
        buffer = self._batch_buffer
        if buffer is None or buffer.shape[1:] != row_shape or buffer.dtype != dtype or \
                not buffer.is_contiguous(memory_format=memory_format):
            buffer = torch.empty(self.batch_size, *row_shape, dtype=dtype, device=self.device, memory_format=memory_format)
            self._batch_buffer = buffer
        return buffer

    def masked(self, image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """The batch image * masks[i] ((C, H, W) times (k, H, W), k <= batch_size), built in the batch buffer."""
        require(len(masks) <= self.batch_size, f"{len(masks)} masks do not fit a batch of {self.batch_size}")
        out = self.batch_buffer(tuple(image.shape), image.dtype)[:len(masks)]
        return torch.mul(image, masks[:, None], out=out)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = pinned(x, self.device).to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs for a batch of at most `batch_size` images (call `run` for more)."""
        self.forward_passes += x.shape[0]
        with autocast_context(self.device, self.precision):
            return self.model(self.prepare(x)).float()

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs for any number of images, `batch_size` at a time."""
        return torch.cat([self(x[part]) for part in batches(x.shape[0], self.batch_size)])


def explained_class(model: torch.nn.Module, images: torch.Tensor, target=None, *, batch_size: int = 64,
                    precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
    """(target, its softmax probability) on the unperturbed images; target defaults to top-1."""
    logits = ModelRunner(model, batch_size, precision).run(images)
    probabilities = logits.softmax(dim=1)
    if target is None:
        target = logits.argmax(dim=1)
    target = check_target(target, logits.shape, logits.device)
    return target, probabilities.gather(1, target[:, None])[:, 0]


def check_target(target, logits_shape, device) -> torch.Tensor:
    """`target` as a (B,) long tensor on `device`: one class per image, each a class of the model."""
    target = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
    n_images, n_classes = logits_shape
    require(len(target) == n_images, f"target has {len(target)} entries for {n_images} images; give one class per image")
    require(bool(((target >= 0) & (target < n_classes)).all()),
            f"target classes must lie in [0, {n_classes}) (the model's classes), got {target.tolist()}; "
            "use the model (and --num-classes) the classes were chosen with")
    return target
