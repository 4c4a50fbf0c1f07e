"""Conv-BN folding (src/saliency_bench/runtime/folding.py): same function, names kept, original untouched."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from saliency_bench.abscam import abscam_final, activations_and_weights
from saliency_bench.errors import UserError
from saliency_bench.runtime.folding import conv_bn_pairs, fold_batchnorm
from saliency_bench.runtime.forward import ModelRunner, set_fold_bn


def randomised_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters (a fresh model's are 0/1: folding would be a no-op)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                shape = module.running_mean.shape
                module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(shape, generator=generator) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


# The families folding.py names: constructor arguments and input size (Inception needs >= 75 px).
ARCHS = {"resnet18": ({}, 64), "mobilenet_v3_small": ({}, 64), "densenet121": ({}, 64), "efficientnet_b0": ({}, 64),
         "regnet_x_400mf": ({}, 64), "vgg11_bn": ({}, 64),
         "inception_v3": ({"aux_logits": False, "init_weights": False}, 96)}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_folded_logits_agree_to_round_off_and_names_are_kept(arch, images, one_thread):
    torch.manual_seed(0)
    arguments, size = ARCHS[arch]
    model = randomised_statistics(torchvision.models.get_model(arch, weights=None, num_classes=10, **arguments))
    folded = fold_batchnorm(model)
    pairs = conv_bn_pairs(model)
    assert pairs, f"{arch}: no conv-BN pair found"
    if size != images.shape[-1]:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected, found = model(images), folded(images)
    scale = expected.abs().max()
    assert (found - expected).abs().max() <= 1e-5 * scale
    modules = dict(folded.named_modules())
    assert list(modules) == [name for name, _ in model.named_modules()]  # every name still resolves
    assert all(isinstance(modules[bn], nn.Identity) for _, bn in pairs)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    if arch == "densenet121":  # BN before conv (norm-relu-conv): only the conv -> BN pairs fold
        assert 0 < len(pairs) < n_bn
    else:
        assert len(pairs) == n_bn


def test_the_original_model_is_untouched(images, one_thread):
    model = randomised_statistics(torchvision.models.resnet18(weights=None, num_classes=10))
    state = {key: value.clone() for key, value in model.state_dict().items()}
    types = [type(module) for module in model.modules()]
    with torch.no_grad():
        before = model(images)
    folded = fold_batchnorm(model)
    ModelRunner(model, 2).run(images)
    assert folded is not model
    assert [type(module) for module in model.modules()] == types
    assert all(torch.equal(state[key], value) for key, value in model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(model(images), before)


def test_a_model_in_training_mode_is_refused_and_not_folded_by_the_runner(images):
    model = torchvision.models.resnet18(weights=None, num_classes=10).train()
    with pytest.raises(UserError, match="eval mode"):
        fold_batchnorm(model)
    runner = ModelRunner(model, 2)
    assert not runner.fold_bn and runner.model is model


def test_only_a_conv_feeding_nothing_but_the_bn_is_folded(images):
    class Branching(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.conv2, self.bn2 = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y + self.bn2(self.conv2(x))  # conv's output also feeds the sum

    model = randomised_statistics(Branching())
    assert conv_bn_pairs(model) == (("conv2", "bn2"),)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(model)(images), model(images), rtol=1e-5, atol=1e-6)


def test_the_runner_folds_by_default_and_fold_bn_false_turns_it_off(golden_model):
    assert ModelRunner(golden_model, 2).fold_bn
    assert isinstance(ModelRunner(golden_model, 2).model.bn1, nn.Identity)
    set_fold_bn(golden_model, False)
    runner = ModelRunner(golden_model, 2)
    assert not runner.fold_bn and runner.model is golden_model


@pytest.mark.parametrize("layer", ["layer2", "layer3.1", "layer4.0.conv1"])
def test_folding_keeps_the_meaning_of_a_hooked_layer_and_its_gradient(golden_model, layer):
    """Abs-CAM needs A (output of the layer) and dlogit/dA: a folded copy that keeps the named
    module gives both to round-off (the pairs inside `layer2` fold; a named conv is kept)."""
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    folded = fold_batchnorm(golden_model, keep=(layer,))
    assert not isinstance(dict(folded.named_modules())[layer], nn.Identity)
    a, w, c = activations_and_weights(golden_model, images, layer)
    a_folded, w_folded, c_folded = activations_and_weights(folded, images, layer)
    assert torch.equal(c, c_folded)
    torch.testing.assert_close(a_folded, a, rtol=1e-4, atol=1e-5 * float(a.abs().max()))
    torch.testing.assert_close(w_folded, w, rtol=1e-4, atol=1e-5 * float(w.abs().max()))


def test_abscam_final_folded_and_unfolded_agree(golden_model, one_thread):
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    folded = abscam_final(golden_model, images, "layer4", batch_size=16)
    set_fold_bn(golden_model, False)
    plain = abscam_final(golden_model, images, "layer4", batch_size=16)
    torch.testing.assert_close(folded, plain, rtol=1e-4, atol=1e-5 * float(plain.abs().max()))


def test_the_cli_flag_turns_folding_off_for_every_runner_of_the_job():
    import argparse

    from saliency_bench.commands._options import add_model_args, add_preprocess_args, model_from_args

    parser = argparse.ArgumentParser()
    add_model_args(parser)
    add_preprocess_args(parser)
    for flags, expected in (([], True), (["--no-fold-bn"], False)):
        args = parser.parse_args(["--num-classes", "3", "--device", "cpu", "--batch-size", "4",
                                  "--memory-format", "contiguous", *flags])
        model = model_from_args(args)
        assert args.fold_bn is expected and ModelRunner(model, 2).fold_bn is expected
