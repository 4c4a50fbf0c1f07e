"""Every default the CLI states for a config key is the schema's (one fact, read from one place)."""
from __future__ import annotations

import argparse

import pytest
import yaml

from saliency_bench.cli import build_parser
from saliency_bench.config import defaults
from saliency_bench.metrics.causal import DEFAULT_STEP_ROWS, default_step
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
