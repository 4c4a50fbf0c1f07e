"""Abs-CAM Init/Final: model left untouched, per-image targets, fixed-shape batching, exact saving, errors.
Golden values: test_golden_methods.py."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from saliency_bench import UserError
from saliency_bench.abscam import (FixedShapeScorer, abscam_final, abscam_init, activations_and_weights, channel_masks,
                                   feature_map_shapes)
from saliency_bench.runtime.forward import ModelRunner
from tolerances import assert_same_maps

SIZE = (32, 32)  # layer2 of a ResNet is 4x4 here: cheap, and some channels are constant


@pytest.fixture
def images():
    return torch.randn(3, 3, *SIZE, generator=torch.Generator().manual_seed(1))


def model_state(model):
    return [(name, p.requires_grad, None if p.grad is None else p.grad.clone()) for name, p in model.named_parameters()]


def assert_state_equal(before, after):
    assert [(n, r) for n, r, _ in before] == [(n, r) for n, r, _ in after]
    for (_, _, grad_before), (_, _, grad_after) in zip(before, after):  # left alone, not recomputed: exact
        assert (grad_before is None and grad_after is None) or torch.equal(grad_before, grad_after)


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("method", ["init", "final"])
def test_model_is_left_untouched_even_on_error(golden_model, images, method):
    run = abscam_init if method == "init" else (lambda *a, **k: abscam_final(*a, batch_size=8, **k))
    golden_model.layer1.requires_grad_(False)  # a mix of frozen and trainable parameters
    golden_model.fc.weight.grad = torch.full_like(golden_model.fc.weight, 7.0)
    before, hooks = model_state(golden_model), hook_count(golden_model)
    run(golden_model, images[:1], "layer3")
    assert_state_equal(before, model_state(golden_model))
    assert hook_count(golden_model) == hooks
    with pytest.raises(RuntimeError):  # 4 input channels: the model itself fails mid-forward
        run(golden_model, torch.randn(1, 4, *SIZE), "layer3")
    with pytest.raises(UserError, match="target classes"):  # fails after the forward pass
        run(golden_model, images[:1], "layer3", torch.tensor([9]))
    assert_state_equal(before, model_state(golden_model))
    assert hook_count(golden_model) == hooks


def test_works_on_a_frozen_model_inside_no_grad(golden_model, images):
    reference = abscam_init(golden_model, images, "layer2")
    golden_model.requires_grad_(False)
    with torch.no_grad():
        frozen = abscam_init(golden_model, images, "layer2")
    assert torch.equal(frozen, reference)  # same inputs, batch and kernels; only autograd flags differ
    assert not any(p.requires_grad for p in golden_model.parameters())


def test_init_is_min_max_normalised_and_defaults_to_top1(golden_model, images):
    maps = abscam_init(golden_model, images, "layer3")
    assert maps.shape == (3, *SIZE)
    assert torch.allclose(maps.amin((1, 2)), torch.zeros(3)) and torch.allclose(maps.amax((1, 2)), torch.ones(3), atol=1e-6)
    top1 = golden_model(images).argmax(1)
    assert torch.equal(maps, abscam_init(golden_model, images, "layer3", top1))  # the same call, target spelled out


@pytest.mark.parametrize("method", ["init", "final"])
def test_each_image_keeps_its_own_class_and_ignores_its_batch(golden_model, images, method):
    def run(x, target):
        if method == "init":
            return abscam_init(golden_model, x, "layer3", target)
        return abscam_final(golden_model, x, "layer2", target, batch_size=16)

    targets = torch.tensor([0, 3, 1])
    together = run(images, targets)
    for index in range(3):
        alone = run(images[index:index + 1], targets[index:index + 1])
        assert_same_maps(alone[0], together[index])
    other = run(images[:1], torch.tensor([2]))
    assert not torch.allclose(other[0], together[0], rtol=1e-3)


def test_final_matches_the_definition(golden_model, images):
    """One image, one channel at a time, as the study ran it."""
    image, target = images[:1], torch.tensor([2])
    activations, weights, _ = activations_and_weights(golden_model, image, "layer1", target)
    masks = channel_masks(activations[0], weights[0], SIZE)
    with torch.no_grad():
        scores = torch.stack([golden_model(image * mask)[0, 2].abs() for mask in masks])
    expected = torch.relu((scores[:, None, None] * masks).sum(0))
    result = abscam_final(golden_model, image, "layer1", target, batch_size=32)
    assert_same_maps(result[0], expected)


def test_skipping_constant_channels_changes_only_round_off(golden_model, images):
    """Skipping shifts the other rows to other places in their fixed-shape batches. That is bit-identical
    on AVX2 kernels, but a row's result not depending on its place is a property of the kernels, not of
    our code (tests/README.md), so it is compared to round-off."""
    images = images[:2]
    activations, weights, _ = activations_and_weights(golden_model, images, "layer2")
    constant = sum(int((channel_masks(a, w, SIZE).flatten(1).amax(1) == 0).sum()) for a, w in zip(activations, weights))
    assert constant > 0, "the test needs constant channels to be meaningful"
    rows = 2 * 128
    for batch_size in (5, 16):
        runner = ModelRunner(golden_model, batch_size)
        saved = abscam_final(golden_model, images, "layer2", runner=runner)
        full_runner = ModelRunner(golden_model, batch_size)
        full = abscam_final(golden_model, images, "layer2", runner=full_runner, skip_constant=False)
        assert_same_maps(saved, full)
        # Constant channels share one zero image; batches are padded to the fixed shape.
        assert runner.forward_passes == batch_size * -(-(rows - constant + 1) // batch_size)
        assert full_runner.forward_passes == batch_size * -(-rows // batch_size)


def test_final_feeds_fixed_shape_batches(golden_model, images):
    shapes = []
    handle = golden_model.register_forward_hook(lambda module, inputs, output: shapes.append(inputs[0].shape[0]))
    try:
        runner = ModelRunner(golden_model, 24)
        abscam_final(golden_model, images, "layer2", runner=runner, skip_constant=False)
    finally:
        handle.remove()
    assert shapes[0] == 3  # the gradient pass
    assert set(shapes[1:]) == {24} and runner.forward_passes == 24 * -(-3 * 128 // 24)


def test_score_cam_variant(golden_model, images):
    study = abscam_final(golden_model, images[:1], "layer2", batch_size=32)
    score_cam = abscam_final(golden_model, images[:1], "layer2", batch_size=32, score="softmax")
    assert (score_cam >= 0).all() and not torch.allclose(study / study.max(), score_cam / score_cam.max(), atol=1e-3)


def test_unknown_layer_lists_the_top_level_names(golden_model, images):
    for run in (abscam_init, abscam_final):
        with pytest.raises(UserError, match=r"unknown layer 'layer9'.*conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4, avgpool, fc") as error:
            run(golden_model, images, "layer9")
        assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="unknown Abs-CAM Final score"):
        abscam_final(golden_model, images, "layer3", score="probability")
    with pytest.raises(UserError, match="target has 2 entries for 3 images"):
        abscam_init(golden_model, images, "layer3", torch.tensor([0, 1]))


def test_a_layer_without_a_feature_map_is_a_user_error(golden_model, images):
    hooks = hook_count(golden_model)
    with pytest.raises(UserError, match=r"layer 'fc' gives a \(3, 4\) output, not a \(B, C, h, w\) feature map"):
        abscam_init(golden_model, images, "fc")
    assert hook_count(golden_model) == hooks


def test_a_model_without_feature_maps_says_so_and_how_to_run_without_abscam():
    """A ViT or an MLP of the user's has no layer4: the error names the layers that would do, or none."""
    from saliency_bench.abscam import NotAFeatureMap, naming_feature_map_layers

    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 2)).eval()
    with pytest.raises(NotAFeatureMap, match=r"layer '1' gives a \(1, 16\) output, .*top-level layers that give one: "
                                             r"none \(abscam.variants: \[\] runs RISE and the chance baselines only\)"):
        with naming_feature_map_layers(mlp, (8, 8)), feature_map_shapes(mlp, ["1"]), torch.no_grad():
            mlp(torch.zeros(1, 3, 8, 8))
    assert hook_count(mlp) == 0


def test_feature_map_shapes_records_every_layer_and_leaves_no_hook(golden_model, images):
    hooks = hook_count(golden_model)
    with feature_map_shapes(golden_model, ["layer3", "layer1.0.conv1"]) as shapes, torch.no_grad():
        logits = golden_model(images)
    assert shapes == {"layer1.0.conv1": (64, 8, 8), "layer3": (256, 2, 2)} and logits.shape == (3, 4)
    with pytest.raises(UserError, match="layer 'fc' gives a"), feature_map_shapes(golden_model, ["layer4", "fc"]):
        golden_model(images)
    with pytest.raises(UserError, match="unknown layer 'layer9'"), feature_map_shapes(golden_model, ["layer4", "layer9"]):
        pass
    assert hook_count(golden_model) == hooks


def test_a_layer_followed_by_an_inplace_relu_keeps_its_own_activations(golden_model, images):
    """bn1 feeds ReLU(inplace=True): A and its gradient are bn1's output, before the ReLU."""
    net = golden_model.eval()
    activations, weights, target = activations_and_weights(net, images, "bn1")
    bn_out = net.bn1(net.conv1(images)).detach().requires_grad_(True)
    rest = torch.nn.Sequential(net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4, net.avgpool,
                               torch.nn.Flatten(), net.fc)
    logits = rest(bn_out.clone())
    (gradient,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), bn_out)
    assert torch.equal(activations, bn_out.detach())  # the same kernels on the same batch
    torch.testing.assert_close(weights, gradient.abs().mean(dim=(2, 3)), rtol=1e-5, atol=1e-7)


def test_fixed_shape_scorer_rows_do_not_depend_on_their_batch_mates(golden_model):
    """Every row reaches its (image, channel) whatever its batch mates and place. Abs-CAM Final pads because
    on the CPU a batch of one may take another convolution algorithm; rows at other places of one fixed
    shape were bit-identical on AVX2, but that is the kernels' property, so round-off is allowed."""
    rows = torch.randn(9, 3, 96, 96, generator=torch.Generator().manual_seed(3))

    def logits_of(order):
        found = {}

        def sink(image, channel, logits):
            found.update({int(i): row for i, row in zip(image, logits)})

        scorer = FixedShapeScorer(ModelRunner(golden_model, 4), sink)
        for index in order:
            scorer.add(rows[index], torch.ones(1, 96, 96), index, torch.tensor([0]))
        scorer.finish()
        return found

    first = logits_of([0, 1, 2, 3, 4])  # the last batch holds row 4 alone (padded to 4)
    second = logits_of([8, 7, 6, 5, 4, 3, 2, 1, 0])
    for key in first:
        assert_same_maps(first[key], second[key], err_msg=f"row {key}")
