"""Every RISE and Abs-CAM array of the golden reference (tests/data/golden/), reproduced by our code.

Tolerance (README): float32 round-off only, relative error ~1e-4 of the array's scale
(tests/tolerances.py).
RISE saliency is computed on the GIVEN golden masks, not on regenerated ones.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saliency_bench.abscam import abscam_final, abscam_init
from saliency_bench.explain import compute_maps
from saliency_bench.rise import rise_saliency
from tolerances import assert_golden_curves, assert_golden_map

LAYERS = ("layer1", "layer2", "layer3", "layer4")


@pytest.fixture
def images(golden):
    return torch.from_numpy(golden["images"])


def test_model_outputs(golden_model, golden, images):
    with torch.no_grad():
        logits = golden_model(images.to(next(golden_model.parameters()).device)).cpu()  # the model may be on a GPU
    assert_golden_map(logits, golden["logits"], "logits")
    assert np.array_equal(logits.argmax(1).numpy(), golden["top_class"])  # class indices; no near-ties in the case


@pytest.mark.parametrize("masks_key, reference_key, score, use_p", [
    ("rise_binary_masks", "rise_binary_saliency_logits", "logits", True),
    ("rise_binary_masks", "rise_binary_saliency_softmax", "softmax", True),
    ("rise_gaussian_masks", "rise_gaussian_saliency_logits", "logits", False),
])
def test_rise_saliency(golden_model, golden, images, masks_key, reference_key, score, use_p):
    p = float(golden["rise_binary_p"]) if use_p else None
    saliency = rise_saliency(golden_model, images, torch.from_numpy(golden[masks_key]), p=p, score=score, batch_size=64)
    assert_golden_map(saliency, golden[reference_key], reference_key)


def test_rise_map_of_the_top_class_through_compute_maps(golden_model, golden, images):
    maps, target, top1_prob = compute_maps(golden_model, images, "rise", masks=torch.from_numpy(golden["rise_binary_masks"]),
                                           p=float(golden["rise_binary_p"]))
    assert np.array_equal(target, golden["top_class"])
    assert_golden_map(maps, golden["causal_saliency"], "causal_saliency")
    expected_prob = torch.from_numpy(golden["logits"]).softmax(1).numpy()[np.arange(len(target)), target]
    assert_golden_curves(top1_prob, expected_prob)  # a curve's first point, from the golden logits


@pytest.mark.parametrize("layer", LAYERS)
def test_abscam_init(golden_model, golden, images, layer):
    assert_golden_map(abscam_init(golden_model, images, layer), golden[f"abscam_init_{layer}"], f"abscam_init_{layer}")


@pytest.mark.parametrize("layer", LAYERS)
def test_abscam_final(golden_model, golden, images, layer):
    maps = abscam_final(golden_model, images, layer, batch_size=64)
    assert_golden_map(maps, golden[f"abscam_final_{layer}"], f"abscam_final_{layer}")


@pytest.mark.parametrize("layer", ("layer2", "layer4"))
def test_abscam_init_through_compute_maps_takes_the_class_from_its_own_single_forward_pass(golden_model, golden, images,
                                                                                         layer):
    calls = []
    handle = golden_model.register_forward_hook(lambda *_: calls.append(1))
    try:
        maps, target, top1_prob = compute_maps(golden_model, images, "abscam-init", layer=layer)
    finally:
        handle.remove()
    assert len(calls) == 1  # the gradient pass gives the class too: no extra forward pass
    assert_golden_map(maps, golden[f"abscam_init_{layer}"], f"abscam_init_{layer}")
    assert np.array_equal(target, golden["top_class"])
    probabilities = torch.from_numpy(golden["logits"]).softmax(1).numpy()[np.arange(len(target)), target]
    np.testing.assert_allclose(top1_prob, probabilities, rtol=1e-5, atol=1e-7)
