"""RISE mask generation and HDF5 mask sets."""
from __future__ import annotations

import shlex

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from saliency_bench import UserError
from saliency_bench.cli import main as cli_main
from saliency_bench.formats.masks import MaskSet, from_storage, to_storage
from saliency_bench.masks import (MaskPlan, cell_size, generate_masks, plan_masks, render_masks, rerender_error, set_seed,
                                  stored_plan, write_masks)
from saliency_bench.rise import rise_saliency
from saliency_bench.workflow_config import mask_configs
from tolerances import assert_same_maps

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


@pytest.mark.parametrize("params", [{}, {"engine": "fbm"}])
def test_perlin_grids_are_min_max_normalised_and_distinct(params):
    plan = plan_masks("perlin", 200, SIZE, seed=0, **params)
    grids = plan.grids.flatten(1)
    assert torch.allclose(grids.min(1).values, torch.zeros(200)) and torch.allclose(grids.max(1).values, torch.ones(200))
    # study: seeds from [0, 10000) (a few coincide among 200); fbm: the random phase
    assert len(torch.unique(grids, dim=0)) >= 190


def test_fbm_without_phase_has_at_most_128_grids():
    fixed = plan_masks("perlin", 200, SIZE, seed=0, engine="fbm", phase=False).grids.flatten(1)
    assert len(torch.unique(fixed, dim=0)) <= 128  # only the base varies


def test_same_seed_same_masks_different_seed_different():
    for kind, kwargs in [("binary", {"p": 0.5}), ("gaussian", {}), ("perlin", {})]:
        first = generate_masks(kind, 20, SIZE, seed=3, **kwargs)
        assert torch.equal(first, generate_masks(kind, 20, SIZE, seed=3, **kwargs))  # same seed and code: exact
        assert not torch.equal(first, generate_masks(kind, 20, SIZE, seed=4, **kwargs))


def test_clamp_render_equals_interpolate_then_crop():
    """upsample=clamp: the separable matmul rendering is F.interpolate(bilinear) followed by the shifted crop."""
    plan = plan_masks("gaussian", 30, SIZE, s=5, seed=2, upsample="clamp")
    cell_h, cell_w = cell_size(SIZE, 5)
    upsampled = F.interpolate(plan.grids[:, None], size=(6 * cell_h, 6 * cell_w), mode="bilinear", align_corners=False)[:, 0]
    expected = torch.stack([upsampled[i, x:x + SIZE[0], y:y + SIZE[1]] for i, (x, y) in enumerate(plan.shifts.tolist())])
    assert_same_maps(plan.render(), expected)  # matmuls vs interpolate: round-off
    assert (plan.shifts[:, 0] < cell_h).all() and (plan.shifts[:, 1] < cell_w).all() and (plan.shifts >= 0).all()


# The stated bound for "equal to scikit-image resize" (float32 round-off is ~1e-7 here).
SKIMAGE_ATOL = 1e-6


@pytest.mark.parametrize("size, s", [((40, 36), 8), ((30, 50), 7), ((17, 9), 3), ((224, 224), 8), ((12, 10), 1)])
def test_reflect_render_equals_scikit_image_resize_then_crop(size, s):
    """The default, the study's upsampling: skimage resize(order=1, mode='reflect') then the crop."""
    from skimage.transform import resize

    plan = plan_masks("gaussian", 12, size, s=s, seed=2)
    assert plan.upsample == "reflect"
    cell_h, cell_w = cell_size(size, s)
    expected = np.stack([resize(grid.numpy(), ((s + 1) * cell_h, (s + 1) * cell_w), order=1, mode="reflect",
                                anti_aliasing=False)[x:x + size[0], y:y + size[1]]
                         for grid, (x, y) in zip(plan.grids, plan.shifts.tolist())])
    np.testing.assert_allclose(plan.render().numpy(), expected, rtol=0, atol=SKIMAGE_ATOL)


def test_clamp_and_reflect_differ_only_in_the_border_band():
    plan = plan_masks("binary", 50, (64, 64), p=0.5, seed=1)
    reflect = plan.render()
    plan.upsample = "clamp"
    differs = (reflect - plan.render()).abs() > SKIMAGE_ATOL
    assert differs.any()
    # upsampled rows and columns further than half a cell (4 px) from the grid border agree
    rows, cols = (plan.shifts[:, axis, None] + torch.arange(64) for axis in (0, 1))
    inner_rows, inner_cols = ((index >= 4) & (index < 9 * 8 - 4) for index in (rows, cols))
    assert not differs[inner_rows[:, :, None] & inner_cols[:, None, :]].any()
    assert differs[~inner_rows[:, :, None] | ~inner_cols[:, None, :]].any()


def test_write_masks_attrs_chunking_and_chunk_size_independence(tmp_path):
    path = tmp_path / "m.h5"
    masks = write_masks(path, "binary", 50, SIZE, p=0.5, seed=7, chunk=16, dtype="float32")
    with h5py.File(path, "r") as handle:
        dataset = handle["masks"]
        assert dataset.shape == (50, *SIZE) and dataset.dtype == np.float32
        assert dataset.chunks == (16, *SIZE)
    assert masks.attrs["kind"] == "binary" and masks.attrs["p"] == 0.5 and masks.attrs["n"] == 50
    assert masks.attrs["seed"] == 7 and (masks.attrs["height"], masks.attrs["width"]) == SIZE and masks.attrs["s"] == 8
    assert masks.attrs["set_id"] == "binary-p0.5" and masks.attrs["generator_seed"] == set_seed(7, "binary-p0.5")
    assert masks.attrs["upsample"] == "reflect"
    assert "version" in masks.attrs and masks.attrs["params"] == {}
    assert len(masks) == 50 and masks.size == SIZE
    direct = generate_masks("binary", 50, SIZE, p=0.5, seed=7)
    assert_same_maps(masks.read(), direct)  # rendered in other chunks (batched matmuls of another size)
    other = write_masks(tmp_path / "m2.h5", "binary", 50, SIZE, p=0.5, seed=7, chunk=7, dtype="float32")
    assert_same_maps(other.read(), direct)
    gaussian = write_masks(tmp_path / "g.h5", "gaussian", 5, SIZE, std=0.1)
    assert gaussian.attrs["p"] is None and gaussian.attrs["params"] == {"mean": 0.5, "std": 0.1}


def test_mask_set_streams_float32_chunks_and_mean(tmp_path):
    masks = write_masks(tmp_path / "m.h5", "gaussian", 23, SIZE, seed=1)
    chunks = list(masks.iter_chunks(10))
    assert [len(c) for c in chunks] == [10, 10, 3] and all(c.dtype == torch.float32 for c in chunks)
    stored = torch.cat(chunks)
    assert masks.mean() == pytest.approx(stored.double().mean().item(), rel=1e-12)
    assert torch.allclose(stored, generate_masks("gaussian", 23, SIZE, seed=1), atol=5e-4)  # float16 rounding


def test_float16_storage_rounds_like_numpy_bit_for_bit_and_reads_back_exactly(tmp_path):
    # ties to even, float16 subnormals, the largest float16 and values that overflow to inf
    edges = np.array([0.5 + 2 ** -12, 0.5 + 3 * 2 ** -12, 1 - 2 ** -12, 2 ** -24, 3 * 2 ** -26, 1e-8, 6.1e-5,
                      65504.0, 65520.0, 1e6, -0.0, 0.0, 1.0], dtype=np.float32)
    values = np.concatenate([edges, np.random.default_rng(0).random(10_000, dtype=np.float32)])
    with np.errstate(over="ignore"):  # the overflow to inf is meant
        half = values.astype(np.float16)
    assert np.array_equal(to_storage(values, "float16").view(np.uint16), half.view(np.uint16))
    assert to_storage(values, "float32").tobytes() == values.tobytes()
    assert np.array_equal(from_storage(half).numpy(), half.astype(np.float32))
    masks = write_masks(tmp_path / "m.h5", "gaussian", 40, SIZE, seed=3)
    with h5py.File(masks.path) as handle:
        stored = handle["masks"][()]
    rendered = generate_masks("gaussian", 40, SIZE, seed=3).numpy()
    assert stored.dtype == np.float16 and np.array_equal(stored.view(np.uint16), rendered.astype(np.float16).view(np.uint16))
    assert np.array_equal(masks.read().numpy(), stored.astype(np.float32))


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
    ({"kind": "perlin", "engine": "fbm", "octaves": 9}, "safe range"),
    ({"kind": "perlin", "octaves": 3}, "fbm engine only"),
    ({"kind": "perlin", "phase": False}, "fbm engine only"),
    ({"kind": "perlin", "engine": "simplex"}, "unknown Perlin engine"),
    ({"kind": "perlin", "frequency": 0}, "frequency must be > 0"),
    ({"kind": "perlin", "engine": "fbm", "frequency": -1}, "frequency must be > 0"),
    ({"kind": "gaussian", "upsample": "nearest"}, "unknown upsample mode"),
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


def test_every_draw_is_stored_and_rerenders_the_masks(tmp_path):
    for kind, kwargs in [("perlin", {}), ("binary", {"p": 0.3})]:
        path = tmp_path / f"{kind}.h5"
        masks = write_masks(path, kind, 30, SIZE, seed=2, chunk=8, dtype="float32", **kwargs)
        plan = plan_masks(kind, 30, SIZE, seed=2, **kwargs)  # the same draws: same seed, same order
        with h5py.File(path, "r") as handle:
            assert handle["grids"].dtype == np.float32 and handle["grids"].shape == (30, 8, 8)
            assert handle["shifts"].shape == (30, 2) and handle["shifts"].dtype.kind == "i"
            assert np.array_equal(handle["grids"][()], plan.grids.numpy())
            assert np.array_equal(handle["shifts"][()], plan.shifts.numpy())
            assert ("perlin_seeds" in handle) == (kind == "perlin")
            if kind == "perlin":
                assert np.array_equal(handle["perlin_seeds"][()], plan.perlin_seeds.numpy())
        assert_same_maps(stored_plan(masks).render(), masks.read())  # one batch vs chunks of 8
        assert rerender_error(masks) <= 1e-6
        assert cli_main(["masks", "--verify", str(path)]) == 0


def test_an_old_mask_file_without_draws_asks_to_regenerate(tmp_path, capsys):
    path = tmp_path / "old.h5"
    write_masks(path, "binary", 6, SIZE, p=0.5)
    with h5py.File(path, "a") as handle:  # what files written before the draws were stored look like
        del handle["grids"], handle["shifts"]
    with pytest.raises(UserError, match="regenerate the masks") as error:
        stored_plan(MaskSet(path))
    assert "\n" not in str(error.value)
    assert cli_main(["masks", "--verify", str(path)]) == 2
    assert "regenerate the masks" in capsys.readouterr().err
    assert len(MaskSet(path).read()) == 6  # the masks themselves still read


def paper_config(**rise):
    import yaml
    from pathlib import Path

    from workflow_helpers import typed_config

    config = yaml.safe_load((Path(__file__).parents[1] / "config" / "paper.yaml").read_text())
    config["rise"].update(rise)
    return typed_config(config)


def test_mask_sets_of_one_config_are_independent(tmp_path):
    """Through the workflow's CLI arguments: p=0.1 is not nested in p=0.3, and no shared shifts."""
    sets = {}
    for mask in mask_configs(paper_config()):
        if mask.kind == "binary":
            path = tmp_path / f"{mask.mask_id}.h5"
            argv = ["masks", *shlex.split(mask.cli_args()), "--n", "300", "--size", *map(str, SIZE), "--out", str(path)]
            assert cli_main(argv) == 0
            sets[mask.mask_id] = MaskSet(path)
    low, high = stored_plan(sets["binary-p0.1"]), stored_plan(sets["binary-p0.3"])
    assert ((low.grids == 1) & (high.grids == 0)).any()  # thresholding shared uniforms would forbid this
    assert len({mask_set.attrs["generator_seed"] for mask_set in sets.values()}) == 4
    shifts = [stored_plan(mask_set).shifts for mask_set in sets.values()]
    for first in range(4):
        for second in range(first + 1, 4):
            same = (shifts[first] == shifts[second]).all(1).float().mean().item()
            assert same < 0.1  # independent shifts coincide with chance 1/25 here (5 x 5 px cells); shared: 1


def test_repeats_draw_new_independent_sets():
    configs = {mask.mask_id: mask for mask in mask_configs(paper_config(repeats=2))}
    assert {"binary-p0.5", "binary-p0.5-seed1", "perlin", "perlin-seed1"} <= set(configs)
    first, second = configs["perlin"], configs["perlin-seed1"]
    assert (first.seed, second.seed) == (0, 1) and first.base_id == second.base_id == "perlin"
    a = plan_masks("perlin", 20, SIZE, seed=first.seed, set_id=first.base_id)
    b = plan_masks("perlin", 20, SIZE, seed=second.seed, set_id=second.base_id)
    assert not torch.equal(a.perlin_seeds, b.perlin_seeds) and not torch.equal(a.shifts, b.shifts)
