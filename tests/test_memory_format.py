"""Channels-last storage is a speed option only (golden results hold), chosen by measurement (auto)."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from saliency_bench import abscam_final, causal_curves, cli, rise_saliency
from saliency_bench.commands._options import model_from_args
from saliency_bench.data import discover_images
from saliency_bench.errors import UserError
from saliency_bench.runtime.forward import MEMORY_FORMATS, ModelRunner, set_memory_format, uses_channels_last
from saliency_bench.formats.image_table import write_image_table
from saliency_bench.formats.saliency import read_saliency
from saliency_bench.runtime.tuning import (CPU_BATCH_CANDIDATES, CUDA_BATCH_SIZE, LARGER_BATCH_MARGIN, ForwardSettings,
                                           batch_candidates, choose_settings, measure_forward, read_forward_settings,
                                           tune_forward, write_forward_settings)
from tolerances import assert_same_maps


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


@pytest.fixture()
def channels_last_model(golden_model):
    return set_memory_format(golden_model, "channels_last")


def test_runner_follows_the_model_format(golden_model):
    assert not ModelRunner(golden_model).channels_last
    set_memory_format(golden_model, "channels_last")
    assert uses_channels_last(golden_model) and ModelRunner(golden_model).channels_last
    set_memory_format(golden_model, "contiguous")
    assert not uses_channels_last(golden_model)


@pytest.mark.parametrize("fold_bn", [True, False])
def test_a_channels_last_runner_leaves_the_callers_model_as_it_is(golden_model, fold_bn, one_thread):
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    expected = ModelRunner(golden_model, fold_bn=fold_bn)(images)
    runner = ModelRunner(golden_model, channels_last=True, fold_bn=fold_bn)
    assert not uses_channels_last(golden_model) and uses_channels_last(runner.model)
    assert_same_maps(runner(images), expected)  # another memory format: float32 round-off apart (logits)

def test_unknown_memory_format_is_a_clear_error(golden_model):
    with pytest.raises(UserError, match="channels_last"):
        set_memory_format(golden_model, "nhwc")


def test_golden_rise_and_abscam_final_hold_in_channels_last(channels_last_model, golden):
    images = torch.from_numpy(golden["images"])
    rise = rise_saliency(channels_last_model, images, torch.from_numpy(golden["rise_binary_masks"]), p=float(golden["rise_binary_p"]))
    assert relative_error(rise.numpy(), golden["rise_binary_saliency_logits"]) < 1e-4
    final = abscam_final(channels_last_model, images, "layer4")
    assert relative_error(final.numpy(), golden["abscam_final_layer4"]) < 1e-4


def test_golden_curves_hold_in_channels_last(channels_last_model, golden):
    images = torch.from_numpy(golden["images"])
    curves = causal_curves(channels_last_model, images, torch.from_numpy(golden["causal_saliency"]), mode="deletion",
                           step=int(golden["causal_step"]))
    assert relative_error(curves, golden["deletion_curves"]) < 1e-4


# ---- memory_format and batch_size auto, decided by measurement ---------------------------------
def test_channels_last_needs_the_margin_and_the_batch_size_is_the_fastest():
    measured = {("contiguous", 8): 100.0, ("contiguous", 64): 80.0, ("channels_last", 8): 104.0,
                ("channels_last", 64): 90.0}
    assert choose_settings(measured) == ("contiguous", 8)  # channels-last only 4% ahead: within noise
    measured["channels_last", 64] = 108.0
    assert choose_settings(measured) == ("channels_last", 64)
    assert choose_settings({("contiguous", 16): 5.0, ("contiguous", 32): 6.0}) == ("contiguous", 32)


def test_the_batch_is_the_smallest_that_no_larger_one_beats_by_the_margin():
    assert LARGER_BATCH_MARGIN > 1
    beats, too_little = LARGER_BATCH_MARGIN * 1.001, 1 + (LARGER_BATCH_MARGIN - 1) / 2
    assert choose_settings({("contiguous", 8): 100.0, ("contiguous", 16): 100.0 * too_little}) == ("contiguous", 8)
    assert choose_settings({("contiguous", 8): 100.0, ("contiguous", 16): 100.0 * beats}) == ("contiguous", 16)
    # No single doubling pays the margin, but 32 beats 8 by it: a step-by-step search would stop at 8.
    # 16 is within the margin of 32, and 64 gains nothing more.
    step = LARGER_BATCH_MARGIN ** 0.6  # each doubling short of the margin, two of them beyond it
    rates = {8: 100.0, 16: 100.0 * step, 32: 100.0 * step ** 2, 64: 100.0 * step ** 2}
    assert rates[32] >= 100.0 * LARGER_BATCH_MARGIN and rates[32] < rates[16] * LARGER_BATCH_MARGIN
    assert choose_settings({("channels_last", batch): rate for batch, rate in rates.items()}) == ("channels_last", 16)
    # A dip in between does not stop the search.
    rates = {8: 100.0, 16: 99.0, 32: 100.0 * beats, 64: 100.0 * beats}
    assert choose_settings({("channels_last", batch): rate for batch, rate in rates.items()}) == ("channels_last", 32)


def test_every_candidate_is_timed_and_the_model_is_left_contiguous(golden_model, one_thread):
    measured = measure_forward(golden_model, (32, 32), "fp32", MEMORY_FORMATS, (2, 4), rounds=1, min_seconds=0.05)
    assert set(measured) == {(f, b) for f in MEMORY_FORMATS for b in (2, 4)} and min(measured.values()) > 0
    assert not uses_channels_last(golden_model)


def test_what_is_given_is_kept_without_measuring(golden_model):
    settings = tune_forward(golden_model, (32, 32), batch_size=16, memory_format="channels_last")
    assert settings == ForwardSettings("channels_last", 16) and not settings.measured
    assert batch_candidates("auto", torch.device("cuda")) == (CUDA_BATCH_SIZE,)  # a GPU gets one large batch
    assert batch_candidates("auto", torch.device("cpu")) == CPU_BATCH_CANDIDATES
    with pytest.raises(UserError, match="batch size must be a whole number >= 1 or auto"):
        batch_candidates(0, torch.device("cpu"))
    with pytest.raises(UserError, match="unknown memory format 'nhwc'"):
        tune_forward(golden_model, (32, 32), memory_format="nhwc")


def test_the_recorded_settings_are_read_back(tmp_path):
    path = tmp_path / "model" / "forward_settings.json"
    settings = ForwardSettings("channels_last", 8, {("contiguous", 8): 50.0, ("channels_last", 8): 70.0})
    write_forward_settings(path, settings, {"size": [224, 224]})
    assert read_forward_settings(path) == ("channels_last", 8)
    record = json.loads(path.read_text())
    assert record["images_per_second"] == {"contiguous 8": 50.0, "channels_last 8": 70.0} and record["size"] == [224, 224]


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("not json", "is not valid JSON"),
    ('{"memory_format": "contiguous"}', "is not a forward-settings file"),
    ('{"memory_format": "nhwc", "batch_size": 8}', "names memory format 'nhwc'"),
    ('{"memory_format": "contiguous", "batch_size": 0}', "names batch size 0"),
])
def test_a_bad_settings_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "forward_settings.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_forward_settings(path)


@pytest.fixture(scope="module")
def cli_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("forward-settings")
    for name in ("a", "b"):
        (root / "data" / name).mkdir(parents=True)
        Image.new("RGB", (40, 40), (30, 120, 200) if name == "a" else (200, 60, 20)).save(root / "data" / name / "0.png")
    records, _ = discover_images(root / "data")
    write_image_table(root / "images.csv", records, images_per_job=2)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), root / "model.pt")
    return root


def model_options(project) -> list[str]:
    return ["--num-classes", "2", "--checkpoint", str(project / "model.pt"), "--device", "cpu"]


def explain_args(project, out, *forward) -> list[str]:
    return ["explain", "--method", "abscam-final", "--method-id", "abscam-final-layer4", "--layer", "layer4",
            "--images", str(project / "images.csv"), "--size", "32", "32", *model_options(project), *forward,
            "--out", str(out)]


def test_tune_forward_records_the_fastest_measured_settings(cli_project, tmp_path, capsys, one_thread):
    out = tmp_path / "forward_settings.json"
    assert cli.main(["tune-forward", *model_options(cli_project), "--size", "32", "32", "--rounds", "1",
                     "--batch-size", "auto", "--memory-format", "auto", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    measured = {(key.split()[0], int(key.split()[1])): rate for key, rate in record["images_per_second"].items()}
    assert set(measured) == {(f, b) for f in MEMORY_FORMATS for b in CPU_BATCH_CANDIDATES}
    assert (record["memory_format"], record["batch_size"]) == choose_settings(measured)
    assert record["size"] == [32, 32] and record["precision"] == "fp32"
    assert f"-> {record['memory_format']}, batch {record['batch_size']}" in capsys.readouterr().out


def test_jobs_run_with_the_recorded_settings(cli_project, tmp_path, one_thread):
    path = tmp_path / "settings.json"
    write_forward_settings(path, ForwardSettings("channels_last", 3), {})
    out = tmp_path / "maps.h5"
    assert cli.main(explain_args(cli_project, out, "--forward-settings", str(path), "--batch-size", "64")) == 0
    recorded = read_saliency(out).params
    assert recorded["batch_size"] == 3  # the file wins over --batch-size
    args = argparse.Namespace(threads=None, device="cpu", arch="resnet18", num_classes=2, precision="fp32",
                              checkpoint=str(cli_project / "model.pt"), weights=None, forward_settings=str(path),
                              batch_size=64, memory_format="contiguous", size=(32, 32))
    model = model_from_args(args)
    assert uses_channels_last(model) and args.memory_format == "channels_last" and args.batch_size == 3


def test_a_missing_settings_file_fails_cleanly(cli_project, tmp_path, capsys):
    out = tmp_path / "maps.h5"
    assert cli.main(explain_args(cli_project, out, "--forward-settings", str(tmp_path / "absent.json"))) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "saliency-bench tune-forward" in error and not out.exists()


def test_auto_measures_in_the_job_itself(cli_project, tmp_path, capsys, one_thread):
    out = tmp_path / "maps.h5"
    assert cli.main(explain_args(cli_project, out, "--memory-format", "auto", "--batch-size", "8")) == 0
    assert "forward settings (auto): contiguous 8:" in capsys.readouterr().err and out.is_file()
