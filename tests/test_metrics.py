"""causal_curves, auc, substrates: semantics against a step-by-step reference, tie order,
bounded batches, the exact shared-points saving, and errors. Small real models only."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from saliency_bench import UserError, auc, causal_curves, gkern
from saliency_bench.runtime.forward import ModelRunner
from saliency_bench.metrics.causal import (CurveRequest, SharedScores, blur, causal_curve_sets, pixel_ranks,
                                           reflect_gaussian_filter, substrate_images)
from tolerances import assert_same_maps, assert_same_probs

H, W = 12, 16


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(seed: int = 0, classes: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                          nn.Linear(128, classes))
    with torch.no_grad():
        model[-1].weight.mul_(10)  # spread the softmax so curves move
    return model.eval()


class Recorder(nn.Module):
    """A real model that also keeps every batch it is given."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.inner(x)


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, H, W, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def saliency():
    return np.random.default_rng(2).random((3, H, W)).astype(np.float32)


def reference_curves(model, images, saliency, mode, step, substrate, target=None):
    """The protocol as the original runs it: one image, one step at a time (on a copy)."""
    other = substrate_images(substrate, images)
    other = other.expand_as(images)
    start, finish = (images, other) if mode == "deletion" else (other, images)
    steps = -(-H * W // step)
    curves = np.empty((len(images), steps + 1))
    with torch.no_grad():
        for b in range(len(images)):
            c = int(model(images[b:b + 1]).argmax()) if target is None else int(target[b])
            order = np.argsort(-saliency[b].ravel(), kind="stable")
            current = start[b].clone().reshape(3, -1)
            for i in range(steps + 1):
                curves[b, i] = torch.softmax(model(current.reshape(1, 3, H, W)), 1)[0, c].item()
                if i < steps:
                    pixels = torch.from_numpy(order[i * step:(i + 1) * step])
                    current[:, pixels] = finish[b].reshape(3, -1)[:, pixels]
    return curves


@pytest.mark.parametrize("mode, substrate, step", [
    ("deletion", None, 8 * W), ("insertion", None, 8 * W), ("deletion", "mean", 50),
    ("insertion", "uniform noise", 50), ("deletion", "blur", 1 * W), ("insertion", "zeros", 7)])
def test_matches_step_by_step_reference(images, saliency, mode, substrate, step):
    model = tiny_model()
    default = {"deletion": "zeros", "insertion": "blur"}[mode]
    curves = causal_curves(model, images, saliency, mode=mode, step=step, substrate=substrate, batch_size=5)
    expected = reference_curves(model, images, saliency, mode, step, substrate or default)
    assert curves.shape == (3, -(-H * W // step) + 1)
    assert_same_probs(curves, expected)  # batches of 5 vs one image at a time


def test_given_target_is_scored(images, saliency):
    model = tiny_model()
    target = np.array([4, 0, 2])
    curves = causal_curves(model, images, saliency, mode="deletion", step=40, target=target)
    assert_same_probs(curves, reference_curves(model, images, saliency, "deletion", 40, "zeros", target))


def test_a_target_outside_the_models_classes_is_a_user_error(images, saliency):
    """A saliency file made with another model (more classes) names classes this one lacks."""
    model = tiny_model()
    n_classes = model(images[:1]).shape[1]
    with pytest.raises(UserError, match=rf"target classes must lie in \[0, {n_classes}\) \(the model's classes\), got \[0, {n_classes}, 1\]"):
        causal_curves(model, images, saliency, mode="deletion", step=40, target=np.array([0, n_classes, 1]))
    with pytest.raises(UserError, match="target has 2 entries for 3 images"):
        causal_curves(model, images, saliency, mode="insertion", step=40, target=np.array([0, 1]))


def test_pixel_ranks_tie_order():
    # flat [1, 0, 1, 0, 2, 0]: first the 2, then the 1s and the 0s in ascending pixel index
    tied = np.array([[[1, 0, 1], [0, 2, 0]]], dtype=np.float32)
    np.testing.assert_array_equal(pixel_ranks(tied), [[1, 3, 2, 4, 0, 5]])
    np.testing.assert_array_equal(pixel_ranks(tied.astype(np.uint8)), [[1, 3, 2, 4, 0, 5]])
    constant = np.full((2, 3, 4), 0.5, dtype=np.float32)
    np.testing.assert_array_equal(pixel_ranks(constant), np.tile(np.arange(12), (2, 1)))
    # large maps with many ties (and -0.0 beside 0.0): the order of numpy's stable argsort
    rng = np.random.default_rng(0)
    maps = np.round(rng.random((3, 64, 64)) * 20) / 20 - 0.5
    maps[0, 0, :8] = [-0.0, 0.0] * 4
    for saliency in (maps, maps.astype(np.float32), maps.astype(">f4")):
        order = np.argsort(-saliency.reshape(3, -1), axis=1, kind="stable")
        np.testing.assert_array_equal(np.take_along_axis(pixel_ranks(saliency), order, axis=1),
                                      np.tile(np.arange(64 * 64), (3, 1)))


def test_constant_map_deletes_row_by_row(images):
    """A constant map is legal; its pixels go in row-major order, so step = W deletes row k at step k."""
    recorder = Recorder(tiny_model())
    constant = np.zeros((1, H, W), dtype=np.float32)
    curves = causal_curves(recorder, images[:1], constant, mode="deletion", step=W, batch_size=64)
    assert curves.shape == (1, H + 1) and np.isfinite(curves).all()
    interior = recorder.inputs[-1]  # the last forward held the H - 1 interior points
    assert interior.shape[0] == H - 1
    for k in range(1, H):  # pixels copied, not computed: exact
        point = interior[k - 1]
        assert torch.equal(point[:, :k], torch.zeros_like(point[:, :k]))
        assert torch.equal(point[:, k:], images[0, :, k:])


def test_forward_batches_never_exceed_batch_size(images, saliency):
    recorder = Recorder(tiny_model())
    steps = -(-H * W // W)
    causal_curves(recorder, images, saliency, mode="insertion", step=W, batch_size=4)
    sizes = [len(x) for x in recorder.inputs]
    assert max(sizes) <= 4
    # interior points + unperturbed images + blurred images, nothing recomputed
    assert sum(sizes) == 3 * (steps - 1) + 3 + 3
    runner = ModelRunner(tiny_model(), batch_size=4)
    causal_curves(runner, images, saliency, mode="deletion", step=W)
    assert runner.forward_passes == 3 * (steps - 1) + 3 + 1  # one zeros image serves all


def test_curve_sets_match_separate_calls_and_fill_every_batch(images, saliency):
    """Several maps and both modes in one stream: each request gets its own curves (to round-off:
    the batches hold other neighbours), and only the very last interior batch is partial."""
    other_map = np.random.default_rng(7).random((3, H, W)).astype(np.float32)
    requests = [CurveRequest(saliency, "deletion"), CurveRequest(saliency, "insertion", "mean"),
                CurveRequest(other_map, "deletion", target=np.array([4, 0, 2])), CurveRequest(other_map, "insertion")]
    recorder = Recorder(tiny_model())
    step = W
    together = causal_curve_sets(recorder, images, requests, step=step, batch_size=5)
    for request, curves in zip(requests, together):
        alone = causal_curves(tiny_model(), images, request.saliency, mode=request.mode, substrate=request.substrate,
                              target=request.target, step=step, batch_size=5)
        assert_same_probs(curves, alone)
    assert not np.allclose(together[0], together[2])  # another map and class: other curves
    pairs = len(requests) * len(images) * (-(-H * W // step) - 1)
    interior = [len(x) for x in recorder.inputs if len(x) == 5 or x is recorder.inputs[-1]]
    assert sum(interior) == pairs and interior.count(5) == pairs // 5


def test_both_modes_of_one_map_rank_its_pixels_once(monkeypatch, images, saliency):
    """Deletion and insertion of the same map object share one sort, and give the curves of two
    separate maps with the same values, bit for bit."""
    from saliency_bench.metrics import causal

    sorted_maps = []
    real = causal.pixel_ranks
    monkeypatch.setattr(causal, "pixel_ranks", lambda values: sorted_maps.append(values) or real(values))
    model = ModelRunner(tiny_model(), batch_size=4)
    shared = causal_curve_sets(model, images, [CurveRequest(saliency, mode) for mode in ("deletion", "insertion")])
    assert len(sorted_maps) == 1
    apart = causal_curve_sets(model, images, [CurveRequest(saliency.copy(), mode) for mode in ("deletion", "insertion")])
    assert len(sorted_maps) == 3
    for a, b in zip(shared, apart):
        assert np.array_equal(a, b)


def test_shared_scores_saving_is_bit_identical():
    """Endpoints cached across methods and modes equal computing each call from scratch, bit for bit.

    resnet18 on the CPU gives bitwise different logits for an image in a batch of another
    size, so this fails if the cache scored the shared images in other batches than a fresh call.
    """
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    rng = np.random.default_rng(4)
    methods = [rng.random((3, 32, 32)).astype(np.float32) for _ in range(2)]
    kwargs = dict(step=256)

    fresh_runner = ModelRunner(model, batch_size=2)
    fresh = [causal_curves(fresh_runner, images, m, mode=mode, **kwargs)
             for mode in ("insertion", "deletion") for m in methods]
    shared_runner = ModelRunner(model, batch_size=2)
    shared = SharedScores(images)
    cached = [causal_curves(shared_runner, images, m, mode=mode, shared_scores=shared, **kwargs)
              for mode in ("insertion", "deletion") for m in methods]
    for a, b in zip(fresh, cached):  # same batches either way (the point of SharedScores): exact
        assert np.array_equal(a, b)
    # fresh: 4 calls x (3 images + 3 or 1 substrate); cached: 3 images + 3 blurred + 1 zeros once
    assert fresh_runner.forward_passes - shared_runner.forward_passes == (4 * 3 + 2 * 3 + 2 * 1) - (3 + 3 + 1)
    # and the shared first/last points really are the start and finish images' scores
    with torch.no_grad():
        direct = torch.softmax(model(torch.cat([images, blur(images), torch.zeros(1, 3, 32, 32)])), 1)
    target = direct[:3].argmax(1)
    assert_same_probs(fresh[2][:, 0], direct[torch.arange(3), target])  # one batch of 7 vs batches of 2
    assert_same_probs(fresh[0][:, 0], direct[torch.arange(3) + 3, target])
    assert_same_probs(fresh[2][:, -1], direct[6, target])


def test_blur_is_the_originals_full_conv(images):
    """The original convolves with a (3, 3, 11, 11) kernel holding gkern on the diagonal."""
    k = torch.from_numpy(gkern(11, 5))
    full = torch.zeros(3, 3, 11, 11)
    for c in range(3):
        full[c, c] = k
    assert_same_maps(blur(images), F.conv2d(images, full, padding=5))  # grouped vs full convolution


@pytest.mark.parametrize("klen, sigma", [(11, 5), (1, 1), (3, 1), (7, 0.5), (11, 2.5), (21, 3), (15, 40)])
def test_gkern_is_scipys_gaussian_filter_bit_for_bit(klen, sigma):
    """gkern computes what the RISE code's scipy call computes, in scipy's order (15, 40: the kernel
    reaches past several reflections of the 15 px line)."""
    from scipy.ndimage import gaussian_filter

    impulse = np.zeros((klen, klen))
    impulse[klen // 2, klen // 2] = 1
    assert np.array_equal(gkern(klen, sigma), gaussian_filter(impulse, sigma).astype(np.float32))


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("sigma", [0.7, 2, 9.5])
def test_the_gaussian_filter_matches_scipy_on_any_array(axis, sigma):
    from scipy.ndimage import gaussian_filter1d

    values = np.random.default_rng(3).normal(size=(7, 13))
    assert np.array_equal(reflect_gaussian_filter(values, sigma, axis), gaussian_filter1d(values, sigma, axis))


def test_an_evaluate_job_imports_neither_scipy_nor_pandas():
    """The blur kernel is made without scipy and records are written with csv, so an evaluate job does
    not pay their imports (about 0.1 s each); aggregate, which reads the records, uses pandas."""
    import subprocess
    import sys

    code = ("import sys; from saliency_bench.cli import build_parser; build_parser(['evaluate']); "
            "from saliency_bench.metrics.causal import gkern; gkern(); "
            "heavy = {'scipy', 'pandas'} & {name.split('.')[0] for name in sys.modules}; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_substrates(images):
    mean = substrate_images("mean", images)
    assert_same_maps(mean[:, :, 3, 5], images.mean(dim=(2, 3)))
    noise = substrate_images("uniform noise", images, seed=7)
    assert torch.equal(noise, substrate_images("uniform-noise", images, seed=7))  # same seed, same code: exact
    assert not torch.equal(noise, substrate_images("uniform noise", images, seed=8))
    assert (noise >= images.amin(dim=(2, 3), keepdim=True)).all()
    assert (noise <= images.amax(dim=(2, 3), keepdim=True)).all()
    assert substrate_images("zeros", images).shape == (1, 3, H, W)


def test_auc_known_values():  # numpy float64 on exact inputs: default (float64) tolerances
    np.testing.assert_allclose(auc([[0.0, 1.0], [1.0, 0.5], [0.3, 0.3]]), [0.5, 0.75, 0.3])
    np.testing.assert_allclose(auc([[0, 0, 1, 1]]), [0.5])  # (2 - 0 - 0.5) / 3
    assert auc([1.0, 0.5, 0.0]).shape == () and float(auc([1.0, 0.5, 0.0])) == 0.5  # one curve: one number
    curves = np.random.default_rng(0).random((2, 5, 9))
    assert auc(curves).shape == (2, 5)  # leading axes kept, as the figures' (image, method) stacks need
    assert auc(curves).mean() == pytest.approx(float(auc(curves.mean(axis=(0, 1)))))  # mean of AUCs = AUC of mean


@pytest.mark.parametrize("change, message", [
    (dict(saliency=np.zeros((3, H, W + 1))), "does not match images"),
    (dict(saliency=np.zeros((2, H, W))), "does not match images"),
    (dict(step=0), "step must be at least 1"),
    (dict(mode="del"), "unknown mode"),
    (dict(substrate="gaussian"), "unknown substrate"),
])
def test_bad_input_raises_user_error(images, saliency, change, message):
    kwargs = dict(saliency=saliency, mode="deletion", step=W) | change
    with pytest.raises(UserError, match=message) as info:
        causal_curves(tiny_model(), images, kwargs.pop("saliency"), **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_saliency_names_the_image(images, saliency, bad):
    broken = saliency.copy()
    broken[1, 4, 5] = bad
    with pytest.raises(UserError, match="image 1 of the batch holds NaN or infinite"):
        causal_curves(tiny_model(), images, broken, mode="insertion")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(images, saliency):
    model = tiny_model()
    for mode in ("deletion", "insertion"):
        on_cpu = causal_curves(model, images, saliency, mode=mode, step=20)
        on_gpu = causal_curves(tiny_model().cuda(), images.cuda(), torch.from_numpy(saliency).cuda(), mode=mode, step=20)
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-4, atol=1e-6)
