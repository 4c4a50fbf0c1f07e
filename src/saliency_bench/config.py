"""The workflow config as one typed, read-only object (`Config`), built once from a validated dict.

The JSON schema (`config.schema.yaml` beside this module; `workflow/schemas/` links to it) is the
single source of the keys' defaults: the Snakefile validates the config against it with the
defaults filled in and builds `Config` once (`load_config`); every rule and library function reads
that object, and the CLI's options take their defaults from it (`defaults()`). These classes name
the keys and their types only; a key missing here or in the schema is an error
(tests/test_config.py compares the two), so no default can be written twice.
"""
from __future__ import annotations

import copy
import functools
import typing
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path

from .errors import UserError

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


@dataclass(frozen=True)
class DataConfig:
    root: str | None
    file_list: str | None
    list_root: str | None
    split: str
    val_fraction: float
    split_seed: int
    limit: int | None
    per_class_limit: int | None
    class_names: tuple[str, ...] | None
    evidence_root: str | None


@dataclass(frozen=True)
class PreprocessConfig:
    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    checkpoint: str | None
    weights: str | None
    num_classes: int | None


@dataclass(frozen=True)
class DemoConfig:
    train: bool
    per_class: int
    none: int
    size: int
    seed: int
    epochs: int
    time_limit: float


@dataclass(frozen=True)
class BinaryMasksConfig:
    p: tuple[float, ...]


@dataclass(frozen=True)
class GaussianMasksConfig:
    enabled: bool
    mean: float
    std: float


@dataclass(frozen=True)
class PerlinMasksConfig:
    enabled: bool
    engine: str
    frequency: float
    octaves: int
    phase: bool


@dataclass(frozen=True)
class RiseConfig:
    n_masks: int
    s: int
    seed: int
    score: str
    repeats: int
    mask_dtype: str
    upsample: str
    binary: BinaryMasksConfig
    gaussian: GaussianMasksConfig
    perlin: PerlinMasksConfig


@dataclass(frozen=True)
class AbscamConfig:
    layers: tuple[str, ...]
    variants: tuple[str, ...]


@dataclass(frozen=True)
class BaselinesConfig:
    seed: int
    evidence: bool


@dataclass(frozen=True)
class MetricsConfig:
    step_rows: int
    deletion_substrate: str
    insertion_substrate: str


@dataclass(frozen=True)
class StatsConfig:
    bootstrap: int
    seed: int
    alpha: float


@dataclass(frozen=True)
class FiguresConfig:
    max_images: int


@dataclass(frozen=True)
class SanityConfig:
    enabled: bool
    images: int


@dataclass(frozen=True)
class Config:
    data: DataConfig
    preprocess: PreprocessConfig
    model: ModelConfig
    device: str
    precision: str
    fold_bn: bool
    memory_format: str
    batch_size: int | str
    threads: int
    images_per_job: int
    demo: DemoConfig
    rise: RiseConfig
    abscam: AbscamConfig
    baselines: BaselinesConfig
    method_plugins: tuple[str, ...]
    metrics: MetricsConfig
    stats: StatsConfig
    figures: FiguresConfig
    sanity: SanityConfig

    def to_dict(self) -> dict:
        """Plain values (tuples as lists): for JSON and YAML."""
        return _plain(asdict(self))


def load_config(values: typing.Mapping, schema_path: str | Path = SCHEMA_PATH) -> Config:
    """Check `values` against the schema, fill in the schema's defaults and build the typed config:
    what the Snakefile does once. `values` itself is left as it is."""
    schema = read_schema(schema_path)
    completed = copy.deepcopy(dict(values))
    fill_defaults(completed, schema)
    validate_config(completed, schema)
    return build_config(completed)


@functools.cache
def defaults() -> Config:
    """The schema's defaults as a config: the CLI's options default to these, so that a command
    run by hand does what the workflow does with an empty config."""
    values: dict = {}
    fill_defaults(values, read_schema(SCHEMA_PATH))
    return build_config(values)


def build_config(validated: typing.Mapping) -> Config:
    """The typed config of a dict the schema has validated and completed with its defaults."""
    return _build(Config, validated, "")


def read_schema(schema_path: str | Path) -> dict:
    import yaml

    return yaml.safe_load(Path(schema_path).read_text())


def fill_defaults(values: dict, schema: dict) -> None:
    """Set every absent key that the schema gives a default, recursively (as Snakemake's
    `validate(..., set_default=True)` does): an absent section becomes {} and is filled in turn."""
    for key, rule in schema.get("properties", {}).items():
        if key not in values and "default" in rule:
            values[key] = copy.deepcopy(rule["default"])
        if isinstance(values.get(key), dict):
            fill_defaults(values[key], rule)


def validate_config(config: dict, schema: dict | str | Path) -> None:
    """Check `config` against the JSON schema; the first problem becomes one line naming the key."""
    import jsonschema

    schema = schema if isinstance(schema, dict) else read_schema(schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        error = errors[0]
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise UserError(f"config key {key}: {error.message}; see config/README.md for the allowed values")


def _build(cls: type, values: typing.Mapping, where: str):
    if not isinstance(values, typing.Mapping):
        raise UserError(f"config key {where or '(top level)'} must be a mapping; see config/README.md")
    names = [field.name for field in fields(cls)]
    missing, unknown = [n for n in names if n not in values], sorted(set(values) - set(names))
    if missing or unknown:
        problem = f"missing keys {missing}" if missing else f"unknown keys {unknown}"
        raise UserError(f"config {where or '(top level)'}: {problem}; build the config from one the schema "
                        "(saliency_bench/config.schema.yaml) has validated with its defaults filled in")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _value(hints[name], values[name], f"{where}.{name}".lstrip(".")) for name in names})


def _value(hint, value, where: str):
    if is_dataclass(hint):
        return _build(hint, value, where)
    return tuple(value) if isinstance(value, list) else value


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
