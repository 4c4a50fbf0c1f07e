"""How model.arch names a model factory of the user's ("module:function") and where its code lies.
Free of torch: the Snakefile's parse makes the factory's file a rule input without building the model."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import require

FACTORY_SEPARATOR = ":"  # model.arch "my_models:small_cnn": the function small_cnn of the module my_models


def is_factory(arch: str) -> bool:
    return FACTORY_SEPARATOR in arch


def factory_parts(arch: str) -> tuple[str, str]:
    """'package.module:function' -> ('package.module', 'function'), or one line saying how to write it."""
    module, _, name = arch.partition(FACTORY_SEPARATOR)
    require(bool(module) and name.isidentifier() and all(part.isidentifier() for part in module.split(".")),
            f"model.arch {arch!r} is no model factory; write module:function, e.g. my_models:small_cnn "
            "(a function of an importable module that takes num_classes and returns the nn.Module)")
    return module, name


def factory_source(arch: str) -> Path | None:
    """The file of a factory's module (a rule input: editing the model's code reruns its jobs), found
    without running it; None for a torchvision name or a module that is no file."""
    if not is_factory(arch):
        return None
    module = factory_parts(arch)[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    require(spec is not None, f"model.arch {arch}: module {module} cannot be found; put its folder on PYTHONPATH")
    return Path(spec.origin) if spec.origin and Path(spec.origin).is_file() else None
