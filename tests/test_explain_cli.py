"""`saliency-bench masks` and `saliency-bench explain` end to end on a tiny ImageFolder and checkpoint."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from saliency_bench.cli import main
from saliency_bench.data import discover_images, load_images
from saliency_bench.explain import compute_maps
from saliency_bench.runtime.models import load_model
from saliency_bench.formats.image_table import write_image_table
from saliency_bench.formats.masks import MaskSet
from saliency_bench.formats.saliency import read_saliency
from tolerances import assert_same_maps, assert_same_probs

SIZE = ["32", "32"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    rng = np.random.default_rng(0)
    for name in ("ants", "bees"):
        (root / "data" / name).mkdir(parents=True)
        for index in range(2):
            pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "data" / name / f"{index}.png")
    records, _ = discover_images(root / "data")
    write_image_table(root / "images.csv", records, images_per_job=2)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), root / "model.pt")
    assert main(["masks", "--kind", "binary", "--p", "0.5", "--n", "16", "--size", *SIZE, "--out", str(root / "m.h5")]) == 0
    return root


def common(project, shard=None):
    args = ["--images", str(project / "images.csv"), "--size", *SIZE, "--num-classes", "2",
            "--checkpoint", str(project / "model.pt"), "--device", "cpu", "--batch-size", "8"]
    return args + (["--shard", str(shard)] if shard is not None else [])


def explain(project, out, *method_args, shard=None):
    return main(["explain", *method_args, "--out", str(out), *common(project, shard)])


def test_masks_command_writes_the_mask_file(project):
    masks = MaskSet(project / "m.h5")
    assert len(masks) == 16 and masks.size == (32, 32) and masks.attrs["kind"] == "binary" and masks.attrs["p"] == 0.5
    with h5py.File(project / "m.h5") as handle:
        assert handle["masks"].dtype == np.float16


def test_rise_end_to_end_matches_the_library(project, tmp_path):
    out = tmp_path / "rise.h5"
    assert explain(project, out, "--method", "rise", "--method-id", "rise-binary-p0.5", "--masks", str(project / "m.h5"),
                   shard=1) == 0
    saved = read_saliency(out)
    assert saved.image_id == ["bees/0.png", "bees/1.png"]
    assert saved.method_id == "rise-binary-p0.5" and saved.method == "rise" and saved.variant == "p=0.5"
    assert saved.params["p"] == 0.5 and saved.params["n_masks"] == 16 and saved.params["score"] == "logits"
    model = load_model("resnet18", 2, str(project / "model.pt"))
    images = load_images([str(project / "data" / i) for i in saved.image_id], (32, 32))
    maps, target, top1_prob = compute_maps(model, images, "rise", masks=MaskSet(project / "m.h5"))
    assert saved.saliency.shape == (2, 32, 32)
    assert_same_maps(saved.saliency, maps)  # the CLI's batches of 8 vs the library's default
    assert np.array_equal(saved.target, target)
    assert_same_probs(saved.top1_prob, top1_prob)


@pytest.mark.parametrize("method_args, variant", [
    (["--method", "abscam-init", "--layer", "layer2"], "layer2"),
    (["--method", "abscam-final", "--layer", "layer2"], "layer2"),
    (["--method", "centre"], "sigma=0.25"),
])
def test_other_methods_end_to_end(project, tmp_path, method_args, variant):
    out = tmp_path / "maps.h5"
    assert explain(project, out, *method_args, "--method-id", "some-id", shard=0) == 0
    saved = read_saliency(out)
    assert saved.saliency.shape == (2, 32, 32) and saved.variant == variant
    assert np.isfinite(saved.saliency).all() and saved.saliency.std() > 0


def test_random_maps_do_not_depend_on_sharding(project, tmp_path):
    assert explain(project, tmp_path / "all.h5", "--method", "random", "--method-id", "random", "--seed", "3") == 0
    assert explain(project, tmp_path / "s1.h5", "--method", "random", "--method-id", "random", "--seed", "3", shard=1) == 0
    everything, shard = read_saliency(tmp_path / "all.h5"), read_saliency(tmp_path / "s1.h5")
    assert np.array_equal(everything.saliency[2:], shard.saliency)  # drawn per image from the seed: exact
    assert not np.array_equal(everything.saliency[0], everything.saliency[1])
    assert explain(project, tmp_path / "other.h5", "--method", "random", "--method-id", "random", "--seed", "4") == 0
    assert not np.array_equal(read_saliency(tmp_path / "other.h5").saliency, everything.saliency)


def test_rows_cut_a_shard_to_its_first_images(project, tmp_path, capsys):
    """The workflow's last shard, cut by data.limit: --rows 1 of shard 1 is the table's third image."""
    method = ["--method", "random", "--method-id", "random", "--seed", "3"]
    assert explain(project, tmp_path / "all.h5", *method) == 0
    assert explain(project, tmp_path / "cut.h5", *method, "--rows", "1", shard=1) == 0
    everything, cut = read_saliency(tmp_path / "all.h5"), read_saliency(tmp_path / "cut.h5")
    assert list(cut.image_id) == list(everything.image_id[2:3])
    assert np.array_equal(cut.saliency, everything.saliency[2:3])
    for rows, shard, message in (("3", 1, "has 2 images, not 3"), ("1", None, "--rows needs --shard")):
        assert explain(project, tmp_path / "x.h5", *method, "--rows", rows, shard=shard) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("method_args, message", [
    (["--method", "rise"], "needs --masks"),
    (["--method", "abscam-init"], "needs --layer"),
    (["--method", "abscam-final", "--layer", "layer7"], "unknown layer 'layer7'"),
])
def test_bad_configurations_fail_with_one_line_and_no_output(project, tmp_path, capsys, method_args, message):
    out = tmp_path / "x.h5"
    assert explain(project, out, *method_args, "--method-id", "x", shard=0) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not out.exists()


def test_masks_of_another_size_fail(project, tmp_path, capsys):
    masks = tmp_path / "small.h5"
    assert main(["masks", "--kind", "gaussian", "--n", "4", "--size", "16", "16", "--out", str(masks)]) == 0
    capsys.readouterr()
    out = tmp_path / "x.h5"
    assert explain(project, out, "--method", "rise", "--method-id", "x", "--masks", str(masks), shard=0) == 2
    assert "masks are 16x16 but the images are 32x32" in capsys.readouterr().err
    assert not out.exists()


def test_an_image_size_the_architecture_cannot_take(project, tmp_path, capsys):
    out = tmp_path / "x.h5"
    assert main(["explain", "--method", "centre", "--method-id", "centre", "--images", str(project / "images.csv"),
                 "--size", "16", "16", "--arch", "squeezenet1_1", "--num-classes", "2", "--device", "cpu",
                 "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert "squeezenet1_1 cannot take 16x16 px images" in error and len(error.splitlines()) == 1
    assert not out.exists()


def test_masks_command_rejects_bad_p(tmp_path, capsys):
    assert main(["masks", "--kind", "binary", "--p", "0", "--n", "4", "--size", "8", "8", "--out", str(tmp_path / "m.h5")]) == 2
    assert "(0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "m.h5").exists()


def write_evidence(project, folder, boxes):
    """Evidence masks at the images' own size (40x48) for the image ids in `boxes`: (row0, row1, col0, col1)."""
    for image_id, (r0, r1, c0, c1) in boxes.items():
        mask = np.zeros((40, 48), np.uint8)
        mask[r0:r1, c0:c1] = 255
        (folder / image_id).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(folder / image_id)
    return folder


def test_evidence_maps_rank_the_evidence_core_first_then_by_nearness(project, tmp_path):
    # at 32x32 px: rows 0-15 and columns 0-15 (cut by the frame); rows 8-23 and columns 8-23
    boxes = {"ants/0.png": (0, 20, 0, 24), "ants/1.png": (10, 30, 12, 36)}
    evidence = write_evidence(project, tmp_path / "evidence", boxes)
    out = tmp_path / "evidence.h5"
    assert explain(project, out, "--method", "evidence", "--method-id", "evidence", "--evidence-root", str(evidence),
                   shard=0) == 0
    saved = read_saliency(out)
    assert saved.image_id == ["ants/0.png", "ants/1.png"]
    assert saved.variant == "ground truth" and saved.params["evidence_root"] == str(evidence)
    for maps, start in zip(saved.saliency, (0, 8)):
        inside = np.zeros((32, 32), bool)
        inside[start:start + 16, start:start + 16] = True
        assert maps[inside].min() == 1 and maps[~inside].max() == -1  # every evidence pixel is deleted first
        assert maps[start + 7, start + 7] == maps[start + 8, start + 8] == maps.max() == 8  # its core first
    cut, inner = saved.saliency
    assert inner[7, 15] > inner[3, 15] > inner[0, 0]  # outside: the nearer, the earlier
    assert cut[0, 0] == 1  # the frame is an edge of the evidence


def test_evidence_maps_need_a_mask_with_evidence_for_every_image(project, tmp_path, capsys):
    evidence = write_evidence(project, tmp_path / "evidence", {"ants/0.png": (0, 20, 0, 24)})
    out = tmp_path / "x.h5"
    method = ["--method", "evidence", "--method-id", "evidence"]
    assert explain(project, out, *method, shard=0) == 2
    assert "needs --evidence-root" in capsys.readouterr().err and not out.exists()
    assert explain(project, out, *method, "--evidence-root", str(evidence), shard=0) == 2
    error = capsys.readouterr().err.strip()
    assert "no evidence mask for 1 image(s), e.g. ants/1.png" in error and "baselines.evidence: false" in error
    assert len(error.splitlines()) == 1 and not out.exists()
    write_evidence(project, evidence, {"ants/1.png": (0, 0, 0, 0)})  # a mask without evidence
    assert explain(project, out, *method, "--evidence-root", str(evidence), shard=0) == 2
    assert "the evidence mask of ants/1.png marks no pixel" in capsys.readouterr().err and not out.exists()
