"""Integration: the real workflow on a tiny config, its tables, its rerun rules and its report."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from saliency_bench import workflow_config as wc
from saliency_bench.plan import BENCHMARK_ROOT, ESTIMATED_KINDS, SINGLE_JOBS
from workflow_helpers import REPO, make_workdir, planned_jobs, snakemake, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

FIGURE_RULES = {"figures_masks", "figures_saliency", "figures_curves", "figures_summary"}
# the plan (rewritten for a new config, cheap) and the estimate-vs-measured table follow every change
FIGURE_RULES |= {"plan", "timing", "report_pages"}  # report_pages: the report's tables and introduction


# tiny_run: the session fixture in conftest.py (the recovery test compares against it too)


def effective_config(workdir: Path, configfile: str = "tiny.yaml"):
    """The config the workflow sees (typed, the schema's defaults filled in): the file, laid over the
    demo's settings where it names no data or model of its own."""
    from workflow_helpers import deep_update, typed_config

    values = yaml.safe_load((workdir / configfile).read_text())
    base = yaml.safe_load((workdir / "config" / "config.yaml").read_text()) if wc.uses_demo_settings(values) else {}
    return typed_config(deep_update(base, values))


def test_tables_are_consistent(tiny_run):
    summary = pd.read_csv(tiny_run / "results/tables/summary.csv")
    per_image = pd.read_csv(tiny_run / "results/tables/per_image.csv")
    config = effective_config(tiny_run)
    expected = {m.method_id for m in wc.method_configs(config)}
    assert set(summary["method_id"]) == expected
    assert len(summary) == len(expected)
    assert len(per_image) == len(expected) * wc.selected_image_count(config)
    assert (summary["score"] - (summary["insertion_auc"] - summary["deletion_auc"])).abs().max() < 1e-9
    for column in ("deletion_auc", "insertion_auc"):
        assert summary[column].between(0, 1).all()
        assert per_image[column].between(0, 1).all()


def marked_rows(markdown: str) -> dict[int, str]:
    """Column index -> method id of the row whose cell in that column carries the ✓."""
    lines = [l for l in markdown.splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    marks = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for index, cell in enumerate(cells):
            if "✓" in cell:
                marks[header[index]] = cells
    return marks


def test_best_values_are_marked(tiny_run):
    summary = pd.read_csv(tiny_run / "results/tables/summary.csv")
    ranked = summary[~summary["is_chance"]]  # the reference rows are never marked
    markdown = (tiny_run / "results/tables/summary.md").read_text()
    marks = marked_rows(markdown)
    best = {"Deletion AUC": ranked["deletion_auc"].min(), "Insertion AUC": ranked["insertion_auc"].max(),
            "Score": ranked["score"].max()}
    for column, value in best.items():
        assert column in marks, f"no ✓ in column {column}"
        assert f"{value:.4f}" in " ".join(marks[column]), (column, value, marks[column])
    best_id = ranked.loc[ranked["score"].idxmax(), "method_id"]
    assert best_id in markdown.split("\n\n", 2)[-1] or best_id in markdown


def test_forward_settings_are_measured_once_and_every_model_job_uses_them(tiny_run):
    record = json.loads((tiny_run / "results/model/forward_settings.json").read_text())
    config = effective_config(tiny_run)
    assert record["memory_format"] in ("contiguous", "channels_last") and record["batch_size"] == config.batch_size
    assert tuple(record["size"]) == config.preprocess.size
    assert {key.split()[0] for key in record["images_per_second"]} == {"contiguous", "channels_last"}
    commands = snakemake(tiny_run, "--dry-run", "--forceall", "--printshellcmds").stdout
    model_jobs = [line for line in commands.splitlines() if "saliency_bench explain" in line
                  or "saliency_bench evaluate" in line]
    assert model_jobs and all("--forward-settings results/model/forward_settings.json" in line for line in model_jobs)
    pinned = write_config(tiny_run, "pinned.yaml", {"memory_format": "contiguous"})
    assert "tune_forward" not in planned_jobs(tiny_run, pinned)  # named settings need no measurement


def test_timing_sums_the_benchmark_files_of_this_run(tiny_run):
    """The plan names each estimated job's benchmark file as the rules write it, and timing.md sums them."""
    plan = json.loads((tiny_run / "results/plan.json").read_text())
    listed = {name for stage in plan["stages"] for name in stage["benchmarks"]}
    root = tiny_run / BENCHMARK_ROOT
    written = {path.relative_to(root).as_posix() for path in root.rglob("*.tsv")}
    assert listed == {name for name in written if name.split("/")[0] in ESTIMATED_KINDS}
    # the other jobs' files too, and no rule's that the run does not have (sanity is off, demo.train on)
    assert set(plan[SINGLE_JOBS]) == {name for name in written if name.split("/")[0] not in ESTIMATED_KINDS}
    assert "sanity.tsv" not in plan[SINGLE_JOBS] and "demo_model.tsv" not in plan[SINGLE_JOBS]
    timing = (tiny_run / "results/tables/timing.md").read_text()
    assert "Left out" not in timing and "| rise |" in timing
    # the peak memory Snakemake sampled of real jobs: a torch process holds hundreds of MB
    peaks = [int(peak.replace(",", "")) for peak in re.findall(r"^\| rise \|.* \| ([\d,]+) MB \|$", timing, flags=re.M)]
    assert len(peaks) == 1 and 100 < peaks[0] < 20_000, timing


def test_second_run_does_nothing(tiny_run):
    assert planned_jobs(tiny_run) == {}


def test_changing_one_mask_set_reruns_only_its_chain(tiny_run):
    config = write_config(tiny_run, "p.yaml", {"rise": {"binary": {"p": [0.6]}}})
    jobs = planned_jobs(tiny_run, config)
    shards = wc.shard_count(effective_config(tiny_run, "p.yaml"))
    assert jobs.pop("masks") == 1
    assert jobs.pop("explain") == shards
    assert jobs.pop("evaluate") == shards
    assert jobs.pop("aggregate") == 1
    assert set(jobs) <= FIGURE_RULES


def test_changing_the_step_reruns_only_evaluation(tiny_run):
    config = write_config(tiny_run, "step.yaml", {"metrics": {"step_rows": 4}})
    jobs = planned_jobs(tiny_run, config)
    n_methods = len(wc.method_configs(effective_config(tiny_run, "step.yaml")))
    assert jobs.pop("evaluate") == n_methods * wc.shard_count(effective_config(tiny_run, "step.yaml"))
    assert jobs.pop("aggregate") == 1
    assert set(jobs) <= {"figures_curves", "figures_summary", "plan", "timing", "report_pages"}


def test_adding_a_layer_runs_only_that_layer(tiny_run):
    config = write_config(tiny_run, "layer.yaml", {"abscam": {"layers": ["layer2", "layer3", "layer4"]}})
    jobs = planned_jobs(tiny_run, config)
    shards = wc.shard_count(effective_config(tiny_run, "layer.yaml"))
    assert jobs.pop("explain") == 2 * shards  # init and final at layer2
    assert jobs.pop("evaluate") == 2 * shards
    assert jobs.pop("aggregate") == 1
    assert set(jobs) <= FIGURE_RULES


def test_raising_the_limit_runs_only_the_shards_it_changes(tiny_run):
    """data.limit 3 -> 5 with 2 images per job: shard 0 stays, shard 1 grows from 1 to 2 images, shard 2
    is new. The split's table, the masks and the forward settings stay as they are."""
    before, after = (wc.shard_sizes(effective_config(tiny_run, name))
                     for name in ("tiny.yaml", write_config(tiny_run, "limit.yaml", {"data": {"limit": 5}}).name))
    assert (before, after) == ([2, 1], [2, 2, 1])
    jobs = planned_jobs(tiny_run, "limit.yaml")
    n_methods = len(wc.method_configs(effective_config(tiny_run, "limit.yaml")))
    assert jobs.pop("explain") == 2 * n_methods
    assert jobs.pop("evaluate") == 2 * n_methods
    assert jobs.pop("image_table") == 1
    assert jobs.pop("aggregate") == 1
    assert set(jobs) <= FIGURE_RULES


def test_a_nested_command_line_value_takes_the_schemas_type(tiny_run):
    """`--config data='{limit: 1}'`: Snakemake passes the nested 1 as text; the run takes it as the number."""
    run = snakemake(tiny_run, "-n", "-p", "results/images.csv", "--config", "data={limit: 1}", timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert " --limit 1 " in shell_command(run.stdout + run.stderr, "images --table")


def test_a_changed_image_or_evidence_mask_in_your_data_reruns_what_reads_it(tmp_path):
    """The image files and evidence masks are no rule's input: the images job, the evidence row's
    explain job and the aggregation carry a fingerprint of them (names, sizes, times), so a changed
    data folder is never explained or scored from stale files."""
    import numpy as np
    from PIL import Image

    from workflow_helpers import make_user_project

    user = tmp_path / "user"
    workdir = make_workdir(tmp_path / "run", {**make_user_project(user), "baselines": {"evidence": True}})
    target = "results/tables/summary.csv"
    assert snakemake(workdir, "--cores", "2", target, timeout=300).returncode == 0
    summary = pd.read_csv(workdir / target).set_index("method_id")
    assert summary.at["evidence", "is_chance"] and summary.at["evidence", "variant"] == "ground truth"
    assert summary.at["evidence", "pointing_game"] == 1  # its maximum is the evidence's core

    def planned() -> set[str]:
        result = snakemake(workdir, "-n", target, timeout=180)
        assert result.returncode == 0, result.stderr[-2000:]
        return set(re.findall(r"^(?:local)?rule (\w+):$", result.stdout + result.stderr, re.M))

    assert planned() == set()
    evidence = np.zeros((32, 32), np.uint8)
    evidence[:8, :8] = 255
    Image.fromarray(evidence).save(user / "evidence" / "class0" / "img0.png")  # a corrected mask
    assert planned() == {"aggregate", "explain", "evaluate"}  # the evidence row's maps, scores, and the tables
    assert snakemake(workdir, "--cores", "2", target, timeout=300).returncode == 0
    folder = user / "images" / "class1"
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "added.png")
    assert "images" in planned()
    (folder / "added.png").unlink()
    assert planned() == set()  # the same listing again
    Image.fromarray(255 - np.asarray(Image.open(folder / "img0.png"))).save(folder / "img0.png")  # replaced in place
    assert "images" in planned()


def test_changing_stage_code_reruns_that_stage(tiny_run, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO / "src" / "saliency_bench", source / "saliency_bench")
    with open(source / "saliency_bench" / "metrics" / "causal.py", "a") as handle:
        handle.write("\n# an edit to the metrics code\n")
    jobs = planned_jobs(tiny_run, env={"PYTHONPATH": str(source)})
    config = effective_config(tiny_run)
    assert jobs.pop("evaluate") == len(wc.method_configs(config)) * wc.shard_count(config)
    assert jobs.pop("aggregate") == 1
    assert "explain" not in jobs and "masks" not in jobs
    assert set(jobs) <= {"figures_curves", "figures_summary", "plan", "timing", "report_pages"}


def test_removing_a_file_rebuilds_only_it_and_its_dependents(tiny_run):
    target = tiny_run / "results/saliency/abscam-init-layer3/shard-0.h5"
    backup = target.with_suffix(".bak")
    shutil.copy2(target, backup)
    try:
        target.unlink()
        jobs = planned_jobs(tiny_run)
    finally:
        os.replace(backup, target)
    assert jobs.pop("explain") == 1
    assert jobs.pop("evaluate") == 1
    assert jobs.pop("aggregate") == 1
    assert set(jobs) <= FIGURE_RULES


@pytest.mark.parametrize("changes, key", [
    ({"rise": {"n_masks": "many"}}, "rise.n_masks"),
    ({"rise": {"binary": {"p": [1.5]}}}, "rise.binary.p"),
    ({"rise": {"perlin": {"engine": "simplex"}}}, "rise.perlin.engine"),
    ({"rise": {"upsample": "nearest"}}, "rise.upsample"),
    ({"rise": {"perlin": {"frequency": 0}}}, "rise.perlin.frequency"),
    ({"abscam": {"layers": ["layer9"]}}, "abscam.layers"),
    ({"abscam": {"layers": ["layer4", "fc"]}}, "layer 'fc' gives a (1, 4) output, not a (B, C, h, w) feature map; "
                                               "choose a layer that gives one; top-level layers that give one: conv1 ("),
    ({"colour": "blue"}, "colour"),
    ({"method_plugins": ["no_such_plugin"]}, "method plugin 'no_such_plugin' cannot be imported"),
    ({"device": "cpu", "precision": "fp16"}, "device is cpu, but precision fp16 needs a CUDA device"),
    ({"metrics": {"step_rows": 64}}, "metrics.step_rows is 64: a step of 4096 pixels replaces all 4096 pixels"),
])
def test_bad_config_fails_before_any_job(tmp_path, changes, key):
    workdir = make_workdir(tmp_path, changes)
    result = snakemake(workdir, "--cores", "1", timeout=120)
    assert result.returncode != 0
    assert key in result.stderr + result.stdout
    assert not (workdir / "results").exists()


def shell_command(output: str, command: str) -> str:
    """The one printed shell command (`-p`) that runs `saliency_bench <command>`."""
    lines = [line for line in output.splitlines() if f"saliency_bench {command} " in line]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


def test_a_config_naming_your_data_starts_from_the_schema_defaults_not_the_demo(tmp_path):
    """config/config.yaml holds the demo's settings (4 images per class, 112 px, 250 masks): they are
    the base of demo runs only, never of a run on the user's own data and model."""
    from saliency_bench.config import defaults
    from workflow_helpers import make_user_project

    project = make_user_project(tmp_path / "user")
    workdir = make_workdir(tmp_path / "run")  # config/ beside the run, as in a deployment
    own = {key: project[key] for key in ("model", "preprocess")} | {"data": {"root": project["data"]["root"]}}
    (workdir / "own.yaml").write_text(yaml.safe_dump(own))
    demo_settings = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    demo_limit = demo_settings["data"]["per_class_limit"]
    assert demo_limit and defaults().data.per_class_limit is None

    runs = {name: snakemake(workdir, "-n", "-p", "results/split.csv", configfile=name, timeout=180)
            for name in ("own.yaml", "tiny.yaml")}
    assert all(run.returncode == 0 for run in runs.values()), [run.stderr[-2000:] for run in runs.values()]
    own_images, demo_images = (shell_command(runs[name].stdout + runs[name].stderr, "images") for name in runs)
    assert "--per-class-limit" not in own_images
    assert f"--per-class-limit {demo_limit} " in demo_images  # the demo keeps its settings


def test_the_demo_runs_from_a_working_directory_without_config(tmp_path):
    """`snakemake -s <repo>/Snakefile` in an empty folder takes the workflow's own demo settings; an
    edited copy in the working directory's config/ takes precedence."""
    def images_command():
        run = snakemake(tmp_path, "-n", "-p", "results/split.csv", configfile=None, timeout=180)
        assert run.returncode == 0, run.stderr[-2000:]
        return shell_command(run.stdout + run.stderr, "images")

    demo_limit = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["data"]["per_class_limit"]
    assert f"--per-class-limit {demo_limit} " in images_command()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(
        (REPO / "config" / "config.yaml").read_text().replace(f"per_class_limit: {demo_limit}", "per_class_limit: 2"))
    assert "--per-class-limit 2 " in images_command()


@pytest.mark.parametrize("mode, config, unneeded", [
    ("default", [], ("matplotlib",)),
    ("remote", [], ("matplotlib", "torchvision")),
    ("remote", ["--config", "data={per_class_limit: null}"], ("matplotlib", "torchvision", "torch"))])
def test_parsing_the_snakefile_imports_no_plotting_code(tmp_path, mode, config, unneeded):
    """The Snakefile's parse reads names, not figures: matplotlib stays unimported. A cluster job parses
    it again (`--mode remote`, without the main process's model check), so there the model code
    (torchvision) stays out too, and torch as well unless a per-class limit needs the study's split
    (its permutation) to count the shards."""
    run = snakemake(tmp_path, "-n", "--mode", mode, *config, configfile=None, timeout=180,
                    env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    imported = set(re.findall(r"^import time:.*\|\s*([\w.]+)$", run.stderr, flags=re.M))
    assert "saliency_bench.workflow_config" in imported  # the log covers the parse
    assert not [name for name in imported if name.split(".")[0] in unneeded], f"{mode} parse imports {unneeded}"


def test_the_names_the_snakefile_reads_need_neither_torch_nor_matplotlib():
    """The report's file names and a model factory's file come from light modules (the parse reads them)."""
    script = ("import sys, saliency_bench.report.names, saliency_bench.runtime.factories; "
              "print([name for name in ('torch', 'matplotlib') if name in sys.modules])")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"


def test_a_short_config_of_your_own_runs_through_to_the_report(tmp_path):
    """Your data and model and a few keys, the rest the schema's defaults: every job runs, and the
    report renders (its template reads metrics.step_rows from the config, which the file leaves out).
    The folders' names hold spaces and parentheses, as a user's often do: every path reaches the
    jobs' shell commands quoted."""
    from saliency_bench.config import defaults
    from workflow_helpers import make_user_project

    project = tmp_path / "My Data (fleas)"
    own = make_user_project(project)
    for folder in ("images", "evidence"):  # keeps the classes' order: " " sorts before "1"
        (project / folder / "class0").rename(project / folder / "class 0 (Daphnia)")
    assert "metrics" not in own
    workdir = make_workdir(tmp_path / "my run")
    (workdir / "own.yaml").write_text(yaml.safe_dump(own))
    run = snakemake(workdir, "--cores", "2", configfile="own.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    report = snakemake(workdir, "--report", "report.html", configfile="own.yaml", timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert f"{defaults().metrics.step_rows} rows at a time" in (workdir / "report.html").read_text()


def test_a_model_of_your_own_code_runs_and_its_code_is_an_input(tmp_path):
    """model.arch module:function: the whole run on a model that is no torchvision one, Abs-CAM at its
    own layer names; editing the module reruns its model jobs, as a new checkpoint does."""
    import importlib.util

    import torch

    from workflow_helpers import make_user_project

    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(REPO / "tests" / "data" / "plugins" / "small_cnn.py", code / "my_cnn.py")
    spec = importlib.util.spec_from_file_location("my_cnn", code / "my_cnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = make_user_project(tmp_path / "user")
    torch.manual_seed(0)
    torch.save(module.small_cnn(num_classes=2).state_dict(), config["model"]["checkpoint"])
    config["model"]["arch"] = "my_cnn:small_cnn"
    config["abscam"] = {"layers": ["stage1"], "variants": ["init", "final"]}
    workdir = make_workdir(tmp_path / "run", config)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))}
    run = snakemake(workdir, "--cores", "2", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = pd.read_csv(workdir / "results" / "tables" / "summary.csv").set_index("method_id")
    assert {"abscam-init-stage1", "abscam-final-stage1", "rise-binary-p0.5"} <= set(summary.index)
    assert summary[["deletion_auc", "insertion_auc"]].notna().all().all()
    assert planned_jobs(workdir, env=env) == {}
    (code / "my_cnn.py").write_text((code / "my_cnn.py").read_text() + "\n# edited\n")
    jobs = planned_jobs(workdir, env=env)
    assert jobs.get("explain", 0) >= 3 and jobs.get("evaluate", 0) >= 3, jobs


def test_figure_titles_can_name_every_class_of_the_model(tmp_path):
    """The overview's title names the explained (top-1) class, which need not be the label of any image
    in the table: the figure job gets every class name of the model, in the checkpoint's order."""
    from workflow_helpers import make_user_project

    config = make_user_project(tmp_path / "user", classes=3)
    workdir = make_workdir(tmp_path / "run", config)
    result = snakemake(workdir, "-n", "-p", "results/figures/overview", timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    command = shell_command(result.stdout + result.stderr, "figures saliency --kinds overview")
    assert "--class-names class0 class1 class2 " in command
    # the checkpoint's own order: the images step labels by it too
    config["data"]["class_names"] = ["class2", "class0", "class1"]
    workdir = make_workdir(tmp_path / "reordered", config)
    result = snakemake(workdir, "-n", "-p", "results/figures/overview", timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--class-names class2 class0 class1 " in shell_command(result.stdout + result.stderr, "images --root")


@pytest.mark.parametrize("checkpoint, message", [
    ("three_classes.pt", "does not fit the model (shape mismatch: fc.weight (3, 512) vs model (2, 512)"),
    ("pickled_model.pt", "holds a pickled torchvision.models.resnet.ResNet"),
    ("missing.pt", "checkpoint not found"),
])
def test_a_bad_checkpoint_fails_before_any_job(tmp_path, checkpoint, message):
    """The main process reads the checkpoint as every model job would: a mismatch is one line before
    the masks or a cluster queue, not after them."""
    import torch
    import torchvision

    from workflow_helpers import make_user_project

    config = make_user_project(tmp_path / "user")  # 2 classes
    torch.manual_seed(0)
    if checkpoint == "three_classes.pt":
        torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / checkpoint)
    elif checkpoint == "pickled_model.pt":
        torch.save(torchvision.models.resnet18(num_classes=2), tmp_path / checkpoint)
    config["model"]["checkpoint"] = str(tmp_path / checkpoint)
    workdir = make_workdir(tmp_path / "run", config)
    result = snakemake(workdir, "--cores", "1", timeout=120)
    assert result.returncode != 0
    errors = [line for line in (result.stderr + result.stdout).splitlines() if line.startswith("config error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert not (workdir / "results").exists()


def test_report_names_the_figures(tiny_run):
    result = snakemake(tiny_run, "--report", "report.zip", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    import zipfile

    with zipfile.ZipFile(tiny_run / "report.zip") as archive:
        names = "\n".join(archive.namelist())
    expected = ["report.html", "summary.png", "summary.csv", "per_image.csv", "masks-binary-p0.5.png", "overview-",
                "abscam-init-vs-final-", "abscam-layers-", "curves-", "mean-curves-centre.png", "mean-curves-random.png"]
    assert [name for name in expected if name not in names] == []
    with zipfile.ZipFile(tiny_run / "report.zip") as archive:
        html = archive.read("report/report.html").decode()
    assert all(category in html for category in ("Masks", "Saliency", "Abs-CAM", "Metrics", "Summary"))


def test_localisation_places_the_best_method_above_random(tiny_run):
    """The demo's evidence masks are ground truth: the best method by Score must put more of its
    saliency on the class feature than the uniform-noise chance maps do."""
    summary = pd.read_csv(tiny_run / "results/tables/summary.csv").set_index("method_id")
    ranked = summary[~summary["is_chance"]]  # the methods, not the reference rows
    best = ranked["score"].idxmax()
    assert summary.loc[best, "energy_pointing_game"] > summary.loc["random", "energy_pointing_game"]
    assert summary.loc[best, "pointing_game"] >= summary.loc["random", "pointing_game"]
