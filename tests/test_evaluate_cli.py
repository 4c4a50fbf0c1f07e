"""`saliency-bench evaluate` end to end: ImageFolder + checkpoint + saliency file -> records CSV + curves HDF5."""
from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from saliency_bench import auc, causal_curves
from saliency_bench.cli import main
from saliency_bench.data import discover_images, load_images
from saliency_bench.runtime.models import load_model
from saliency_bench.formats.image_table import write_image_table
from saliency_bench.formats.records import RECORD_COLUMNS
from saliency_bench.formats.saliency import write_saliency
from tolerances import assert_same_probs

H, W = 24, 32


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Two classes x two images, a 3-class resnet18 checkpoint, an image table of 2 shards."""
    root = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / "data" / name).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "data" / name / f"{i}.png")
    records, _ = discover_images(root / "data")
    write_image_table(root / "images.csv", records, images_per_job=2)
    torch.manual_seed(0)
    model = load_model("resnet18", 3)
    with torch.no_grad():
        model.fc.weight.mul_(20)
    torch.save(model.state_dict(), root / "model.pt")
    return root, records


def saliency_file(path, ids, maps, target=(1, 2), method_id="rise-test"):
    write_saliency(path, maps, ids, np.array(target), np.array([0.5, 0.5]), method_id=method_id,
                   method="rise", variant="binary", params={"p": 0.5})


def cli(root, *extra):
    return main(["evaluate", "--images", str(root / "images.csv"), "--size", str(H), str(W), "--num-classes", "3",
                 "--checkpoint", str(root / "model.pt"), "--device", "cpu", "--batch-size", "16",
                 "--out-records", str(root / "out" / "metrics.csv"), "--out-curves", str(root / "out" / "curves.h5"),
                 *extra])


def test_evaluate_writes_records_and_curves(project):
    root, records = project
    ids = [r.image_id for r in records[:2]]
    maps = np.random.default_rng(1).random((2, H, W)).astype(np.float32)
    maps[1] = 0.25  # a constant map is legal and flagged
    saliency_file(root / "sal.h5", ids, maps)

    assert cli(root, "--saliency", str(root / "sal.h5"), "--shard", "0", "--step-rows", "4") == 0

    with open(root / "out" / "metrics.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == RECORD_COLUMNS
        rows = list(reader)
    with h5py.File(root / "out" / "curves.h5") as handle:
        deletion, insertion = handle["deletion"][()], handle["insertion"][()]
        assert [s.decode() for s in handle["image_id"][()]] == ids
        assert handle.attrs["method_id"] == "rise-test" and handle.attrs["step"] == 4 * W
    assert deletion.dtype == insertion.dtype == np.float64
    assert deletion.shape == insertion.shape == (2, H // 4 + 1)

    # the curves are those of the library call with the stored target class (the CLI batches the
    # points of both modes together, the library call each mode alone: equal to round-off)
    model = load_model("resnet18", 3, str(root / "model.pt"))
    images = load_images(records[:2], (H, W))
    for mode, curves in (("deletion", deletion), ("insertion", insertion)):
        expected = causal_curves(model, images, maps, mode=mode, step=4 * W, target=[1, 2], batch_size=16)
        assert_same_probs(curves, expected, err_msg=mode)

    assert [r["image_id"] for r in rows] == ids
    assert [r["target"] for r in rows] == ["1", "2"]
    assert [r["constant_map"] for r in rows] == ["False", "True"]
    assert {(r["method_id"], r["method"], r["variant"]) for r in rows} == {("rise-test", "rise", "binary")}
    for i, row in enumerate(rows):  # the CSV and the HDF5 hold the same float64 values: exact
        assert float(row["deletion_auc"]) == auc(deletion)[i]
        assert float(row["insertion_auc"]) == auc(insertion)[i]
        assert float(row["top1_prob"]) == deletion[i, 0]
        assert float(row["deleted_prob"]) == deletion[i, -1]
        assert float(row["blurred_prob"]) == insertion[i, 0]


def test_step_in_pixels_and_other_substrates(project):
    root, records = project
    saliency_file(root / "sal2.h5", [r.image_id for r in records[2:4]], np.random.default_rng(2).random((2, H, W)))
    assert cli(root, "--saliency", str(root / "sal2.h5"), "--shard", "1", "--step", "100",
               "--deletion-substrate", "mean", "--insertion-substrate", "uniform-noise", "--seed", "3") == 0
    with h5py.File(root / "out" / "curves.h5") as handle:
        assert handle["deletion"].shape == (2, -(-H * W // 100) + 1)
        assert handle.attrs["deletion_substrate"] == "mean"
        assert handle.attrs["insertion_substrate"] == "uniform noise"
    with open(root / "out" / "metrics.csv", newline="") as handle:  # every record says what its AUCs were measured with
        rows = list(csv.DictReader(handle))
    assert [(r["deletion_substrate"], r["insertion_substrate"], r["step"]) for r in rows] == [("mean", "uniform noise", "100")] * 2


def run_failing(root, capsys, *extra):
    for name in ("metrics.csv", "curves.h5"):
        (root / "out" / name).unlink(missing_ok=True)
    assert cli(root, *extra) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert not (root / "out" / "metrics.csv").exists() and not (root / "out" / "curves.h5").exists()
    return message


def test_errors_are_one_line_and_write_nothing(project, capsys):
    root, records = project
    ids = [r.image_id for r in records[:2]]
    saliency_file(root / "ok.h5", ids, np.ones((2, H, W)))

    message = run_failing(root, capsys, "--saliency", str(root / "ok.h5"), "--shard", "1")
    assert "image 0 is 'cat/0.png' but the image shard has 'dog/0.png'" in message

    message = run_failing(root, capsys, "--saliency", str(root / "ok.h5"), "--shard", "0", "--size", str(H), str(H))
    assert "does not match images" in message

    message = run_failing(root, capsys, "--saliency", str(root / "ok.h5"), "--shard", "0", "--step-rows", "0")
    assert "--step-rows must be at least 1" in message
    message = run_failing(root, capsys, "--saliency", str(root / "ok.h5"), "--shard", "0", "--step-rows", str(H))
    assert f"a step of {H * W} pixels replaces all {H * W} pixels of a {H}x{W} image at once" in message

    message = run_failing(root, capsys, "--saliency", str(root / "ok.h5"), "--shard", "0", "--insertion-substrate", "gauss")
    assert "unknown substrate 'gauss'" in message

    broken = np.ones((2, H, W), dtype=np.float32)
    broken[1, 3, 3] = np.nan
    saliency_file(root / "nan.h5", ids, broken, method_id="abscam-final-layer3")
    message = run_failing(root, capsys, "--saliency", str(root / "nan.h5"), "--shard", "0")
    assert "method abscam-final-layer3 image cat/1.png holds NaN or infinite values" in message
