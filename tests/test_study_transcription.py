"""The study-side transcription in benchmarks/study_code.py (the study side of compare_study.py)
reproduces the golden outputs of the original code, so the benchmark compares us with the study's
algorithm, not a strawman."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tolerances import GOLDEN_RTOL, assert_golden_aucs, assert_golden_curves, assert_golden_map
from workflow_helpers import load_benchmark


@pytest.fixture(scope="module")
def study():
    return load_benchmark("study_code")


@pytest.fixture
def images(golden):
    return torch.from_numpy(golden["images"])


def test_study_rise_matches_golden(study, golden_model, golden, images):
    masks = torch.from_numpy(golden["rise_binary_masks"]).float()[:, None]
    with torch.no_grad():
        maps = torch.stack([study.study_rise(golden_model, image[None], masks, float(golden["rise_binary_p"]), 100)
                            for image in images])
    assert_golden_map(maps, golden["rise_binary_saliency_logits"], "study rise")


@pytest.mark.parametrize("layer", ["layer1", "layer2"])
def test_study_abscam_matches_golden(study, golden_model, golden, images, layer):
    init = torch.stack([study.study_abscam_init(golden_model, image[None], layer).detach() for image in images])
    assert_golden_map(init, golden[f"abscam_init_{layer}"], f"study abscam_init_{layer}")
    final = torch.stack([study.study_abscam_final(golden_model, image[None], layer) for image in images])
    assert_golden_map(final, golden[f"abscam_final_{layer}"], f"study abscam_final_{layer}")


def test_study_causal_metric_matches_golden(study, golden_model, golden, images):
    weight = torch.from_numpy(study.study_gkern())
    assert np.allclose(weight[0, 0].numpy(), golden["gkern_11_5"], rtol=GOLDEN_RTOL, atol=0)
    substrates = {"del": torch.zeros_like, "ins": lambda x: F.conv2d(x, weight, padding=5)}
    step = int(golden["causal_step"])
    for mode, key in (("del", "deletion"), ("ins", "insertion")):
        metric = study.StudyCausalMetric(golden_model, mode, step, substrates[mode])
        curves = np.stack([metric.single_run(image[None], saliency) for image, saliency in zip(images, golden["causal_saliency"])])
        assert_golden_curves(curves, golden[f"{key}_curves"])
        assert_golden_aucs([study.study_auc(c) for c in curves], golden[f"{key}_auc"])
    assert torch.equal(images, torch.from_numpy(golden["images"]))  # the in-place edits hit clones only


def test_study_masks_are_the_rise_generators(study, tmp_path):
    size, s, p = (40, 40), 8, 0.5
    masks = study.study_generate_masks(30, s, p, size, seed=0, path=str(tmp_path / "m.npy"))
    saved = np.load(tmp_path / "m.npy")
    assert saved.dtype == np.float64 and saved.shape == (30, 1, *size)
    assert masks.dtype == torch.float32 and torch.equal(masks, torch.from_numpy(saved).float())  # the same array, cast
    assert 0 <= saved.min() and saved.max() <= 1
    # cell 5 px: upsampled grid 45 px; a 40 px window of a 9 x 9 bilinear grid keeps the 0/1
    # plateaus where a grid value and its neighbours agree: exact zeros, values near 1.
    assert (saved == 0).any() and saved.max() > 0.99
    again = study.study_generate_masks(30, s, p, size, seed=0, path=str(tmp_path / "n.npy"))
    assert torch.equal(again, masks)  # same seed, same code, same process
