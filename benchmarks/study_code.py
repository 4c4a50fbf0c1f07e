"""The study's algorithms, transcribed step by step from the protocol (docs/protocol.md) and the
description of its code: the study side of `compare_study.py`. tests/test_study_transcription.py
checks every function here against the golden outputs of the original code, so the benchmark
compares us with the study's algorithm, not a strawman.

- masks: one mask at a time, scikit-image `resize(order=1, mode='reflect', anti_aliasing=False)`,
  all N masks held as float64, saved with np.save, then copied to a float32 tensor;
- RISE: per image, the full (N, 3, H, W) masked stack at once, the model run on slices of `batch`
  (the RISE code's gpu_batch, 100), then one matmul for every class;
- Abs-CAM Init: per image, forward + backward with hooks;
- Abs-CAM Final: per image, all K masked images in ONE forward batch (unchunked);
- deletion/insertion: the original CausalMetric step loop, one image and one point per forward
  pass, editing the image in place through its numpy view, pixel order np.flip(np.argsort(map)).
"""
from __future__ import annotations

import numpy as np

def study_generate_masks(n: int, s: int, p: float, size, seed: int, path: str):
    """The RISE generator: a per-mask loop with scikit-image's reflecting bilinear resize."""
    import torch
    from skimage.transform import resize

    height, width = size
    rng = np.random.RandomState(seed)
    cell = np.ceil(np.array(size) / s).astype(int)
    upsampled = tuple((s + 1) * cell)
    grid = (rng.rand(n, s, s) < p).astype("float32")
    masks = np.empty((n, height, width))  # float64, as in the original
    for i in range(n):
        x, y = rng.randint(0, cell[0]), rng.randint(0, cell[1])
        masks[i] = resize(grid[i], upsampled, order=1, mode="reflect", anti_aliasing=False)[x:x + height, y:y + width]
    masks = masks.reshape(-1, 1, height, width)
    np.save(path, masks)
    return torch.from_numpy(masks).float()


def study_load_masks(path: str, device):
    import torch

    masks = np.load(path)
    return torch.from_numpy(masks).float().to(device)


def study_rise(model, image, masks, p: float, batch: int):
    """RISE for one (1, 3, H, W) image: the whole masked stack at once, maps of every class."""
    import torch

    n = len(masks)
    _, _, height, width = image.shape
    stack = torch.mul(masks, image)  # (N, 3, H, W)
    outputs = [model(stack[i:min(i + batch, n)]) for i in range(0, n, batch)]
    scores = torch.cat(outputs)  # logits: the study's choice
    classes = scores.shape[1]
    saliency = torch.matmul(scores.transpose(0, 1), masks.view(n, height * width))
    return saliency.view(classes, height, width) / n / p


def study_activations(model, image, layer: str):
    """Forward + backward of one image with hooks: activations, |grad| channel weights, class."""
    import torch

    module = dict(model.named_modules())[layer]
    saved = {}

    def keep(_module, _inputs, output):
        saved["A"] = output
        output.register_hook(lambda grad: saved.__setitem__("G", grad))

    handle = module.register_forward_hook(keep)
    try:
        model.zero_grad()
        with torch.enable_grad():
            logits = model(image)
            c = int(logits.argmax(dim=1))
            logits[0, c].backward()
    finally:
        handle.remove()
    activations = saved["A"].detach()[0]
    weights = saved["G"].abs().mean(dim=(2, 3))[0]
    return activations, weights, c


def study_abscam_init(model, image, layer: str):
    import torch.nn.functional as F

    activations, weights, _ = study_activations(model, image, layer)
    cam = (weights[:, None, None] * activations).sum(dim=0)
    cam = F.interpolate(cam[None, None], size=image.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return (cam - cam.min()) / (cam.max() - cam.min() + 1e-8)


def study_abscam_final(model, image, layer: str):
    """Abs-CAM Final of one image, all K masked images in ONE forward batch."""
    import torch
    import torch.nn.functional as F

    activations, weights, c = study_activations(model, image, layer)
    maps = F.interpolate((weights[:, None, None] * activations)[None], size=image.shape[-2:], mode="bilinear",
                         align_corners=False)[0]  # (K, H, W)
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    maps = (maps - low) / (high - low + 1e-8)
    with torch.no_grad():
        logits = model(image * maps[:, None])  # (K, 3, H, W) in one batch
        scores = logits[:, c].abs()
    return torch.relu((scores[:, None, None] * maps).sum(dim=0))


def study_gkern(klen: int = 11, sigma: float = 5.0) -> np.ndarray:
    """The blur kernel as a (3, 3, klen, klen) conv2d weight, the kernel on the channel diagonal."""
    from scipy.ndimage import gaussian_filter

    impulse = np.zeros((klen, klen))
    impulse[klen // 2, klen // 2] = 1
    kernel = gaussian_filter(impulse, sigma)
    weight = np.zeros((3, 3, klen, klen))
    for channel in range(3):
        weight[channel, channel] = kernel
    return weight.astype("float32")


class StudyCausalMetric:
    """The original step loop: one forward pass per point, the image edited in place."""

    def __init__(self, model, mode: str, step: int, substrate):
        import torch

        self.model = torch.nn.Sequential(model, torch.nn.Softmax(dim=1)).eval()
        self.mode, self.step, self.substrate = mode, step, substrate
        self.device = next(model.parameters()).device

    def single_run(self, image, explanation: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            _, _, height, width = image.shape
            pixels = height * width
            c = int(self.model(image).argmax(dim=1)[0])
            n_steps = (pixels + self.step - 1) // self.step
            if self.mode == "del":
                start, finish = image.clone(), self.substrate(image)
            else:
                start, finish = self.substrate(image), image.clone()
            start, finish = start.cpu(), finish.cpu()  # no-ops on the CPU, the original's case
            scores = np.empty(n_steps + 1)
            order = np.flip(np.argsort(explanation.reshape(-1, pixels), axis=1), axis=-1)
            for i in range(n_steps + 1):
                scores[i] = float(self.model(start.to(self.device))[0, c])
                if i < n_steps:
                    coords = order[:, self.step * i:self.step * (i + 1)]
                    # numpy views share the CPU tensors' memory: this edits `start` in place
                    start.numpy().reshape(1, 3, pixels)[0, :, coords] = finish.numpy().reshape(1, 3, pixels)[0, :, coords]
        return scores


def study_auc(curve: np.ndarray) -> float:
    return float((curve.sum() - curve[0] / 2 - curve[-1] / 2) / (len(curve) - 1))
