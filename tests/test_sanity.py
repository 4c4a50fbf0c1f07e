"""Model-parameter randomisation check (Adebayo et al. 2018) on a real small ResNet."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
import torchvision

from saliency_bench.cli import main
from saliency_bench.formats.image_table import write_image_table
from saliency_bench.sanity import SanityMethod, cascade_blocks, randomise_block, run_sanity


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=3).eval()


@pytest.fixture()
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 48, 48)


def test_cascade_runs_from_the_output_back(model):
    blocks = cascade_blocks(model)
    assert blocks[0] == "fc" and blocks[-1] == "conv1"
    assert blocks.index("layer4") < blocks.index("layer1")


def test_randomising_a_block_changes_only_that_block(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    randomise_block(model.layer4, seed=3)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("layer4.") for k in changed)


def test_model_independent_maps_are_flagged_and_model_dependent_ones_are_not(model, images):
    from saliency_bench import generate_masks

    masks = generate_masks("binary", 64, (48, 48), p=0.5, seed=0)
    methods = [SanityMethod("centre", "centre"), SanityMethod("rise", "rise", (("masks", masks), ("p", 0.5)))]
    rows = pd.DataFrame(run_sanity(model, images, methods, seed=0, batch_size=8))
    assert len(rows) == len(methods) * len(cascade_blocks(model))
    final = rows[rows["step"] == rows["step"].max()].set_index("method_id")
    assert final.loc["centre", "spearman"] == pytest.approx(1.0) and final.loc["centre", "insensitive"]
    # RISE weighs masks by the model's outputs: a re-initialised network scrambles its maps
    assert final.loc["rise", "spearman"] < 0.5 and not final.loc["rise", "insensitive"]


def test_sanity_cli_writes_table_and_figure(tmp_path, model):
    from PIL import Image
    import numpy as np

    records = []
    from saliency_bench.data import ImageRecord

    for index in range(2):
        path = tmp_path / "images" / "a" / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(index).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)
        records.append(ImageRecord(f"a/{index}.png", str(path), 0, "a"))
    # only the first --n-images are decoded: a run's table may hold thousands (and this one no image)
    (tmp_path / "images" / "a" / "not-an-image.png").write_text("text")
    records.append(ImageRecord("a/not-an-image.png", str(tmp_path / "images" / "a" / "not-an-image.png"), 0, "a"))
    write_image_table(tmp_path / "images.csv", records, 2)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    out, figure = tmp_path / "sanity.csv", tmp_path / "sanity.png"
    code = main(["sanity", "--methods", "abscam-init", "--layers", "layer4", "--images", str(tmp_path / "images.csv"),
                 "--size", "40", "40", "--num-classes", "3", "--checkpoint", str(tmp_path / "model.pt"),
                 "--device", "cpu", "--n-images", "2", "--out", str(out), "--figure", str(figure)])
    assert code == 0
    table = pd.read_csv(out)
    assert set(table.columns) >= {"method_id", "randomised", "spearman", "ssim", "insensitive"}
    assert figure.stat().st_size > 10_000
