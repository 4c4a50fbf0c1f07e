"""Every default the CLI and the public API state for a config key is the schema's (one fact: the
CLI reads it from the schema; the API's keyword defaults are checked against it here)."""
from __future__ import annotations

import argparse
import inspect

import pytest
import yaml

from saliency_bench import data, masks
from saliency_bench.analysis import aggregate, stats, summary
from saliency_bench.cli import build_parser
from saliency_bench.config import defaults
from saliency_bench.metrics.causal import DEFAULT_STEP_ROWS, default_step
from saliency_bench.rise import rise_saliency
from workflow_helpers import SCHEMA

# (command, option dest) -> the config key whose default it must have
CLI_KEYS = {
    ("images", "split"): "data.split", ("images", "val_fraction"): "data.val_fraction",
    ("images", "split_seed"): "data.split_seed", ("images", "images_per_job"): "images_per_job",
    ("explain", "size"): "preprocess.size", ("explain", "mean"): "preprocess.mean", ("explain", "std"): "preprocess.std",
    ("explain", "arch"): "model.arch", ("explain", "device"): "device", ("explain", "precision"): "precision",
    ("check-model", "size"): "preprocess.size", ("plan", "size"): "preprocess.size",
    ("evaluate", "step_rows"): "metrics.step_rows", ("evaluate", "deletion_substrate"): "metrics.deletion_substrate",
    ("evaluate", "insertion_substrate"): "metrics.insertion_substrate",
    ("aggregate", "bootstrap"): "stats.bootstrap", ("aggregate", "seed"): "stats.seed", ("aggregate", "alpha"): "stats.alpha",
    ("demo-data", "per_class"): "demo.per_class", ("demo-data", "none"): "demo.none", ("demo-data", "size"): "demo.size",
    ("demo-data", "seed"): "demo.seed",
    ("train-demo", "size"): "demo.size", ("train-demo", "epochs"): "demo.epochs", ("train-demo", "seed"): "demo.seed",
    ("train-demo", "time_limit"): "demo.time_limit", ("train-demo", "val_fraction"): "data.val_fraction",
    ("train-demo", "split_seed"): "data.split_seed",
    ("masks", "s"): "rise.s", ("masks", "seed"): "rise.seed", ("masks", "upsample"): "rise.upsample",
    ("masks", "dtype"): "rise.mask_dtype", ("sanity", "n_images"): "sanity.images",
}


def subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser([name])
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def schema_default(key: str):
    rule = yaml.safe_load(SCHEMA.read_text())
    for part in key.split("."):
        rule = rule["properties"][part]
    return rule["default"]


@pytest.mark.parametrize("command, dest", sorted(CLI_KEYS))
def test_the_cli_default_is_the_schemas(command, dest):
    default = subcommand(command).get_default(dest)
    expected = schema_default(CLI_KEYS[command, dest])
    assert (list(default) if isinstance(default, tuple) else default) == expected


def test_the_typed_defaults_are_the_schemas():
    assert defaults().images_per_job == schema_default("images_per_job")
    assert defaults().rise.binary.p == tuple(schema_default("rise.binary.p"))


def test_step_default_is_the_schemas():
    assert schema_default("metrics.step_rows") == DEFAULT_STEP_ROWS  # the library's default_step, for API callers
    assert default_step(224) == 1792  # the protocol's 8 rows at 224 px


# (function, keyword) -> the config key whose default it must have
API_KEYS = {
    **{(function, keyword): key for function in (data.select_split, data.select_images)
       for keyword, key in (("split", "data.split"), ("fraction", "data.val_fraction"), ("seed", "data.split_seed"))},
    **{(function, keyword): f"preprocess.{keyword}" for function in (data.preprocess, data.load_images)
       for keyword in ("size", "mean", "std")},
    **{(function, keyword): f"rise.{keyword}" for function in (masks.plan_masks, masks.generate_masks, masks.write_masks)
       for keyword in ("s", "seed")},
    (masks.plan_masks, "upsample"): "rise.upsample", (masks.write_masks, "upsample"): "rise.upsample",
    (masks.write_masks, "dtype"): "rise.mask_dtype", (rise_saliency, "score"): "rise.score",
    **{(function, keyword): key for function in (aggregate.aggregate, summary.summarise, stats.bootstrap_means)
       for keyword, key in (("n_resamples", "stats.bootstrap"), ("seed", "stats.seed"), ("alpha", "stats.alpha"))
       if keyword in inspect.signature(function).parameters},
}


@pytest.mark.parametrize("function, keyword", sorted(API_KEYS, key=lambda k: (k[0].__qualname__, k[1])),
                         ids=lambda v: getattr(v, "__qualname__", v))
def test_the_api_default_is_the_schemas(function, keyword):
    default = inspect.signature(function).parameters[keyword].default
    assert (list(default) if isinstance(default, tuple) else default) == schema_default(API_KEYS[function, keyword])


@pytest.mark.parametrize("kind, keyword", [("gaussian", "mean"), ("gaussian", "std"), ("perlin", "engine"),
                                           ("perlin", "frequency"), ("perlin", "octaves"), ("perlin", "phase")])
def test_the_mask_generators_defaults_are_the_schemas(kind, keyword):
    assert masks.DEFAULT_PARAMS[kind][keyword] == schema_default(f"rise.{kind}.{keyword}")
