"""RISE mask generation and HDF5 mask sets."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from saliency_bench import UserError
from saliency_bench.masks import MaskPlan, MaskSet, cell_size, generate_masks, plan_masks, render_masks, write_masks
from saliency_bench.rise import rise_saliency

SIZE = (40, 36)  # not a multiple of s: exercises the ceil in the cell size


@pytest.mark.parametrize("kind, kwargs, expected_mean", [
    ("binary", {"p": 0.3}, 0.3), ("binary", {"p": 0.7}, 0.7), ("gaussian", {}, 0.5), ("perlin", {}, None)])
def test_mask_statistics(kind, kwargs, expected_mean):
    masks = generate_masks(kind, 400, SIZE, seed=1, **kwargs)
    assert masks.shape == (400, *SIZE) and masks.dtype == torch.float32
    assert masks.min() >= 0 and masks.max() <= 1
    if expected_mean is not None:
        assert abs(masks.mean().item() - expected_mean) < 0.03
    # Smooth: neighbouring pixels differ by at most one grid step spread over a cell.
    cell_h, cell_w = cell_size(SIZE, 8)
    assert (masks[:, 1:] - masks[:, :-1]).abs().max() <= 1 / cell_h + 1e-5
    assert (masks[:, :, 1:] - masks[:, :, :-1]).abs().max() <= 1 / cell_w + 1e-5


def test_perlin_grids_are_min_max_normalised_and_distinct():
    plan = plan_masks("perlin", 200, SIZE, seed=0)
    grids = plan.grids.flatten(1)
    assert torch.allclose(grids.min(1).values, torch.zeros(200)) and torch.allclose(grids.max(1).values, torch.ones(200))
    assert len(torch.unique(grids, dim=0)) == 200  # the random phase makes every grid its own
    fixed = plan_masks("perlin", 200, SIZE, seed=0, phase=False).grids.flatten(1)
    assert len(torch.unique(fixed, dim=0)) <= 128  # the study's scheme: only the base varies


def test_same_seed_same_masks_different_seed_different():
    for kind, kwargs in [("binary", {"p": 0.5}), ("gaussian", {}), ("perlin", {})]:
        first = generate_masks(kind, 20, SIZE, seed=3, **kwargs)
        assert torch.equal(first, generate_masks(kind, 20, SIZE, seed=3, **kwargs))
        assert not torch.equal(first, generate_masks(kind, 20, SIZE, seed=4, **kwargs))


def test_render_equals_interpolate_then_crop():
    """The separable matmul rendering is F.interpolate(bilinear) followed by the shifted crop."""
    plan = plan_masks("gaussian", 30, SIZE, s=5, seed=2)
    cell_h, cell_w = cell_size(SIZE, 5)
    upsampled = F.interpolate(plan.grids[:, None], size=(6 * cell_h, 6 * cell_w), mode="bilinear", align_corners=False)[:, 0]
    expected = torch.stack([upsampled[i, x:x + SIZE[0], y:y + SIZE[1]] for i, (x, y) in enumerate(plan.shifts.tolist())])
    assert torch.allclose(plan.render(), expected, atol=1e-6)
    assert (plan.shifts[:, 0] < cell_h).all() and (plan.shifts[:, 1] < cell_w).all() and (plan.shifts >= 0).all()


def test_agrees_with_scikit_image_inside_the_grid():
    """Documented difference: skimage (mode='reflect') mirrors at the border, torch clamps; inside they agree."""
    resize = pytest.importorskip("skimage.transform").resize
    grid = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    up_size = (9 * 5, 9 * 5)
    ours = F.interpolate(grid[:, None], size=up_size, mode="bilinear", align_corners=False)[0, 0].numpy()
    theirs = resize(grid[0].numpy(), up_size, order=1, mode="reflect", anti_aliasing=False)
    inner = slice(3, -3)  # beyond half an upsampling factor from the border
    assert np.allclose(ours[inner, inner], theirs[inner, inner], atol=1e-6)
    assert not np.allclose(ours, theirs, atol=1e-3)  # the border band differs


def test_write_masks_attrs_chunking_and_chunk_size_independence(tmp_path):
    path = tmp_path / "m.h5"
    masks = write_masks(path, "binary", 50, SIZE, p=0.5, seed=7, chunk=16, dtype="float32")
    with h5py.File(path, "r") as handle:
        dataset = handle["masks"]
        assert dataset.shape == (50, *SIZE) and dataset.dtype == np.float32
        assert dataset.chunks == (16, *SIZE)
    assert masks.attrs["kind"] == "binary" and masks.attrs["p"] == 0.5 and masks.attrs["n"] == 50
    assert masks.attrs["seed"] == 7 and (masks.attrs["height"], masks.attrs["width"]) == SIZE and masks.attrs["s"] == 8
    assert "version" in masks.attrs and masks.attrs["params"] == {}
    assert len(masks) == 50 and masks.size == SIZE
    direct = generate_masks("binary", 50, SIZE, p=0.5, seed=7)
    assert torch.equal(masks.read(), direct)
    other = write_masks(tmp_path / "m2.h5", "binary", 50, SIZE, p=0.5, seed=7, chunk=7, dtype="float32")
    assert torch.equal(other.read(), direct)
    gaussian = write_masks(tmp_path / "g.h5", "gaussian", 5, SIZE, std=0.1)
    assert gaussian.attrs["p"] is None and gaussian.attrs["params"] == {"mean": 0.5, "std": 0.1}


def test_mask_set_streams_float32_chunks_and_mean(tmp_path):
    masks = write_masks(tmp_path / "m.h5", "gaussian", 23, SIZE, seed=1)
    chunks = list(masks.iter_chunks(10))
    assert [len(c) for c in chunks] == [10, 10, 3] and all(c.dtype == torch.float32 for c in chunks)
    stored = torch.cat(chunks)
    assert masks.mean() == pytest.approx(stored.double().mean().item(), rel=1e-12)
    assert torch.allclose(stored, generate_masks("gaussian", 23, SIZE, seed=1), atol=5e-4)  # float16 rounding


def test_float16_storage_changes_rise_maps_by_less_than_1e_3(tmp_path, golden_model):
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    exact = generate_masks("gaussian", 64, (64, 64), seed=5)
    stored = write_masks(tmp_path / "m.h5", "gaussian", 64, (64, 64), seed=5, dtype="float16")
    reference = rise_saliency(golden_model, images, exact, batch_size=32)
    half = rise_saliency(golden_model, images, stored, batch_size=32)
    relative = ((half - reference).abs().max() / reference.abs().max()).item()
    assert 0 < relative < 1e-3


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "m.h5"
    with pytest.raises(UserError):
        write_masks(path, "binary", 10, SIZE, p=1.5)
    assert not list(tmp_path.iterdir())
    # A failure after the first chunk was written (e.g. a full disk) leaves nothing either.
    calls = []

    def render_then_fail(self, part=slice(None)):
        calls.append(part)
        if len(calls) > 1:
            raise OSError("disk full")
        return render_masks(self.grids[part], self.shifts[part], self.size, self.s)

    monkeypatch.setattr(MaskPlan, "render", render_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_masks(path, "binary", 10, SIZE, p=0.5, chunk=4)
    assert len(calls) == 2 and not list(tmp_path.iterdir())


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "stripes"}, "unknown mask kind"),
    ({"kind": "binary"}, "need a keep probability"),
    ({"kind": "binary", "p": 0.0}, "(0, 1]"),
    ({"kind": "binary", "p": 1.2}, "(0, 1]"),
    ({"kind": "gaussian", "p": 0.5}, "take no p"),
    ({"kind": "binary", "p": 0.5, "s": 0}, "s must be"),
    ({"kind": "perlin", "colour": 3}, "unknown parameter"),
    ({"kind": "perlin", "octaves": 9}, "safe range"),
])
def test_bad_arguments_raise_one_line_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("]", r"\]")) as error:
        generate_masks(n=4, size=SIZE, **kwargs)
    assert "\n" not in str(error.value)


def test_mask_set_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(UserError, match="mask file not found"):
        MaskSet(tmp_path / "none.h5")
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["something"] = np.zeros(3)
    with pytest.raises(UserError, match="not a mask file"):
        MaskSet(tmp_path / "other.h5")
