"""Models: any torchvision classifier by name, a checkpoint loaded safely, the device."""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserError, require

STATE_DICT_KEYS = ("state_dict", "model_state_dict")


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU."""
    require(device in ("auto", "cpu", "cuda") or device.startswith("cuda:"),
            f"unknown device {device!r}; use auto, cpu or cuda")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        require(torch.cuda.is_available(), f"device {device} requested but CUDA is not available; use device: cpu or auto")
    return torch.device(device)


def classifier_names() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def build_model(arch: str = "resnet18", num_classes: int = 1000, weights: str | None = None) -> nn.Module:
    """A torchvision classifier with its last layer sized to `num_classes`.

    `weights="DEFAULT"` loads torchvision's ImageNet weights (1000 classes; needs a
    download or a populated torch hub cache, which is impossible offline).
    """
    import torchvision.models as tvm

    names = classifier_names()
    require(arch in names, f"unknown architecture {arch!r}; use a torchvision classifier such as resnet18, resnet50, vgg16 (all: saliency-bench models)")
    if weights:
        require(num_classes == 1000, f"weights: {weights} gives the 1000 ImageNet classes, but num_classes is {num_classes}; set num_classes to 1000 or drop weights")
        return tvm.get_model(arch, weights=weights)
    require(num_classes >= 1, f"num_classes must be at least 1, got {num_classes}")
    return tvm.get_model(arch, weights=None, num_classes=num_classes)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict (or a dict holding one) with weights_only=True: never unpickle code."""
    path = Path(path)
    require(path.is_file(), f"checkpoint not found: {path}; set model.checkpoint to a file saved with torch.save(model.state_dict(), path)")
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "unsafe pickle"
        raise UserError(f"checkpoint {path} needs weights_only=False ({first[:160]}), which could run arbitrary code; "
                        "re-save it as a plain state dict: torch.save(model.state_dict(), path)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise UserError(f"cannot read checkpoint {path}: {str(error).splitlines()[0][:200]}; is it a torch.save file?") from None
    if isinstance(loaded, dict):
        for key in STATE_DICT_KEYS:
            if key in loaded and isinstance(loaded[key], dict):
                loaded = loaded[key]
                break
    require(isinstance(loaded, dict) and all(isinstance(v, torch.Tensor) for v in loaded.values()),
            f"checkpoint {path} holds no state dict (expected a dict of tensors, or one under 'state_dict' / 'model_state_dict')")
    # Checkpoints saved from nn.DataParallel carry a 'module.' prefix on every key.
    if loaded and all(k.startswith("module.") for k in loaded):
        loaded = {k[len("module."):]: v for k, v in loaded.items()}
    return loaded


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a checkpoint into `model`, naming missing, unexpected and mis-shaped keys on mismatch."""
    state = read_state_dict(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or mis_shaped:
        parts = []
        if mis_shaped:
            parts.append("shape mismatch: " + ", ".join(mis_shaped[:3]) + (" ..." if len(mis_shaped) > 3 else ""))
        if missing:
            parts.append(f"missing {len(missing)} keys: " + ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else ""))
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys: " + ", ".join(unexpected[:3]) + (" ..." if len(unexpected) > 3 else ""))
        raise UserError(f"checkpoint {path} does not fit the model ({'; '.join(parts)}); "
                        "check model.arch and num_classes (or class_names) against how the checkpoint was trained")
    model.load_state_dict(state)
    return model


def load_model(arch: str = "resnet18", num_classes: int = 1000, checkpoint: str | None = None,
               weights: str | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Build, load and move a classifier to `device`, in eval mode."""
    require(checkpoint is None or weights is None, "give either model.checkpoint or model.weights, not both")
    model = build_model(arch, num_classes, weights)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    device = resolve_device(device) if isinstance(device, str) else device
    return model.to(device).eval()
