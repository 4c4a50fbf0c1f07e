"""Abs-CAM Init and Final (Zeng et al. 2022), exactly as the study defined them (docs/protocol.md).

A = output of `layer`, G = d logit_c / dA, w_k = mean_ij |G_k,ij| (abs before the mean).
- Init:  cam = sum_k w_k A_k (no ReLU), bilinear upsampling (align_corners=False), then
         per-image min-max: (cam - min) / (max - min + 1e-8).
- Final: M_k = Up(w_k A_k), min-max normalised per channel (+1e-8); s_k = |logit_c(I * M_k)|;
         L = ReLU(sum_k s_k M_k), not normalised. score="softmax" gives the Score-CAM variant.

Images are batched and each keeps its own class c. The model is left as it was: the hook is
removed in a `finally`, gradients come from `torch.autograd.grad` (no `.grad` is written), and
no `requires_grad` flag is touched (the hook hands the rest of the network a leaf copy of A
that requires grad, so the gradient exists even for a frozen model).

Abs-CAM Final feeds the B * K masked images through the model in batches of exactly
`batch_size` (the last one padded), packed across images. On a fixed batch shape each row's
output does not depend on the other rows (exactly so on the kernels seen so far, to round-off in
general), so channels whose mask is all zeros (a constant w_k A_k) can share one forward pass of
the all-zero image (tests/test_abscam.py compares with `skip_constant=False` to round-off).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .errors import UserError, require
from .runtime.forward import ModelRunner, batches, check_target, exact_float32, model_device

FINAL_SCORES = ("logits", "softmax")
EPS = 1e-8


def find_layer(model: nn.Module, layer: str) -> nn.Module:
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        top = ", ".join(name for name, _ in model.named_children())
        raise UserError(f"unknown layer {layer!r}; use a module name of the model (top-level: {top}; "
                        "nested names like layer3.1 work too)")
    return modules[layer]


class NotAFeatureMap(UserError):
    """An Abs-CAM layer whose output is no (B, C, h, w) tensor."""


def check_feature_map(layer: str, output) -> None:
    """Abs-CAM needs a (B, C, h, w) tensor from its layer: anything else is one line naming the layer."""
    if not isinstance(output, torch.Tensor):
        raise NotAFeatureMap(f"layer {layer!r} returns {type(output).__name__}, not a tensor; choose a layer "
                             "that gives a (B, C, h, w) feature map")
    if output.dim() != 4:
        raise NotAFeatureMap(f"layer {layer!r} gives a {tuple(output.shape)} output, not a (B, C, h, w) feature "
                             "map; choose a layer that gives one")


@contextmanager
def naming_feature_map_layers(model: nn.Module, input_size: Sequence[int]) -> Iterator[None]:
    """A NotAFeatureMap raised inside comes out naming the model's top-level layers that give a
    feature map larger than 1x1 (one zero image of `input_size` finds them), or saying there is none:
    a model of the user's, or a ViT, has no `layer4`."""
    try:
        yield
    except NotAFeatureMap as error:
        found = {}

        def record(name: str):
            def hook(_module, _inputs, output):
                if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[2] * output.shape[3] > 1:
                    found[name] = tuple(output.shape[1:])
            return hook

        hooks = [child.register_forward_hook(record(name)) for name, child in model.named_children()]
        try:
            with torch.no_grad():
                model(torch.zeros(1, 3, *input_size, device=model_device(model)))
        finally:
            for hook in hooks:
                hook.remove()
        layers = ", ".join(f"{name} ({c}x{h}x{w})" for name, (c, h, w) in found.items()) or "none"
        raise NotAFeatureMap(f"{error}; top-level layers that give one: {layers} (abscam.variants: [] runs "
                             "RISE and the chance baselines only)") from None


@contextmanager
def feature_map_shapes(model: nn.Module, layers: Sequence[str]) -> Iterator[dict[str, tuple[int, int, int]]]:
    """While inside, every forward pass records (C, h, w) of each layer's output, in a dict this
    yields, and checks it is a feature map (`check_feature_map`). All names are checked before any
    hook is placed; the hooks are removed on exit."""
    modules = {layer: find_layer(model, layer) for layer in layers}
    shapes: dict[str, tuple[int, int, int]] = {}

    def recorder(layer: str):
        def record(_module, _inputs, output):
            check_feature_map(layer, output)
            shapes[layer] = tuple(output.shape[1:])
        return record

    hooks = [module.register_forward_hook(recorder(layer)) for layer, module in modules.items()]
    try:
        yield shapes
    finally:  # the model may be the caller's
        for hook in hooks:
            hook.remove()


def probe_layers(model: nn.Module, input_size: Sequence[int], arch: str, num_classes: int,
                 layers: Sequence[str]) -> tuple[torch.Size, dict[str, tuple[int, int, int]]]:
    """One zero image through the eval-mode `model` (`probe_forward`): its output shape and each
    Abs-CAM layer's (C, h, w); a layer without a feature map is one line naming those that have one."""
    from .runtime.models import probe_forward

    with naming_feature_map_layers(model, input_size), feature_map_shapes(model, layers) as shapes:
        shape = probe_forward(model, tuple(input_size), arch, num_classes)
    return shape, shapes


def activations_and_weights(model: nn.Module, images: torch.Tensor, layer: str,
                            target: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A (B, C, h, w), w = mean |dlogit_c/dA| (B, C) and the classes c (B,), in float32."""
    activations, weights, target, _ = gradient_pass(model, images, layer, target)
    return activations, weights, target


def gradient_pass(model: nn.Module, images: torch.Tensor, layer: str, target: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`activations_and_weights` and the logits (B, classes) of the same forward pass."""
    module = find_layer(model, layer)
    device = model_device(model)
    exact_float32(device)
    images = images.to(device)
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        check_feature_map(layer, output)
        captured["A"] = output.detach().requires_grad_(True)
        # A copy goes on: a following in-place op (ReLU(inplace=True) after a BatchNorm) must not change A.
        return captured["A"].clone()

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(images)
            if target is None:
                target = logits.argmax(dim=1)
            target = check_target(target, logits.shape, device)
            activations = captured["A"]
            (gradient,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), activations)
    finally:
        handle.remove()
    return activations.detach().float(), gradient.abs().float().mean(dim=(2, 3)), target, logits.detach().float()


def min_max(x: torch.Tensor) -> torch.Tensor:
    """(x - min) / (max - min + 1e-8) over the last two dimensions."""
    low = x.amin(dim=(-2, -1), keepdim=True)
    high = x.amax(dim=(-2, -1), keepdim=True)
    return (x - low) / (high - low + EPS)


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (align_corners=False) upsampling of (..., h, w) maps to (..., H, W)."""
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, *x.shape[-2:])
    return F.interpolate(flat, size=size, mode="bilinear", align_corners=False).reshape(*lead, *size)


def abscam_init(model: nn.Module, images: torch.Tensor, layer: str, target: torch.Tensor | None = None) -> torch.Tensor:
    """Abs-CAM Init maps (B, H, W) in [0, 1], float32 on the CPU (one forward + backward, fp32)."""
    return abscam_init_with_class(model, images, layer, target)[0]


def abscam_init_with_class(model: nn.Module, images: torch.Tensor, layer: str, target: torch.Tensor | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(maps, classes, their softmax probabilities): the class comes from the map's own forward
    pass, so explaining the top-1 class costs no extra pass."""
    activations, weights, target, logits = gradient_pass(model, images, layer, target)
    cam = (weights[:, :, None, None] * activations).sum(dim=1)
    maps = min_max(upsample(cam, tuple(images.shape[-2:]))).cpu()
    return maps, target, logits.softmax(dim=1).gather(1, target[:, None])[:, 0]


def channel_masks(activations: torch.Tensor, weights: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """M_k = min-max(Up(w_k A_k)) of one image: (C, H, W)."""
    return min_max(upsample(weights[:, None, None] * activations, size))


def channel_mask_chunks(activations: torch.Tensor, weights: torch.Tensor, size: tuple[int, int],
                        chunk: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(channel indices, their masks M_k) of one image, `chunk` channels at a time.

    Every M_k depends on its own channel only, so the chunks hold exactly the rows of
    `channel_masks`; memory stays at `chunk` masks (all 512 of layer4 at 224 px are 100 MB,
    and min-max needs two more such arrays while it runs).
    """
    for part in batches(len(weights), chunk):
        yield torch.arange(part.start, part.stop, device=weights.device), channel_masks(activations[part], weights[part], size)


def abscam_final(model: nn.Module, images: torch.Tensor, layer: str, target: torch.Tensor | None = None,
                 batch_size: int = 64, *, score: str = "logits", precision: str = "fp32", skip_constant: bool = True,
                 progress: bool = False, runner: ModelRunner | None = None) -> torch.Tensor:
    """Abs-CAM Final maps (B, H, W), float32 on the CPU, not normalised.

    score "logits": s_k = |logit_c| (the study); "softmax": s_k = softmax_c (Score-CAM).
    skip_constant: run the all-zero image once for every all-zero channel mask (same result to round-off).
    The channel masks are made `batch_size` channels at a time, once for the masked forward
    passes and once more for the weighted sum (upsampling is cheap next to a forward pass).
    """
    require(score in FINAL_SCORES, f"unknown Abs-CAM Final score {score!r}; use {' or '.join(FINAL_SCORES)}")
    activations, weights, target = activations_and_weights(model, images, layer, target)
    size = tuple(images.shape[-2:])
    runner = runner or ModelRunner(model, batch_size, precision)
    images = images.to(runner.device)
    n_images, n_channels = weights.shape
    scores = torch.zeros(n_images, n_channels, device=runner.device)
    constant = torch.zeros(n_images, n_channels, dtype=torch.bool, device=runner.device)
    zero_logits: list[torch.Tensor] = []

    def store(image: torch.Tensor, channel: torch.Tensor, logits: torch.Tensor) -> None:
        real = image >= 0  # image -1 marks the shared all-zero image
        if not bool(real.all()):
            zero_logits.append(logits[~real][0])
        scores[image[real], channel[real]] = score_of(logits[real], target[image[real]], score)

    def chunks(image: int):
        return channel_mask_chunks(activations[image], weights[image], size, runner.batch_size)

    scorer = FixedShapeScorer(runner, store)
    for image in tqdm(range(n_images), desc=f"Abs-CAM Final {layer}", unit="image", disable=not progress):
        for channels, masks in chunks(image):
            if skip_constant:
                constant[image, channels] = masks.flatten(1).amax(dim=1) == 0
                kept = ~constant[image, channels]
                channels, masks = channels[kept], masks[kept]
            scorer.add(images[image], masks, image, channels)
    if bool(constant.any()):
        scorer.add(torch.zeros_like(images[0]), torch.zeros_like(images[0, :1]), -1,
                   torch.tensor([-1], device=runner.device))
    scorer.finish()
    maps = torch.zeros(n_images, *size, device=runner.device)
    for image in range(n_images):
        if zero_logits:
            scores[image, constant[image]] = score_of(zero_logits[0][None], target[image:image + 1], score)
        for channels, masks in chunks(image):
            maps[image] += torch.einsum("k,khw->hw", scores[image, channels], masks)
    return torch.relu(maps).cpu()


def score_of(logits: torch.Tensor, target: torch.Tensor, score: str) -> torch.Tensor:
    """s_k of each row: |logit_target| (the study) or softmax_target (Score-CAM)."""
    values = logits.softmax(dim=1) if score == "softmax" else logits
    chosen = values.gather(1, target[:, None])[:, 0]
    return chosen if score == "softmax" else chosen.abs()


class FixedShapeScorer:
    """Runs masked images through the model in batches of exactly the runner's batch size (the last one
    padded with zeros) and hands each batch's real rows to `sink(image, channel, logits)`.

    Why a fixed shape: on the CPU a batch of one may take a different convolution algorithm
    than a larger batch (different last bits); at a fixed shape each row's output depends on
    that row only (tests/test_abscam.py). Rows are packed across images, so only the very
    last batch is padded. They are multiplied straight into the runner's batch buffer (in the
    model's memory format), so no other copy of a batch is ever made.
    """

    def __init__(self, runner: ModelRunner, sink: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]):
        self.runner, self.batch_size, self.sink = runner, runner.batch_size, sink
        self.image = torch.empty(self.batch_size, dtype=torch.long, device=runner.device)
        self.channel = torch.empty(self.batch_size, dtype=torch.long, device=runner.device)
        self.count = 0

    def add(self, image: torch.Tensor, masks: torch.Tensor, image_index: int, channels: torch.Tensor) -> None:
        """Rows image * masks[i] (image (C, H, W), masks (k, H, W)), labelled (image_index, channels[i])."""
        self.buffer = self.runner.batch_buffer(tuple(image.shape), image.dtype)
        done = 0
        while done < len(channels):
            take = min(self.batch_size - self.count, len(channels) - done)
            rows = slice(self.count, self.count + take)
            torch.mul(image, masks[done:done + take, None], out=self.buffer[rows])
            self.image[rows] = image_index
            self.channel[rows] = channels[done:done + take]
            self.count += take
            done += take
            if self.count == self.batch_size:
                self.run()

    def run(self) -> None:
        n = self.count
        self.buffer[n:].zero_()
        logits = self.runner(self.buffer)[:n]
        self.sink(self.image[:n], self.channel[:n], logits)
        self.count = 0

    def finish(self) -> None:
        if self.count:
            self.run()
