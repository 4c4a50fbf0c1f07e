"""The plan: forward passes, time and disk per stage, the free-space check, and estimate vs measured."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from saliency_bench import UserError, cli
from saliency_bench import workflow_config as wc
from saliency_bench.data import ImageRecord
from saliency_bench.formats.image_table import write_image_table
from saliency_bench.plan import SINGLE_JOBS, build_stages, check_disk, layer_channels, make_plan, measure_stages, \
    process_age, read_plan, render_plan, timing_table

REPO = Path(__file__).resolve().parents[1]


def effective(path: Path, changes: dict | None = None):
    """A config file with the schema's defaults filled in, as the workflow sees it (typed)."""
    from workflow_helpers import deep_update, typed_config

    return typed_config(deep_update(yaml.safe_load(path.read_text()), changes or {}))


def image_table(path: Path, n: int, per_job: int) -> Path:
    write_image_table(path, [ImageRecord(f"c/{i}.png", f"c/{i}.png", 0, "c") for i in range(n)], per_job)
    return path


def paper_config() -> dict:
    return effective(REPO / "config" / "paper.yaml", {"model": {"num_classes": 4}})


def test_layer_channels_of_the_model_given():
    """The plan step that measured a model itself counts its channels on it, not on a second one it builds."""
    wide = torchvision.models.resnet50(num_classes=4).eval()  # another width than the config's resnet18
    assert layer_channels(paper_config(), wide) == {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}


def test_layer_channels_unknown_layer_is_a_user_error_and_leaves_no_hook():
    config = effective(REPO / "config" / "paper.yaml", {"model": {"num_classes": 4}, "abscam": {"layers": ["layer3", "layer9"]}})
    model = torchvision.models.resnet18(num_classes=4).eval()
    with pytest.raises(UserError, match="unknown layer 'layer9'"):
        layer_channels(config, model)
    assert not any(module._forward_hooks for module in model.modules())


def test_forward_passes_follow_the_protocol():
    config = paper_config()
    assert layer_channels(config) == {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}
    shards = [8] * 6 + [3]  # 51 images, images_per_job 8
    stages = build_stages(config, shards, rate=30.0, channels=layer_channels(config))
    assert stages["rise"].forward_passes == 51 * 6 * 6001
    assert stages["abscam-final"].forward_passes == 51 * (64 + 128 + 256 + 512 + 4)
    assert stages["deletion/insertion"].forward_passes == 51 * 16 * (2 * 27 + 2)
    assert stages["rise"].jobs == 6 * 7 and stages["deletion/insertion"].jobs == 16 * 7
    itemsize = {"float16": 2, "float32": 4}[config.rise.mask_dtype]
    assert stages["masks"].disk_bytes == 6 * 6000 * 224 * 224 * itemsize
    assert "train_demo" not in stages


def test_the_study_protocol_on_51_images_takes_most_of_a_day_on_two_cores(tmp_path):
    """At this CPU's measured ~30 images/s for a ResNet-18 at 224 px: 1.93 M forward passes, ~18 h."""
    table = image_table(tmp_path / "images.csv", 51, 8)
    settings = {"memory_format": "channels_last", "batch_size": 8, "images_per_second": {"channels_last 8": 29.8}}
    plan = make_plan(paper_config(), table, settings, "test", cores=2, results=tmp_path / "results", overhead=4.0)
    assert plan["images"] == 51 and plan["shards"] == 7 and plan["parallel"] == 1
    assert 16 * 3600 < plan["wall_seconds"] < 20 * 3600
    on_eight = make_plan(paper_config(), table, settings, "test", cores=8, results=tmp_path / "results", overhead=4.0)
    assert on_eight["wall_seconds"] == pytest.approx(plan["wall_seconds"] / 4)
    text = render_plan(plan)
    assert "| rise | 42 | 1,836,306 |" in text and "images_per_job" in text and "SLURM" in text and "GPU" in text
    assert "Precision" not in text
    settings["precision_note"] = "bf16 ran 2.1x faster here; consider precision: bf16."
    assert settings["precision_note"] in render_plan(make_plan(paper_config(), table, settings, "test", 2, tmp_path, 4.0))


def test_the_plan_runs_at_the_rate_of_the_precision_the_jobs_use(tmp_path):
    """precision "auto" times formats and batches in fp32, then may pick bf16: the plan must use bf16's rate."""
    table = image_table(tmp_path / "images.csv", 8, 8)
    settings = {"memory_format": "channels_last", "batch_size": 16, "precision": "bf16",
                "images_per_second": {"channels_last 16": 130.0}, "images_per_second_precision": "fp32",
                "images_per_second_by_precision": {"fp32": 131.0, "bf16": 217.0}}
    plan = make_plan(paper_config(), table, settings, "test", cores=2, results=tmp_path / "results", overhead=4.0)
    assert plan["rate"] == 217.0 and "217.0 images/s" in render_plan(plan)
    del settings["images_per_second_by_precision"]  # a record made before precisions were timed
    assert make_plan(paper_config(), table, settings, "test", 2, tmp_path / "results", 4.0)["rate"] == 130.0


def test_a_run_that_does_not_fit_on_disk_stops_with_one_line(tmp_path):
    with pytest.raises(UserError) as caught:
        check_disk(10 ** 18, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "GB more" in message and "free space" in message
    assert check_disk(10 ** 18, tmp_path, existing=10 ** 18) > 0  # outputs already written need no space


def test_plan_command_measures_named_settings_and_writes_both_files(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None, num_classes=2).state_dict(), tmp_path / "model.pt")
    config = effective(REPO / "tests" / "data" / "tiny_config.yaml",
                       {"data": {"root": str(tmp_path)}, "model": {"checkpoint": str(tmp_path / "model.pt"),
                                                                   "num_classes": 2}})
    table = image_table(tmp_path / "images.csv", 3, 2)
    out, out_json = tmp_path / "results" / "plan.md", tmp_path / "results" / "plan.json"
    assert cli.main(["plan", "--config", json.dumps(config.to_dict()), "--images", str(table), "--cores", "2", "--size", "64", "64",
                     "--arch", "resnet18", "--num-classes", "2", "--checkpoint", str(tmp_path / "model.pt"),
                     "--batch-size", "4", "--memory-format", "contiguous", "--threads", "1",
                     "--results", str(tmp_path / "results"), "--out", str(out), "--out-json", str(out_json)]) == 0
    plan = json.loads(out_json.read_text())
    assert plan["rate"] > 0 and "measured now" in plan["rate_source"]
    assert plan["images"] == 3 and plan["shards"] == 2
    n_methods = len(wc.method_configs(config))
    assert plan["jobs"] == 1 + 2 * n_methods * 2  # masks, explain and evaluate per shard (no demo to train)
    assert "# Plan of this run" in out.read_text()
    assert capsys.readouterr().err.strip().endswith(f"({out})")  # the log names the file written
    # The job start-up is the step's age once its model is built: its own timing (at least a second per
    # round, min_seconds) is not something every job pays.
    assert plan["job_overhead"] <= process_age() - 1.0


def test_plan_command_validates_the_config(tmp_path, capsys):
    config = paper_config().to_dict()
    config["rise"]["n_masks"] = 0
    out = tmp_path / "plan.md"
    assert cli.main(["plan", "--config", json.dumps(config), "--images", str(image_table(tmp_path / "images.csv", 3, 2)),
                     "--forward-settings", str(tmp_path / "unused.json"), "--num-classes", "4", "--out", str(out),
                     "--out-json", str(tmp_path / "plan.json")]) == 2
    assert "config key rise.n_masks: 0 is less than the minimum of 1" in capsys.readouterr().err
    assert not out.exists()


def test_timing_sets_the_estimate_beside_the_benchmarks(tmp_path):
    plan = {"rate": 10.0, "rate_source": "test", "stages": [
        {"name": "rise", "jobs": 2, "seconds": 20.0,
         "benchmarks": ["explain/rise-binary-p0.5/shard-0.tsv", "explain/rise-binary-p0.5/shard-1.tsv"]},
        {"name": "deletion/insertion", "jobs": 2, "seconds": 10.0,
         "benchmarks": ["evaluate/random/shard-0.tsv", "evaluate/random/shard-1.tsv"]}]}
    header = "s\th:m:s\tmax_rss\n"
    for path, seconds, rss in (("explain/rise-binary-p0.5/shard-0.tsv", 12.0, 1200.4), ("explain/rise-binary-p0.5/shard-1.tsv", 18.0, 1510.6),
                               ("evaluate/random/shard-0.tsv", 5.0, "NA"), ("aggregate.tsv", 3.0, 300),
                               # jobs the run no longer has: a shard beyond a lowered limit, a removed layer
                               ("explain/rise-binary-p0.5/shard-2.tsv", 7.0, 9000), ("evaluate/abscam-final-layer2/shard-0.tsv", 9.0, 9000)):
        target = tmp_path / "benchmarks" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(header + f"{seconds}\t0:00:{int(seconds):02d}\t{rss}\n")
    measured = measure_stages(tmp_path / "benchmarks", plan)
    assert list(measured.seconds.items()) == [("rise", 30.0), ("deletion/insertion", 5.0), ("other", 3.0)]  # the plan's order
    assert measured.peak_mb == {"rise": 1510.6, "other": 300.0}  # NA (a job too short to sample) is no number
    assert measured.left_out == ["evaluate/abscam-final-layer2/shard-0.tsv", "explain/rise-binary-p0.5/shard-2.tsv"]
    table = timing_table(plan, measured, tmp_path / "plan.json", tmp_path / "benchmarks")
    assert f"Estimate from {tmp_path / 'plan.json'} " in table and f"wall seconds in {tmp_path / 'benchmarks'}/." in table
    assert "| rise | 2 | 20.0 s | 30.0 s | 1.50 | 1,511 MB |" in table
    assert "| deletion/insertion | 2 | 10.0 s | 5.0 s | 0.50 | n/a |" in table
    assert "| other (not estimated) | | | 3.0 s | | 300 MB |" in table
    assert "| **estimated stages** | | 30.0 s | 35.0 s | 1.17 | |" in table
    assert "Left out: 2 benchmark file(s) of jobs this run does not have" in table


def test_timing_counts_only_the_single_jobs_the_plan_names(tmp_path):
    """With the workflow's list of its single jobs, an earlier config's file (the demo's data after
    switching to your own) is left out of "other"; without one, every such file counts."""
    plan = {"rate": 10.0, "rate_source": "test", "stages": [
        {"name": "rise", "jobs": 1, "seconds": 10.0, "benchmarks": ["explain/rise-binary-p0.5/shard-0.tsv"]}]}
    for path, seconds in (("explain/rise-binary-p0.5/shard-0.tsv", 12.0), ("aggregate.tsv", 3.0), ("figures/curves.tsv", 2.0),
                          ("demo_data.tsv", 40.0)):
        target = tmp_path / "benchmarks" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t100\n")
    assert measure_stages(tmp_path / "benchmarks", plan).seconds == {"rise": 12.0, "other": 45.0}
    plan[SINGLE_JOBS] = ["aggregate.tsv", "figures/curves.tsv", "images.tsv"]  # images: a job not run yet
    measured = measure_stages(tmp_path / "benchmarks", plan)
    assert measured.seconds == {"rise": 12.0, "other": 5.0} and measured.left_out == ["demo_data.tsv"]
    assert "Left out: 1 benchmark file(s) of jobs this run does not have" in timing_table(plan, measured)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({**plan, SINGLE_JOBS: "aggregate.tsv"}))
    with pytest.raises(UserError, match=f"{SINGLE_JOBS} is not a list of benchmark file names"):
        read_plan(path)


def test_the_plan_names_the_benchmark_files_the_workflow_writes(tmp_path):
    """Each stage lists its jobs' benchmark files by the patterns the rules use: one per mask set, one
    per method and shard for explain and evaluate."""
    config = paper_config()
    stages = build_stages(config, [4, 4, 1], rate=30.0, channels=layer_channels(config))
    methods = [m.method_id for m in wc.method_configs(config)]
    assert stages["masks"].benchmarks == [f"masks/{m.mask_id}.tsv" for m in wc.mask_configs(config)]
    assert sorted(stages["deletion/insertion"].benchmarks) == sorted(
        f"evaluate/{method}/shard-{shard}.tsv" for method in methods for shard in range(3))
    explained = [name for name in stages if name not in ("masks", "deletion/insertion")]
    assert sorted(n for name in explained for n in stages[name].benchmarks) == sorted(
        f"explain/{method}/shard-{shard}.tsv" for method in methods for shard in range(3))
    assert all(len(stage.benchmarks) == stage.jobs for stage in stages.values())


@pytest.mark.parametrize("train", [False, True])
def test_demo_training_is_planned_only_when_the_demo_trains(train):
    config = effective(REPO / "config" / "config.yaml", {"demo": {"train": train}})
    stages = build_stages(config, [8, 8], rate=100.0, channels=layer_channels(config))
    assert ("train_demo" in stages) == train


def test_the_randomisation_check_is_planned_when_enabled(tmp_path):
    """sanity.enabled explains sanity.images images with every method's sanity variants once per model
    (the trained one and one per randomised block): with the paper's N = 6000 as many passes as the
    RISE stage spends on 6 images, yet the plan left it out of its count and timing.md out of the stages."""
    config = paper_config()
    channels = layer_channels(config)
    assert "sanity" not in make_plan(config, image_table(tmp_path / "i.csv", 9, 4), {
        "memory_format": "contiguous", "batch_size": 8, "images_per_second": {"contiguous 8": 50.0}}, "test", 2,
        tmp_path / "results", 4.0)["stages"][-1]["name"]
    enabled = effective(REPO / "config" / "paper.yaml", {"model": {"num_classes": 4}, "sanity": {"enabled": True}})
    model = torchvision.models.resnet18(num_classes=4).eval()
    plan = make_plan(enabled, image_table(tmp_path / "i.csv", 9, 4), {
        "memory_format": "contiguous", "batch_size": 8, "images_per_second": {"contiguous 8": 50.0}}, "test", 2,
        tmp_path / "results", 4.0, model=model)
    [sanity] = [stage for stage in plan["stages"] if stage["name"] == "sanity"]
    # RISE: one mask set, N + 1 passes; Abs-CAM Init: 3 per layer; Final: channels + 1 per layer
    per_image = (6000 + 1) + 3 * len(channels) + sum(width + 1 for width in channels.values())
    blocks = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]
    assert sanity["jobs"] == 1 and sanity["benchmarks"] == ["sanity.tsv"]
    assert sanity["forward_passes"] == (1 + len(blocks)) * 4 * per_image  # sanity.images: 4
    assert sanity["seconds"] == pytest.approx(4.0 + sanity["forward_passes"] / 50.0)
    fewer = build_stages(effective(REPO / "config" / "paper.yaml", {"sanity": {"enabled": True, "images": 10}}),
                         [4, 3], 50.0, channels, 4.0, sanity_models=8)["sanity"]
    assert fewer.forward_passes == 8 * 7 * per_image  # no more images than the run explains
    assert "| sanity | 1 |" in render_plan(plan)
