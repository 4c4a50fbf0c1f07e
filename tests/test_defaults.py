"""Defaults that the CLI and the workflow schema both state must agree (one fact, checked)."""
from __future__ import annotations

import yaml

from saliency_bench.formats.image_table import DEFAULT_IMAGES_PER_JOB
from saliency_bench.metrics.causal import DEFAULT_STEP_ROWS, default_step
from workflow_helpers import REPO

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def test_images_per_job_default_is_the_schemas():
    assert SCHEMA["properties"]["images_per_job"]["default"] == DEFAULT_IMAGES_PER_JOB


def test_step_default_is_the_schemas():
    assert SCHEMA["properties"]["metrics"]["properties"]["step_rows"]["default"] == DEFAULT_STEP_ROWS
    assert default_step(224) == 1792  # the protocol's 8 rows at 224 px
