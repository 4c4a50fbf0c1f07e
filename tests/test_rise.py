"""RISE saliency: streaming, normalisation, targets, batching and errors (golden values: test_golden_methods.py)."""
from __future__ import annotations

import pytest
import torch

from saliency_bench import UserError
from saliency_bench.runtime.forward import ModelRunner
from saliency_bench.masks import generate_masks, write_masks
from saliency_bench.rise import rise_saliency
from tolerances import assert_same_maps

SIZE = (32, 32)


@pytest.fixture
def images():
    return torch.randn(3, 3, *SIZE, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def masks():
    return generate_masks("binary", 24, SIZE, p=0.5, seed=0)


def naive_rise(model, images, masks, norm, softmax=False):
    """The definition, one mask at a time: sum_i f(I * M_i) M_i / (N * norm)."""
    maps = []
    with torch.no_grad():
        for image in images:
            total = 0
            for mask in masks:
                scores = model((image * mask)[None])[0]
                scores = scores.softmax(0) if softmax else scores
                total = total + scores[:, None, None] * mask
            maps.append(total / (len(masks) * norm))
    return torch.stack(maps)


def test_matches_the_definition(golden_model, images, masks):
    images, masks = images[:2], masks[:12]
    result = rise_saliency(golden_model, images, masks, p=0.5, batch_size=5)
    assert result.shape == (2, 4, *SIZE)
    assert_same_maps(result, naive_rise(golden_model, images, masks, 0.5))
    softmax = rise_saliency(golden_model, images, masks, p=0.5, score="softmax", batch_size=5)
    assert_same_maps(softmax, naive_rise(golden_model, images, masks, 0.5, softmax=True))


def test_without_p_divides_by_the_mean_of_the_masks(golden_model, images):
    masks = generate_masks("gaussian", 24, SIZE, seed=1)
    by_mean = rise_saliency(golden_model, images, masks, batch_size=8)
    assert_same_maps(by_mean, rise_saliency(golden_model, images, masks, p=masks.mean().item(), batch_size=8))


def test_mask_set_and_chunking_give_the_same_maps(golden_model, images, tmp_path, masks):
    reference = rise_saliency(golden_model, images, masks, p=0.5, batch_size=16)
    mask_set = write_masks(tmp_path / "m.h5", "binary", 24, SIZE, p=0.5, seed=0, chunk=8, dtype="float32")
    streamed = rise_saliency(golden_model, images, mask_set, p=0.5, batch_size=16, chunk_size=7)
    assert_same_maps(streamed, reference)


def test_target_gives_the_targets_maps(golden_model, images, masks):
    full = rise_saliency(golden_model, images, masks, p=0.5, batch_size=16)
    target = torch.tensor([3, 0, 2])
    chosen = rise_saliency(golden_model, images, masks, p=0.5, batch_size=16, target=target)
    assert chosen.shape == (3, *SIZE)
    assert_same_maps(chosen, full[torch.arange(3), target])


def test_an_images_map_does_not_depend_on_its_batch(golden_model, images, masks):
    together = rise_saliency(golden_model, images, masks, p=0.5, batch_size=16)
    alone = rise_saliency(golden_model, images[1:2], masks, p=0.5, batch_size=16)
    assert_same_maps(together[1:2], alone)


def test_forward_batches_never_exceed_batch_size_and_are_counted(golden_model, images, masks):
    seen = []
    handle = golden_model.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[0]))
    try:
        runner = ModelRunner(golden_model, batch_size=12)
        rise_saliency(golden_model, images, masks, p=0.5, runner=runner, chunk_size=20)
    finally:
        handle.remove()
    assert max(seen) == 12 and sum(seen) == 3 * 24 == runner.forward_passes


@pytest.mark.parametrize("kwargs, message", [
    ({"p": 0.0}, r"\(0, 1\]"), ({"p": 1.5}, r"\(0, 1\]"), ({"score": "probabilities"}, "unknown RISE score")])
def test_bad_arguments(golden_model, images, masks, kwargs, message):
    with pytest.raises(UserError, match=message):
        rise_saliency(golden_model, images, masks, **kwargs)


def test_masks_of_another_size_are_rejected(golden_model, images, tmp_path):
    wrong = generate_masks("binary", 4, (16, 16), p=0.5)
    with pytest.raises(UserError, match="masks are 16x16 but the images are 32x32"):
        rise_saliency(golden_model, images, wrong, p=0.5)
    mask_set = write_masks(tmp_path / "m.h5", "binary", 4, (32, 16), p=0.5)
    with pytest.raises(UserError, match="masks are 32x16"):
        rise_saliency(golden_model, images, mask_set, p=0.5)
