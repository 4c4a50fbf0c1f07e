"""What every explanation method declares, so that each stage can use it without knowing it.

A method is a `Method` subclass in one module of this package (or a plugin module, see
`registry.py`). It declares:
- its `name` (the CLI's `--method`) and whether it is a chance baseline;
- its `explain` flags (`options`) and how they become `explain()` keywords and the params
  recorded in the saliency file (`params_from_args`), and the human-readable `variant`;
- the configurations a workflow config asks for (`configurations`): each is a `MethodConfig`
  whose id names the saliency files and the table rows;
- its cost for the plan (`forward_passes`), and its sanity-check variants (`sanity_params`);
- `explain(model, images, target, ...) -> maps (B, H, W)`: the computation itself. This module
  imports no torch: a method imports its computation inside `explain`, so the workflow's
  Snakefile and the torch-free stages (aggregate, figures) read the registry cheaply.

The id scheme: a configuration's id is the method's name, or the name, '-' and a suffix
(`rise-binary-p0.5`, `abscam-final-layer3`, `random`), so the method of any id is known
(`registry.method_of_id`). Repeats of a configuration append `-seed<r>`.
"""
from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from ..errors import require

if TYPE_CHECKING:
    from ..config import Config


@dataclass(frozen=True)
class Option:
    """One `saliency-bench explain` flag that a method reads. Methods may share a flag (e.g.
    --layer); they must then agree on its type and default."""
    flag: str
    help: str
    type: Any = None
    default: Any = None
    choices: tuple | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        kwargs = {"default": self.default, "help": self.help}
        if self.type is not None:
            kwargs["type"] = self.type
        if self.choices is not None:
            kwargs["choices"] = self.choices
        parser.add_argument(self.flag, **kwargs)


@dataclass(frozen=True)
class MethodConfig:
    """One configuration the workflow runs: its id names its saliency files and its table rows."""
    method_id: str
    method: str  # the registered method's name
    variant: str  # what the plan needs to cost it (a layer name for Abs-CAM), else a label
    mask_id: str | None = None  # the mask set a RISE configuration reads
    args: tuple[str, ...] = field(default=())  # its method flags for `saliency-bench explain`

    def __post_init__(self) -> None:
        require(self.method_id == self.method or self.method_id.startswith(self.method + "-"),
                f"method id {self.method_id!r} must be {self.method!r} or start with '{self.method}-'")

    def cli_args(self) -> str:
        return shlex.join(["--method", self.method, "--method-id", self.method_id, *self.args])


class Method:
    """Base class of an explanation method (see the module's docstring)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # for people: "Abs-CAM Final"
    is_chance: ClassVar[bool] = False  # a reference row (chance or ground truth): compared with, never "best"
    role: ClassVar[str] = "chance"  # what the tables call a reference row of this method
    reads_evidence: ClassVar[bool] = False  # its maps read the evidence masks: a changed mask reruns its jobs
    options: ClassVar[tuple[Option, ...]] = ()
    params: ClassVar[frozenset[str]] = frozenset()  # keywords `explain` accepts beyond the common ones

    @property
    def plan_stage(self) -> str:
        """The plan's stage whose time and disk this method's jobs count in."""
        return "chance" if self.is_chance else self.name

    def configurations(self, config: Config) -> list[MethodConfig]:
        """The configurations that the workflow config asks for (default: none)."""
        return []

    def forward_passes(self, config: Config, method: MethodConfig, channels: dict[str, int]) -> int:
        """Forward-pass equivalents per image, for the plan (`channels`: Abs-CAM layers' widths)."""
        return 1

    def params_from_args(self, args: argparse.Namespace, image_ids: Sequence[str]) -> tuple[dict, dict]:
        """(keywords for `explain`, parameters recorded in the saliency file) from the CLI's flags."""
        values = {option.dest: getattr(args, option.dest) for option in self.options}
        return dict(values), dict(values)

    def variant(self, recorded: dict) -> str:
        """The human-readable variant stored in saliency files and tables (default: the method's name)."""
        return self.name

    def sanity_params(self, masks: Sequence[str], layers: Sequence[str]) -> list[tuple[str, dict]]:
        """(id, explain keywords) of each variant the randomisation check runs (default: one, no keywords)."""
        return [(self.name, {})]

    def sanity_forward_passes(self, config: Config, channels: dict[str, int]) -> int:
        """Forward-pass equivalents per image and model of the variants `sanity_params` gives, for the
        plan (default: one, costed as the method's first configuration)."""
        return sum(self.forward_passes(config, method, channels) for method in self.configurations(config)[:1])

    def explain(self, model, images, target, *, batch_size: int, precision: str, **params):
        """Maps (B, H, W) of the classes `target` (B,): a torch tensor or array."""
        raise NotImplementedError(f"method {self.name} does not define explain()")

    def explain_with_class(self, model, images, target, *, batch_size: int, precision: str, **params):
        """(maps, target, its softmax probability). target None: the top-1 class. A method whose own
        forward pass yields the logits overrides this to save the extra pass."""
        from ..runtime.forward import explained_class

        target, probability = explained_class(model, images, target, batch_size=batch_size, precision=precision)
        return self.explain(model, images, target, batch_size=batch_size, precision=precision, **params), target, probability
