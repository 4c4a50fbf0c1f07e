"""Adding a method is one module and one `register` call: a throw-away method (tests/data/plugins/
edges_method.py) reaches the registry, `compute_maps`, the CLI, the plan, the tables, the figures
and a real workflow run, without a change to the package."""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from saliency_bench import methods as registry
from saliency_bench import workflow_config as wc
from saliency_bench.explain import compute_maps
from saliency_bench.runtime.models import build_model
from saliency_bench.plan import build_stages
from saliency_bench.analysis.summary import annotate, summarise
from test_workflow import effective_config
from workflow_helpers import REPO, planned_jobs, snakemake, typed_config, write_config

PLUGINS = REPO / "tests" / "data" / "plugins"
PLUGIN = "edges_method"


@pytest.fixture
def edges(monkeypatch):
    """The plugin registered in this process (and removed afterwards, with the environment it set)."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv(registry.registry.PLUGINS_VARIABLE, "")  # unset again afterwards (configs set it)
    sys.modules.pop(PLUGIN, None)
    importlib.import_module(PLUGIN)
    yield registry.get_method("edges")
    registry.unregister("edges")
    sys.modules.pop(PLUGIN, None)


def test_the_plugin_is_registered_before_the_chance_baselines(edges):
    names = registry.method_names()
    assert names.index("edges") < names.index("random") < names.index("centre")
    assert registry.method_of_id("edges") is edges and not edges.is_chance
    assert registry.chance_ids() == ["random", "centre", "evidence"]
    assert registry.method_sort_key("abscam-final-layer4") < registry.method_sort_key("edges") < registry.method_sort_key("random")


def test_compute_maps_runs_the_plugin_and_checks_its_parameters(edges):
    torch.manual_seed(0)
    model = build_model("resnet18", 3).eval()
    images = torch.randn(2, 3, 32, 32)
    maps, target, top1_prob = compute_maps(model, images, "edges", edge_power=2.0)
    gray = images.mean(dim=1)
    assert maps.shape == (2, 32, 32) and target.shape == (2,) and np.all((0 < top1_prob) & (top1_prob <= 1))
    down = (gray[:, 1, 5] - gray[:, 0, 5]) ** 2 + (gray[:, 0, 6] - gray[:, 0, 5]) ** 2
    np.testing.assert_allclose(maps[:, 0, 5], down.numpy(), rtol=1e-5)
    with pytest.raises(Exception, match="unknown parameter.*layer.*edges"):
        compute_maps(model, images, "edges", layer="layer3")


def test_the_workflow_config_and_the_plan_pick_it_up(edges):
    config = typed_config({"rise": {"n_masks": 4, "binary": {"p": [0.5]}, "gaussian": {"enabled": False},
                                    "perlin": {"enabled": False}}, "preprocess": {"size": [32, 32]},
                           "abscam": {"layers": ["layer4"], "variants": ["init"]}, "method_plugins": [PLUGIN]})
    ids = [m.method_id for m in wc.method_configs(config)]
    assert ids == ["rise-binary-p0.5", "abscam-init-layer4", "edges", "random", "centre"]
    assert os.environ[registry.registry.PLUGINS_VARIABLE] == PLUGIN  # every job imports it too
    stages = build_stages(config, [3, 2], rate=100.0, channels={"layer4": 512})
    assert stages["edges"].jobs == 2 and stages["edges"].forward_passes == 5  # one pass per image: its class
    assert stages["chance"].jobs == 4


def test_tables_rank_the_plugin_as_a_contender(edges):
    rng = np.random.default_rng(0)
    rows = []
    for method_id, method in (("edges", "edges"), ("rise-binary-p0.5", "rise"), ("random", "random")):
        for image in range(6):
            deletion, insertion = rng.uniform(0.1, 0.3), rng.uniform(0.5, 0.9) + (0.3 if method_id == "edges" else 0)
            rows.append(dict(image_id=f"img{image}", method_id=method_id, method=method, variant="v", target=0,
                             top1_prob=0.9, deletion_auc=deletion, insertion_auc=insertion, deleted_prob=0.05,
                             blurred_prob=0.2, constant_map=False, deletion_substrate="zeros",
                             insertion_substrate="blur", step=8))
    summary = summarise(annotate(pd.DataFrame(rows)), n_resamples=200).table
    assert list(summary["method_id"]) == ["edges", "rise-binary-p0.5", "random"]  # chance last
    assert summary.set_index("method_id").at["edges", "is_chance"] == False  # noqa: E712
    assert summary.set_index("method_id")["score"].idxmax() == "edges"


def test_the_cli_lists_the_plugin_and_its_flag():
    env = {**os.environ, registry.registry.PLUGINS_VARIABLE: PLUGIN,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "saliency_bench", "explain", "--help"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "edges" in result.stdout and "--edge-power" in result.stdout
    missing = subprocess.run([sys.executable, "-m", "saliency_bench", "explain", "--help"], capture_output=True, text=True,
                             env={**env, registry.registry.PLUGINS_VARIABLE: "no_such_plugin"}, timeout=120)
    assert missing.returncode != 0 and "method plugin 'no_such_plugin' cannot be imported" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.workflow
@pytest.mark.slow
def test_a_workflow_run_explains_evaluates_tabulates_and_draws_the_plugin(tiny_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    configfile = write_config(workdir, "plugin.yaml", {"method_plugins": [PLUGIN]})
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))}
    jobs = planned_jobs(workdir, configfile, env=env)
    shards = wc.shard_count(effective_config(workdir, configfile.name))
    assert jobs.pop("explain") == shards and jobs.pop("evaluate") == shards  # the new method's jobs only
    assert "masks" not in jobs and "tune_forward" not in jobs
    result = snakemake(workdir, "--cores", "2", configfile=configfile, env=env)
    assert result.returncode == 0, result.stderr[-4000:]

    with h5py.File(workdir / "results" / "saliency" / "edges" / "shard-0.h5") as handle:
        assert (handle.attrs["method"], handle.attrs["variant"]) == ("edges", "power=2")
    summary = pd.read_csv(workdir / "results" / "tables" / "summary.csv")
    ids = list(summary["method_id"])
    assert "edges" in ids and ids.index("edges") < ids.index("random")
    assert np.isfinite(summary.set_index("method_id").loc["edges", ["deletion_auc", "insertion_auc", "score"]]).all()
    assert "edges" in (workdir / "results" / "tables" / "summary.md").read_text()
    per_image = pd.read_csv(workdir / "results" / "tables" / "per_image.csv")
    assert (per_image["method_id"] == "edges").sum() == per_image["image_id"].nunique()
    assert (workdir / "results" / "figures" / "mean-curves" / "mean-curves-edges.png").is_file()
    assert "edges" in (workdir / "results" / "report" / "summary.html").read_text()
    assert planned_jobs(workdir, configfile, env=env) == {}
