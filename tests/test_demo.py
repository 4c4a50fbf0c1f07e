"""The offline demo: synthetic water fleas, their evidence masks, and a demo model that uses the evidence."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from saliency_bench.cli import main
from saliency_bench.data import discover_images
from saliency_bench.demo import CLASSES, demo_split, occlusion_check, render_sample, train_demo_model
from saliency_bench.demo.synth import NONE_INDEX, sample_from_name
from saliency_bench.errors import UserError
from saliency_bench.models import load_model

# A small occlusion model: still resnet18 and the real training code, on fewer and smaller images.
OCCLUSION_DATA = dict(per_class=50, none=50, size=80)
OCCLUSION_EPOCHS = 10


def make_tree(path: Path, per_class: int = 3, none: int = 2, size: int = 64, seed: int = 0, workers: int = 2) -> Path:
    status = main(["demo-data", "--out", str(path), "--per-class", str(per_class), "--none", str(none),
                   "--size", str(size), "--seed", str(seed), "--workers", str(workers)])
    assert status == 0
    return path


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("demo") / "data")


# ---- the generator ------------------------------------------------------------------------

def test_render_is_deterministic_per_seed():
    first = render_sample(0, 2, 5, 64)
    again = render_sample(0, 2, 5, 64)
    other_seed = render_sample(1, 2, 5, 64)
    other_index = render_sample(0, 2, 6, 64)
    assert first.image.tobytes() == again.image.tobytes() and np.array_equal(first.mask, again.mask)
    assert first.image.tobytes() != other_seed.image.tobytes()
    assert first.image.tobytes() != other_index.image.tobytes()


@pytest.mark.parametrize("class_index", range(len(CLASSES)))
def test_feature_mask_marks_drawn_pixels_inside_the_image(class_index):
    for index in range(4):
        sample = render_sample(3, class_index, index, 96)
        assert sample.mask.shape == sample.image.shape[:2]
        assert sample.mask.sum() >= 20, "the feature must cover a visible area"
        # fully inside: the border rows and columns hold no evidence
        assert not (sample.mask[0].any() or sample.mask[-1].any() or sample.mask[:, 0].any() or sample.mask[:, -1].any())
        # the evidence is drawn: its pixels are darker than the slide behind them
        image, background = sample.image.astype(float), sample.background.astype(float)
        assert (background - image)[sample.mask].mean() > 60


def test_none_animals_have_no_evidence_but_an_animal():
    sample = render_sample(0, NONE_INDEX, 0, 96)
    assert not sample.mask.any()
    assert np.abs(sample.image.astype(int) - sample.background.astype(int)).max() > 60


def test_written_tree_is_an_imagefolder_with_parallel_evidence(tree):
    records, classes = discover_images(tree / "images")
    assert classes == sorted(CLASSES) and len(records) == 3 * 4
    evidence = sorted(p.relative_to(tree / "evidence").as_posix() for p in (tree / "evidence").rglob("*.png"))
    assert evidence == sorted(r.image_id for r in records)
    for record in records:
        image = np.asarray(Image.open(record.path))
        mask = np.asarray(Image.open(tree / "evidence" / record.image_id))
        assert image.shape == (64, 64, 3) and mask.shape == (64, 64)
        assert set(np.unique(mask)) == {0, 255}
        # the files are the rendered sample of this class and index, mask aligned with image
        class_index, index = sample_from_name(Path(record.image_id).name)
        assert CLASSES[class_index] == record.class_name
        sample = render_sample(0, class_index, index, 64)
        assert np.array_equal(image, sample.image) and np.array_equal(mask == 255, sample.mask)
    assert len({Image.open(r.path).tobytes() for r in records}) == len(records), "every image is different"
    none = sorted(p.name for p in (tree / "none").iterdir())
    assert none == ["none-0000.png", "none-0001.png"]
    assert not (tree / "images" / "none").exists() and not (tree / "evidence" / "none").exists()
    manifest = json.loads((tree / "demo.json").read_text())
    assert manifest["seed"] == 0 and manifest["size"] == 64 and manifest["classes"] == list(CLASSES)


def test_written_tree_does_not_depend_on_workers_but_on_seed(tree, tmp_path):
    single = make_tree(tmp_path / "single", workers=1)
    assert read_tree(single) == read_tree(tree)
    other = make_tree(tmp_path / "other", seed=1)
    differing = [k for k, v in read_tree(other).items() if k.endswith(".png") and read_tree(tree)[k] != v]
    assert len(differing) == 3 * 4 * 2 + 2


def test_demo_data_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a demo data set"):
        main(["--debug", "demo-data", "--out", str(tmp_path), "--per-class", "1", "--none", "0", "--size", "64"])
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_demo_data_replaces_an_earlier_demo_tree(tmp_path):
    make_tree(tmp_path / "data", per_class=2, none=1)
    make_tree(tmp_path / "data", per_class=1, none=0)
    assert len(discover_images(tmp_path / "data" / "images")[0]) == 4
    assert not list((tmp_path / "data" / "none").iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left behind"


# ---- training -----------------------------------------------------------------------------

def test_training_is_seeded_and_uses_the_workflow_split(tree, tmp_path):
    states, cards = [], []
    for run in ("a", "b"):
        card = train_demo_model(tree, tmp_path / f"{run}.pt", tmp_path / f"{run}.json", size=48, epochs=1, seed=3)
        states.append(load_model("resnet18", 4, str(tmp_path / f"{run}.pt")).state_dict())
        cards.append(card)
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    other = train_demo_model(tree, tmp_path / "c.pt", tmp_path / "c.json", size=48, epochs=1, seed=4)
    assert other["checkpoint_sha256"] != cards[0]["checkpoint_sha256"]
    split = demo_split(tree)
    assert cards[0]["image_counts"] == {"train": len(split.train), "none": 2, "val": len(split.val)}
    assert len(split.val) == int(0.2 * 12) and not {r.image_id for r in split.val} & {r.image_id for r in split.train}
    assert sum(map(sum, cards[0]["confusion_matrix"]["matrix"])) == len(split.val)


def test_time_limit_stops_training_but_still_writes_outputs(tree, tmp_path):
    card = train_demo_model(tree, tmp_path / "m.pt", tmp_path / "m.json", size=48, epochs=50, time_limit=0.01)
    assert card["stopped_by_time_limit"] and card["epochs_completed"] == 1
    assert json.loads((tmp_path / "m.json").read_text())["epochs_completed"] == 1
    load_model("resnet18", 4, str(tmp_path / "m.pt"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A demo model trained through the CLI on a small data set; loaded exactly like a user's checkpoint."""
    root = tmp_path_factory.mktemp("trained")
    data = make_tree(root / "data", **OCCLUSION_DATA)
    size = str(OCCLUSION_DATA["size"])
    assert main(["train-demo", "--data", str(data), "--size", size, "--epochs", str(OCCLUSION_EPOCHS),
                 "--time-limit", "600", "--out", str(root / "model.pt"), "--card", str(root / "card.json")]) == 0
    card = json.loads((root / "card.json").read_text())
    return data, load_model("resnet18", 4, str(root / "model.pt")), card


@pytest.mark.slow
def test_demo_model_card(trained):
    data, _, card = trained
    for key in ("val_accuracy", "accuracy_per_epoch", "per_class_accuracy", "confusion_matrix", "class_names",
                "training_seconds", "image_size", "image_counts", "seed", "epochs"):
        assert key in card
    assert card["class_names"] == sorted(CLASSES) and len(card["accuracy_per_epoch"]) == OCCLUSION_EPOCHS
    assert card["val_accuracy"] >= 0.7


@pytest.mark.slow
def test_hiding_the_evidence_hurts_much_more_than_hiding_elsewhere(trained):
    data, model, _ = trained
    split = demo_split(data)
    result = occlusion_check(model, data, split.val, size=OCCLUSION_DATA["size"])
    correct = result.target == result.label
    assert correct.mean() >= 0.7
    feature_drop = (result.p_original - result.p_feature)[correct]
    control_drop = (result.p_original - result.p_control)[correct]
    control_drop = control_drop[~np.isnan(control_drop)]
    assert len(control_drop) >= 0.8 * correct.sum()
    assert feature_drop.mean() > 0.3
    assert feature_drop.mean() > 5 * max(control_drop.mean(), 0.01)
