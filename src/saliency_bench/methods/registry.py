"""The registry: every method the package knows, by name. Adding a method is one module with a
`Method` subclass and one line below.

Methods from outside the package (a user's own, or a test's) are plugins: a module that calls
`register(MyMethod())` when imported. The workflow config lists them (`method_plugins`), and
the workflow passes them to every job in the environment variable SALIENCY_BENCH_METHODS
(module names separated by commas), which this module imports on first use.
"""
from __future__ import annotations

import importlib
import os

from ..errors import UserError, require
from .abscam import AbsCamFinal, AbsCamInit
from .base import Method
from .chance import CentreMaps, EvidenceMaps, RandomMaps
from .rise import Rise

PLUGINS_VARIABLE = "SALIENCY_BENCH_METHODS"

# Order matters: tables and figures list methods in it, reference rows (chance, ground truth) last.
BUILT_IN = (Rise(), AbsCamInit(), AbsCamFinal(), RandomMaps(), CentreMaps(), EvidenceMaps())
_REGISTRY: dict[str, Method] = {method.name: method for method in BUILT_IN}
_loaded_plugins: set[str] = set()


def register(method: Method) -> Method:
    """Add `method` (an instance); registering the same name again replaces it (a reloaded plugin)."""
    require(bool(method.name) and method.name == method.name.strip() and " " not in method.name,
            f"method name {method.name!r} must be a non-empty word")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method (a plugin's, e.g. at the end of a test); the built-in ones stay."""
    require(name not in {method.name for method in BUILT_IN}, f"{name} is a built-in method and cannot be removed")
    _REGISTRY.pop(name, None)


def load_plugins(modules: str | list[str] | None = None) -> None:
    """Import plugin modules (default: those named in SALIENCY_BENCH_METHODS); each registers its methods."""
    if modules is None:
        modules = os.environ.get(PLUGINS_VARIABLE, "")
    names = [m.strip() for m in (modules.split(",") if isinstance(modules, str) else modules) if m.strip()]
    for name in names:
        if name in _loaded_plugins:
            continue
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise UserError(f"method plugin {name!r} cannot be imported ({error}); put its folder on PYTHONPATH "
                            f"or remove it from method_plugins / {PLUGINS_VARIABLE}") from error
        _loaded_plugins.add(name)


def methods() -> list[Method]:
    """All registered methods: the explanation methods first, then the chance baselines."""
    load_plugins()
    ordered = list(_REGISTRY.values())
    return [m for m in ordered if not m.is_chance] + [m for m in ordered if m.is_chance]


def method_names() -> list[str]:
    return [method.name for method in methods()]


def get_method(name: str) -> Method:
    load_plugins()
    if name not in _REGISTRY:
        raise UserError(f"unknown method {name!r}; use one of {', '.join(method_names())}")
    return _REGISTRY[name]


def chance_ids() -> list[str]:
    """Ids of the chance baselines' configurations (a chance method's id is its name)."""
    return [method.name for method in methods() if method.is_chance]


def reference_role(method_id: str) -> str:
    """What a reference row is ("chance", "ground truth"); "chance" for an id of no registered method."""
    method = method_of_id(method_id)
    return method.role if method is not None else "chance"


def method_of_id(method_id: str) -> Method | None:
    """The method whose configuration `method_id` is (the longest matching name), else None."""
    matches = [m for m in methods() if method_id == m.name or method_id.startswith(m.name + "-")]
    return max(matches, key=lambda m: len(m.name)) if matches else None


def method_sort_key(method_id: str) -> tuple:
    """Order of method ids in tables and figures: registry order (chance last), then the id;
    an id of no registered method goes after the methods, before the chance baselines."""
    ordered = methods()
    method = method_of_id(method_id)
    if method is not None:
        return (ordered.index(method), method_id)
    return (sum(not m.is_chance for m in ordered) - 0.5, method_id)
