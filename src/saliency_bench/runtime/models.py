"""Models: any torchvision classifier by name or a model factory of the user's, a checkpoint loaded
safely, the device."""
from __future__ import annotations

import importlib
import inspect
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError, require
from .factories import factory_parts, is_factory
from .forward import exact_float32

STATE_DICT_KEYS = ("state_dict", "model_state_dict")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU."""
    require(device in ("auto", "cpu", "cuda") or device.startswith("cuda:"),
            f"unknown device {device!r}; use auto, cpu or cuda")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        require(torch.cuda.is_available(), f"device {device} requested but CUDA is not available; use device: cpu or auto")
    exact_float32(torch.device(device))
    return torch.device(device)


def classifier_names() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def build_model(arch: str = "resnet18", num_classes: int = 1000, weights: str | None = None) -> nn.Module:
    """A torchvision classifier with its last layer sized to `num_classes`, or the model that the
    factory `arch` = 'module:function' returns for `num_classes`.

    `weights="DEFAULT"` loads torchvision's ImageNet weights (1000 classes; needs a
    download or a populated torch hub cache, which is impossible offline).
    """
    require(num_classes >= 1, f"num_classes must be at least 1, got {num_classes}")
    if is_factory(arch):
        require(not weights, f"model.weights names torchvision's weights, which model.arch {arch} cannot take; "
                             "use model.checkpoint")
        return factory_model(arch, num_classes)
    import torchvision.models as tvm

    names = classifier_names()
    require(arch in names, f"unknown architecture {arch!r}; use a torchvision classifier such as resnet18, resnet50, "
                           "vgg16 (all: saliency-bench models) or a model factory of yours, module:function")
    if weights:
        weight = pretrained_weights(arch, weights)
        classes = len(weight.meta["categories"])
        require(num_classes == classes, f"weights: {weights} gives the {classes} ImageNet classes, but num_classes is {num_classes}; set num_classes to {classes} or drop weights")
        try:
            return tvm.get_model(arch, weights=weight)
        except (OSError, RuntimeError) as error:  # offline (URLError is an OSError), or a corrupt download
            raise UserError(f"cannot get the {weight} weights ({one_line(error)}); download {weight.url} into "
                            "$TORCH_HOME/hub/checkpoints, or use model.checkpoint instead of weights") from None
    return tvm.get_model(arch, weights=None, num_classes=num_classes)


def factory_model(arch: str, num_classes: int) -> nn.Module:
    """`function(num_classes=...)` of the module that `arch` names; it is the user's code, run as a
    method plugin is (put its folder on PYTHONPATH)."""
    module_name, name = factory_parts(arch)
    try:
        module = importlib.import_module(module_name)
    except (ImportError, SyntaxError) as error:  # other errors of the user's code keep their traceback
        raise UserError(f"model.arch {arch}: module {module_name} cannot be imported ({one_line(error)}); "
                        "put its folder on PYTHONPATH") from None
    factory = getattr(module, name, None)
    require(callable(factory), f"model.arch {arch}: {module_name} has no function {name}; name one that takes "
                               "num_classes and returns the nn.Module")
    try:
        inspect.signature(factory).bind(num_classes=num_classes)
    except TypeError:
        raise UserError(f"model.arch {arch}: {name} does not take num_classes as a keyword; give it that "
                        "parameter (the number of classes of the checkpoint)") from None
    except ValueError:  # no signature to inspect (some builtins): the call itself will tell
        pass
    model = factory(num_classes=num_classes)
    require(isinstance(model, nn.Module), f"model.arch {arch}: {name}(num_classes={num_classes}) returned a "
                                          f"{type(model).__name__}, not a torch.nn.Module")
    return model


def pretrained_weights(arch: str, weights: str):
    """torchvision's weights enum member for a name such as DEFAULT or IMAGENET1K_V1 (nothing is downloaded)."""
    import torchvision.models as tvm

    available = tvm.get_model_weights(arch)
    try:
        return available.verify(weights)
    except (KeyError, ValueError):
        raise UserError(f"unknown weights {weights!r} for {arch}; use one of {', '.join(available.__members__)}") from None


def one_line(error: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an error message, without terminal colour codes."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines() if line.strip()]
    return (lines[0] if lines else error.__class__.__name__)[:limit]


def unreadable_checkpoint(path: Path, error: Exception) -> UserError:
    detail = re.search(r"WeightsUnpickler error:\s*(\S.*)", str(error))  # torch's own message buries the reason
    reason = detail.group(1).strip() if detail else one_line(error)
    if path.stat().st_size == 0:
        reason = "the file is empty"
    elif reason != error.__class__.__name__:
        reason = f"{error.__class__.__name__}: {reason}"
    return UserError(f"cannot read checkpoint {path} ({reason[:200]}); is it a torch.save file? "
                     "Save one with torch.save(model.state_dict(), path)")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict (or a dict holding one) with weights_only=True: never unpickle code."""
    path = Path(path)
    require(path.is_file(), f"checkpoint not found: {path}; set model.checkpoint to a file saved with torch.save(model.state_dict(), path)")
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if unsafe is None:  # not a pickle of allowed types at all: corrupt or not a torch.save file
            raise unreadable_checkpoint(path, error) from None
        raise UserError(f"checkpoint {path} holds a pickled {unsafe.group(1)}, which only torch.load(weights_only=False) "
                        "could read and which could run arbitrary code; if you trust the file, load it once and re-save "
                        "a plain state dict: torch.save(model.state_dict(), path)") from None
    except Exception as error:  # torch.load raises KeyError, EOFError, RuntimeError ... on files it cannot parse
        raise unreadable_checkpoint(path, error) from None
    if isinstance(loaded, dict):
        for key in STATE_DICT_KEYS:
            if key in loaded and isinstance(loaded[key], dict):
                loaded = loaded[key]
                break
    require(isinstance(loaded, dict) and all(isinstance(v, torch.Tensor) for v in loaded.values()),
            f"checkpoint {path} holds no state dict (expected a dict of tensors, or one under 'state_dict' / 'model_state_dict')")
    # Checkpoints saved from nn.DataParallel / DistributedDataParallel carry a 'module.' prefix
    # on every key, those of a torch.compile'd model '_orig_mod.'.
    for prefix in WRAPPER_PREFIXES:
        if loaded and all(k.startswith(prefix) for k in loaded):
            loaded = {k[len(prefix):]: v for k, v in loaded.items()}
    return loaded


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a checkpoint into `model`, naming missing, unexpected and mis-shaped keys on mismatch."""
    state = read_state_dict(path)
    expected = model.state_dict()
    fitting = prefixes_that_fit(state, expected)
    if len(fitting) == 1 and all(key.startswith(fitting[0]) for key in state):
        # the model held as one attribute of a wrapper, e.g. a LightningModule's self.model: 'model.conv1.weight'
        state, fitting = {key[len(fitting[0]):]: value for key, value in state.items()}, []
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
        fix = (prefix_fix(fitting, list(state)) or sequential_head_fix(missing, unexpected)
               or "check model.arch and num_classes (or class_names) against how the checkpoint was trained")
        raise UserError(f"checkpoint {path} does not fit the model ({'; '.join(parts)}); {fix}")
    model.load_state_dict(state)
    return model


def prefixes_that_fit(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> list[str]:
    """Each first key component 'p.' under which the checkpoint holds exactly the model's keys."""
    wanted = set(expected)
    if set(state) == wanted:
        return []
    prefixes = sorted({key.split(".", 1)[0] + "." for key in state if "." in key})
    return [prefix for prefix in prefixes
            if {key[len(prefix):] for key in state if key.startswith(prefix)} == wanted]


def prefix_fix(fitting: list[str], keys: list[str]) -> str | None:
    """The re-save that keeps one prefix's keys, where others share the checkpoint (a loss's weights,
    a teacher model): which of them is the explained model only the user knows."""
    if not fitting:
        return None
    keep = fitting[0]
    resave = f"torch.save({{k[{len(keep)}:]: v for k, v in state_dict.items() if k.startswith({keep!r})}}, path)"
    if len(fitting) > 1:
        return f"the keys under {' and '.join(map(repr, fitting))} each fit the model; keep the one you explain: {resave}"
    others = [key for key in keys if not key.startswith(keep)]
    return (f"the keys under {keep!r} fit the model, beside {len(others)} other key(s) ({', '.join(others[:3])}"
            f"{' ...' if len(others) > 3 else ''}); keep the model's: {resave}")


def sequential_head_fix(missing: list[str], unexpected: list[str]) -> str | None:
    """The fix where the checkpoint's only difference is one module wrapped in an nn.Sequential, as
    fine-tuning code often writes a head (`model.fc = nn.Sequential(nn.Dropout(0.5), nn.Linear(512, 4))`):
    each missing `fc.weight` is there as `fc.1.weight`. Only the user knows whether the other layers
    of that Sequential are weightless ones that change nothing in eval mode, so it is not loaded as is."""
    wrapped = {re.sub(r"^(.*)\.(\d+)\.([^.]+)$", r"\1.\3", key): key for key in unexpected}
    if not missing or sorted(missing) != sorted(wrapped) or len(wrapped) != len(unexpected):
        return None
    module, index = wrapped[missing[0]].rsplit(".", 2)[:2]
    if any(not wrapped[key].startswith(f"{module}.{index}.") for key in missing):
        return None
    attribute = "model" + "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in module.split("."))
    return (f"the checkpoint's {module} is an nn.Sequential whose layer {index} holds these weights; if its other "
            f"layers have no weights and change nothing in eval mode (Dropout), load it in your code and re-save it "
            f"with {attribute} = {attribute}[{index}]; torch.save(model.state_dict(), path)")


def load_model(arch: str = "resnet18", num_classes: int = 1000, checkpoint: str | None = None,
               weights: str | None = None, device: str | torch.device = "cpu",
               input_size: tuple[int, int] | None = None) -> nn.Module:
    """Build, load and move a classifier to `device`, in eval mode. Given `input_size`, one zero image
    goes through it first (see `probe_forward`)."""
    require(checkpoint is None or weights is None, "give either model.checkpoint or model.weights, not both")
    model = build_model(arch, num_classes, weights)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    device = resolve_device(device) if isinstance(device, str) else device
    model = model.to(device).eval()
    if input_size is not None:
        probe_forward(model, input_size, arch, num_classes)
    return model


def probe_forward(model: nn.Module, input_size: tuple[int, int], arch: str, num_classes: int) -> torch.Size:
    """Run one zero image of `input_size` through `model`; its output shape. An image too small for the
    architecture (vgg11 at 8x8 px pools down to nothing) or a model without one score per class is a
    one-line error here, before a long job, not a traceback from inside torch."""
    height, width = input_size
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            output = model(torch.zeros(1, 3, height, width, device=device))
    except RuntimeError as error:
        channels = re.search(r"to have (\d+) channels, but got 3 channels", str(error))
        if channels:  # a greyscale model: no image size would help
            raise UserError(f"{arch} takes {channels.group(1)}-channel images, but the images are fed as RGB (3 channels); "
                            "give the model an RGB input, e.g. in a model factory (model.arch module:function) whose "
                            "forward first averages the channels, x.mean(1, keepdim=True), with equal preprocess.mean "
                            "and preprocess.std per channel") from None
        raise UserError(f"{arch} cannot take {height}x{width} px images ({one_line(error)}); "
                        "use a larger image size (the one the model was trained at)") from error
    require(isinstance(output, torch.Tensor),
            f"{arch} returns a {type(output).__name__} for one image, not a (1, {num_classes}) tensor of class scores; "
            "give it a forward that returns the logits alone (for a model of your own, in its model factory)")
    require(tuple(output.shape) == (1, num_classes),
            f"{arch} gives output {tuple(output.shape)} for one image, not (1, {num_classes}); use a classifier "
            "whose last layer gives one score per class")
    return output.shape
