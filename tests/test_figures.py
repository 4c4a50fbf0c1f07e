"""Figures: real (tiny) stage outputs on disk -> CLI -> PNG files; and the Figure objects' legibility."""
from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from PIL import Image

from saliency_bench.report import figures
from saliency_bench.cli import main
from saliency_bench.data import discover_images, load_images
from saliency_bench.errors import UserError
from saliency_bench.formats.curves import read_curve_files
from saliency_bench.formats.image_table import write_image_table
from saliency_bench.formats.masks import MaskSet
from saliency_bench.formats.saliency import write_saliency
from saliency_bench.methods import method_of_id
from cli_helpers import one_line_error

SIZE = (32, 40)  # H, W: not square, so that a transposed array would show
METHODS = ("rise-binary-p0.5", "rise-gaussian", "abscam-init-layer1", "abscam-final-layer1",
           "abscam-init-layer2", "abscam-final-layer2", "random", "centre")
STEPS = 8


@pytest.fixture(scope="module")
def stage_outputs(tmp_path_factory):
    """A tiny ImageFolder, its image table, two mask files, saliency and curves files in two shards, a summary."""
    root = tmp_path_factory.mktemp("stage")
    rng = np.random.default_rng(0)
    for class_name in ("daphnia", "water flea"):
        (root / "data" / class_name).mkdir(parents=True)
        for index in range(3):
            pixels = rng.integers(0, 256, (44, 50, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "data" / class_name / f"img {index}.png")
    records, _ = discover_images(root / "data")
    write_image_table(root / "images.csv", records, images_per_job=3)
    ids = [r.image_id for r in records]

    for mask_id, kind in (("rise-binary-p0.5", "binary"), ("rise-gaussian", "gaussian")):
        with h5py.File(root / f"{mask_id}.h5", "w") as handle:
            handle.create_dataset("masks", data=rng.random((10, *SIZE)).astype(np.float16))
            handle.attrs.update(kind=kind, p=0.5 if kind == "binary" else float("nan"), s=8, n=10)

    for method_id in METHODS:
        method = method_of_id(method_id).name  # as `explain` stores them: the method, its variant and params
        variant = method_id.removeprefix(method).lstrip("-") or "chance"
        params = {"layer": variant} if method.startswith("abscam") else {}
        for shard in (0, 1):
            shard_ids = ids[3 * shard: 3 * shard + 3]
            write_saliency(root / "saliency" / method_id / f"shard-{shard}.h5", rng.random((3, *SIZE)), shard_ids,
                           target=np.array([0, 1, 0]), top1_prob=np.array([0.835, 0.6, 0.51]),
                           method_id=method_id, method=method, variant=variant, params=params)
            deletion = np.sort(rng.random((3, STEPS + 1)), axis=1)[:, ::-1]
            insertion = np.sort(rng.random((3, STEPS + 1)), axis=1)
            path = root / "metrics" / method_id / f"shard-{shard}.curves.h5"
            path.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(path, "w") as handle:
                handle.create_dataset("image_id", data=np.array(shard_ids, dtype=object), dtype=h5py.string_dtype("utf-8"))
                handle.create_dataset("deletion", data=deletion)
                handle.create_dataset("insertion", data=insertion)
                handle.attrs.update(method_id=method_id, step=8)

    summary = pd.DataFrame({"method_id": list(METHODS), "method": [m.split("-")[0] for m in METHODS],
                            "variant": "", "n_images": 6,
                            "deletion_auc": rng.uniform(0.1, 0.4, len(METHODS)), "insertion_auc": rng.uniform(0.4, 0.8, len(METHODS))})
    summary["score"] = summary.insertion_auc - summary.deletion_auc
    summary["deleted_prob"], summary["blurred_prob"] = 0.45, 0.2
    summary.to_csv(root / "summary.csv", index=False)
    for column in ("deletion_auc", "insertion_auc", "score"):
        summary[f"{column}_lo"], summary[f"{column}_hi"] = summary[column] - 0.03, summary[column] + 0.05
    summary.to_csv(root / "summary_ci.csv", index=False)
    return root, records


def _saliency_files(root):
    return sorted(str(p) for p in (root / "saliency").rglob("*.h5"))


def _curve_files(root):
    return sorted(str(p) for p in (root / "metrics").rglob("*.curves.h5"))


def _assert_png(path: Path, min_width: int = 300, min_height: int = 200) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width and image.height >= min_height, (path, image.size)
        assert np.asarray(image.convert("L")).std() > 5, f"{path} looks blank"


# ---- CLI end to end --------------------------------------------------------------------
def test_cli_masks_writes_one_figure_per_mask_file(stage_outputs, tmp_path):
    root, _ = stage_outputs
    out = tmp_path / "figs"
    assert main(["figures", "masks", "--masks", str(root / "rise-binary-p0.5.h5"), str(root / "rise-gaussian.h5"),
                 "--images", str(root / "images.csv"), "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["masks-rise-binary-p0.5.png", "masks-rise-gaussian.png"]
    for path in out.iterdir():
        _assert_png(path)


def test_cli_saliency_writes_the_documented_names(stage_outputs, tmp_path):
    root, records = stage_outputs
    out = tmp_path / "figs"
    preprocess = ["--size", *map(str, SIZE), "--mean", "0.485", "0.456", "0.406", "--std", "0.229", "0.224", "0.225"]  # as the rule passes it
    assert main(["figures", "saliency", "--saliency", *_saliency_files(root), "--images", str(root / "images.csv"),
                 *preprocess, "--out-dir", str(out), "--max-images", "2"]) == 0
    stems = [figures.file_stem(r.image_id) for r in records[:2]]  # the first 2 in image-table order
    expected = {f"overview-{s}.png" for s in stems} | {f"abscam-layers-{s}.png" for s in stems}
    expected |= {f"abscam-init-vs-final-{s}-{layer}.png" for s in stems for layer in ("layer1", "layer2")}
    assert {p.name for p in out.iterdir()} == expected
    assert "overview-daphnia__img_0.png" in expected
    for path in out.iterdir():
        _assert_png(path)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == [], "staging folder left behind"


def test_cli_saliency_kinds_select_figures(stage_outputs, tmp_path):
    root, _ = stage_outputs
    out = tmp_path / "figs"
    assert main(["figures", "saliency", "--saliency", *_saliency_files(root), "--images", str(root / "images.csv"),
                 "--out-dir", str(out), "--max-images", "2", "--kinds", "abscam-layers"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["abscam-layers-daphnia__img_0.png", "abscam-layers-daphnia__img_1.png"]


def test_cli_saliency_size_must_match_the_maps(stage_outputs, tmp_path, capsys):
    root, _ = stage_outputs
    assert main(["figures", "saliency", "--saliency", *_saliency_files(root)[:1], "--images", str(root / "images.csv"),
                 "--size", "224", "224", "--out-dir", str(tmp_path / "figs")]) == 2
    assert "--size" in capsys.readouterr().err
    assert not (tmp_path / "figs").exists()


def test_cli_saliency_class_names_must_cover_the_explained_classes(stage_outputs, tmp_path, capsys):
    root, _ = stage_outputs
    base = ["figures", "saliency", "--saliency", *_saliency_files(root)[:1], "--images", str(root / "images.csv"),
            "--max-images", "2", "--kinds", "overview"]
    one_line_error([*base, "--class-names", "daphnia", "--out-dir", str(tmp_path / "short")], capsys,
                   "--class-names gives 1 name(s), but the maps explain class 1", "one name per class")
    assert not (tmp_path / "short").exists()
    assert main([*base, "--class-names", "daphnia", "water flea", "--out-dir", str(tmp_path / "full")]) == 0


def test_cli_max_images_zero_writes_no_per_image_figures(stage_outputs, tmp_path):
    root, _ = stage_outputs
    files = [f for f in _curve_files(root) if Path(f).parent.name == "random"]
    assert main(["figures", "curves", "--curves", *files, "--out-dir", str(tmp_path / "curves"), "--max-images", "0"]) == 0
    assert [p.name for p in (tmp_path / "curves").iterdir()] == ["mean-curves-random.png"]
    assert main(["figures", "saliency", "--saliency", *_saliency_files(root), "--images", str(root / "images.csv"),
                 "--out-dir", str(tmp_path / "saliency"), "--max-images", "0"]) == 0
    assert list((tmp_path / "saliency").iterdir()) == []


def test_cli_curves_writes_per_image_and_mean_figures(stage_outputs, tmp_path):
    root, records = stage_outputs
    out = tmp_path / "figs"
    chosen = ("rise-gaussian", "random", "centre")  # a few methods keep the test quick
    files = [f for f in _curve_files(root) if Path(f).parent.name in chosen]
    assert main(["figures", "curves", "--curves", *files, "--out-dir", str(out), "--max-images", "2"]) == 0
    stems = [figures.file_stem(r.image_id) for r in records[:2]]
    expected = {f"curves-{s}-{m}.png" for s in stems for m in chosen} | {f"mean-curves-{m}.png" for m in chosen}
    assert {p.name for p in out.iterdir()} == expected
    for name in ("mean-curves-rise-gaussian.png", f"curves-{stems[0]}-random.png"):
        _assert_png(out / name)


def test_cli_summary_writes_the_chart(stage_outputs, tmp_path):
    root, _ = stage_outputs
    out = tmp_path / "summary.png"
    assert main(["figures", "summary", "--summary", str(root / "summary_ci.csv"), "--out", str(out)]) == 0
    _assert_png(out)


def test_cli_bad_input_is_one_line_and_leaves_nothing(stage_outputs, tmp_path, capsys):
    root, _ = stage_outputs
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not hdf5")
    out = tmp_path / "figs"
    # the first mask file renders fine; the second fails: nothing may reach the output folder
    code = main(["figures", "masks", "--masks", str(root / "rise-binary-p0.5.h5"), str(broken),
                 "--images", str(root / "images.csv"), "--out-dir", str(out)])
    assert code == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "broken.h5" in message
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["broken.h5"]


def test_cli_summary_without_score_column_is_user_error(tmp_path, capsys):
    pd.DataFrame({"method_id": ["a"], "deletion_auc": [0.1], "insertion_auc": [0.5]}).to_csv(tmp_path / "s.csv", index=False)
    assert main(["figures", "summary", "--summary", str(tmp_path / "s.csv"), "--out", str(tmp_path / "o.png")]) == 2
    assert "score" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


# ---- the Figure objects ------------------------------------------------------------------
def _rgb_and_maps(stage_outputs):
    root, records = stage_outputs
    image = load_images(records[:1], SIZE)[0].numpy()
    rng = np.random.default_rng(1)
    return image, figures.unnormalise(image), {m: rng.random(SIZE) for m in METHODS}


def test_every_builder_makes_a_legible_figure(stage_outputs):
    image, rgb, maps = _rgb_and_maps(stage_outputs)
    root, _ = stage_outputs
    curves = read_curve_files(_curve_files(root))
    pairs = {m: (c.deletion, c.insertion) for m, c in curves.items()}
    built = {
        "masks": figures.masks_figure(np.random.default_rng(2).random((4, *SIZE)), image, title="binary masks"),
        "masks-3": figures.masks_figure(np.random.default_rng(2).random((3, *SIZE)), image),
        "overview": figures.overview_figure(rgb, maps, 0.835, "water flea"),
        "init-vs-final": figures.abscam_init_vs_final_figure(rgb, maps["abscam-init-layer1"], maps["abscam-final-layer1"], "layer1"),
        "layers": figures.abscam_layers_figure(rgb, {"layer1": maps["random"], "layer2": maps["centre"]}, {"layer2": maps["random"]}),
        "curves": figures.curves_figure(pairs["random"][0][0], pairs["random"][1][0], "daphnia/img 0.png", "random"),
        "mean-curves": figures.mean_curves_figure(pairs, "rise-gaussian"),
        "mean-curves-percentile": figures.mean_curves_figure(pairs, "rise-gaussian", band="percentile"),
        "summary": figures.summary_figure(pd.read_csv(root / "summary_ci.csv")),
    }
    for name, figure in built.items():
        assert isinstance(figure, Figure)
        assert figures.figure_problems(figure) == [], name
        colorbars = [ax for ax in figure.axes if getattr(ax, "_colorbar", None) is not None]
        if name not in ("curves", "mean-curves", "mean-curves-percentile", "summary"):
            assert colorbars, f"{name} has no colorbar"


def test_the_sanity_figure_of_a_run_with_long_method_ids_is_legible():
    """A user's run (abscam-final-layer4 ... in the legend): the legend narrows both panels, and two
    x labels, one per panel, then ran into each other; figure_problems flags text that touches."""
    blocks = ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
    rng = np.random.default_rng(3)
    table = pd.DataFrame([{"method_id": method_id, "step": step, "randomised": "+".join(blocks[:step]),
                           "spearman": rng.uniform(-1, 1), "ssim": rng.uniform(-1, 1), "n_images": 2}
                          for method_id in ("abscam-final-layer4", "abscam-init-layer4", "rise-binary")
                          for step in range(1, len(blocks) + 1)])
    figure = figures.sanity_figure(table)
    assert figures.figure_problems(figure) == []
    assert [label.get_text() for label in figure.texts] == ["randomised down to block (cascading from the output)"]


def test_figure_problems_catches_unlabelled_and_tiny_text():
    figure = figures.style.new_figure(4, 3)
    ax = figure.subplots()
    shown = ax.imshow(np.zeros((4, 4)))
    figure.colorbar(shown, ax=ax)
    ax.text(0, 0, "tiny", fontsize=5)
    problems = figures.figure_problems(figure)
    assert any("colorbar" in p for p in problems)
    assert any("neither a title" in p for p in problems)
    assert any("tiny" in p for p in problems)


def test_figure_problems_catches_overlapping_titles():
    figure = Figure(figsize=(2, 2))  # no constrained layout: long titles collide
    left, right = figure.subplots(1, 2)
    left.set_title("a long title that runs into its neighbour")
    right.set_title("another long title over there")
    assert any("overlaps" in p for p in figures.figure_problems(figure))


def test_masked_image_is_the_normalised_image_times_the_mask(stage_outputs):
    image, _, _ = _rgb_and_maps(stage_outputs)
    masks = np.zeros((2, *SIZE), np.float32)
    masks[1, :, : SIZE[1] // 2] = 1.0  # keep the left half
    figure = figures.masks_figure(masks, image)
    panels = {ax.get_title(): ax for ax in figure.axes}
    blank = panels["Masked image #1"].get_images()[0].get_array()
    np.testing.assert_allclose(blank, np.broadcast_to(figures.IMAGENET_MEAN, (*SIZE, 3)), atol=1e-6)  # 0 -> the mean colour
    half = np.asarray(panels["Masked image #2"].get_images()[0].get_array())
    np.testing.assert_allclose(half[:, : SIZE[1] // 2], figures.unnormalise(image)[:, : SIZE[1] // 2], atol=1e-6)


def test_overview_title_and_panel_order(stage_outputs):
    _, rgb, maps = _rgb_and_maps(stage_outputs)
    figure = figures.overview_figure(rgb, maps, 0.835, "water flea")
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible() and ax.get_title()]
    assert titles[0] == "83.5% water flea"
    assert titles[1:] == ["rise-binary-p0.5", "rise-gaussian", "abscam-init-layer1", "abscam-init-layer2",
                          "abscam-final-layer1", "abscam-final-layer2", "random", "centre"]


def test_overview_class_name_is_the_explained_class_not_the_label(stage_outputs, tmp_path):
    root, records = stage_outputs
    path = tmp_path / "one.h5"
    # image 0 is labelled daphnia (0) but the model's top-1 class is 1: the title must say "water flea"
    write_saliency(path, np.random.default_rng(3).random((1, *SIZE)), [records[0].image_id], np.array([1]), np.array([0.25]),
                   method_id="random", method="random", variant="")
    written = figures.write_saliency_figures([path], records, tmp_path / "out", kinds=["overview"])
    assert [p.name for p in written] == ["overview-daphnia__img_0.png"]
    maps, top1, _ = figures.writers._collect_maps([path], records, 8)
    assert figures.class_name_lookup(records)(top1[records[0].image_id][0]) == "water flea"
    assert figures.class_name_lookup(records, ["cat", "dog"])(1) == "dog"
    assert figures.class_name_lookup(records)(7) == "class 7"


def test_init_vs_final_difference_is_centred_at_zero(stage_outputs):
    _, rgb, _ = _rgb_and_maps(stage_outputs)
    init = np.linspace(0, 1, SIZE[0] * SIZE[1]).reshape(SIZE)
    final = 5.0 * np.sqrt(init) + 3.0  # all differences >= 0; different scale: both are scaled to [0, 1] before subtracting
    figure = figures.abscam_init_vs_final_figure(rgb, init, final, "layer3")
    panel = next(ax for ax in figure.axes if ax.get_title() == "Final \u2212 Init")
    shown = panel.get_images()[0]
    low, high = shown.get_clim()
    assert low == pytest.approx(-high)
    np.testing.assert_allclose(shown.get_array(), figures.minmax(final) - figures.minmax(init), atol=1e-6)


def test_curves_legend_shows_auc_and_end_points():
    deletion = np.array([0.9, 0.5, 0.3, 0.2, 0.1])
    insertion = np.array([0.15, 0.4, 0.6, 0.8, 0.9])
    figure = figures.curves_figure(deletion, insertion, "a/b.png", "rise-gaussian")
    texts = [t.get_text() for ax in figure.axes for t in ax.get_legend().get_texts()]
    assert f"Deletion (AUC {np.trapezoid(deletion, dx=0.25):.3f})" in texts  # trapezoid rule, x in [0, 1]
    assert f"Insertion (AUC {np.trapezoid(insertion, dx=0.25):.3f})" in texts
    assert "fully deleted: p = 0.100" in texts and "first image: p = 0.150" in texts  # files that do not say
    named = figures.curves_figure(deletion, insertion, "a/b.png", "rise-gaussian", {"deletion": "blur", "insertion": "zeros"})
    texts = [t.get_text() for ax in named.axes for t in ax.get_legend().get_texts()]
    assert "fully deleted (the blurred image): p = 0.100" in texts and "first image (the mean colour): p = 0.150" in texts


def test_curves_files_say_their_substrates_and_shards_must_agree(tmp_path):
    """The curve figures once called insertion's first point "fully blurred" whatever the substrate."""
    from saliency_bench.formats.curves import read_curve_files, write_curves

    paths = []
    for shard, deletion_substrate in enumerate(("mean", "mean", "zeros")):
        paths.append(tmp_path / f"shard-{shard}.curves.h5")
        write_curves(paths[-1], [f"img{shard}"], np.ones((1, 3)), np.ones((1, 3)), method_id="rise-perlin", step=8,
                     deletion_substrate=deletion_substrate, insertion_substrate="uniform noise")
    assert read_curve_files(paths[:2])["rise-perlin"].substrates == {"deletion": "mean", "insertion": "uniform noise"}
    with pytest.raises(UserError, match="curves of rise-perlin were measured with different substrates"):
        read_curve_files(paths)


def test_mean_curves_draw_the_chance_baselines():
    rng = np.random.default_rng(4)
    curves = {m: (rng.random((5, 9)), rng.random((5, 9))) for m in ("rise-perlin", "random", "centre")}
    figure = figures.mean_curves_figure(curves, "rise-perlin")
    figure.canvas.draw()  # the legends sit below the panels: inside, they covered the baselines' curves
    assert not any(ax.get_legend().get_window_extent().overlaps(other.get_window_extent())
                   for ax in figure.axes for other in figure.axes)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert any(label.startswith("random (AUC") for label in labels) and any(label.startswith("centre (AUC") for label in labels)
    mean = curves["rise-perlin"][0].mean(0)
    np.testing.assert_allclose(figure.axes[0].get_lines()[0].get_ydata(), mean)


def test_summary_is_sorted_by_score_with_error_bars(stage_outputs):
    root, _ = stage_outputs
    table = pd.read_csv(root / "summary_ci.csv")
    figure = figures.summary_figure(table)
    ax = figure.axes[0]
    shown = [t.get_text() for t in ax.get_yticklabels()][::-1]  # top to bottom
    assert shown == table.sort_values("score", ascending=False)["method_id"].tolist()
    assert [a.get_title() for a in figure.axes] == [label for _, label in figures.SUMMARY_METRICS]
    bars = [c for a in figure.axes for c in a.containers if isinstance(c, BarContainer)]
    assert len(bars) == 3 and all(c.errorbar is not None for c in bars)
    score_bars = [bar.get_width() for bar in bars[2]][::-1]  # top to bottom
    np.testing.assert_allclose(score_bars, table.sort_values("score", ascending=False)["score"])
    no_ci = figures.summary_figure(pd.read_csv(root / "summary.csv"))
    assert all(c.errorbar is None for a in no_ci.axes for c in a.containers if isinstance(c, BarContainer))


def test_summary_floor_lines_are_named_below_the_panels_not_over_a_bar(stage_outputs):
    root, _ = stage_outputs
    table = pd.read_csv(root / "summary_ci.csv")
    unnamed = figures.summary_figure(table)  # a table that does not say its substrates
    assert [t.get_text() for t in unnamed.legends[0].get_texts()] == ["mean p(class), fully deleted image",
                                                                      "mean p(class), insertion's first image"]
    table["deletion_substrate"], table["insertion_substrate"] = "uniform noise", "blur"
    figure = figures.summary_figure(table)
    figure.canvas.draw()
    assert [ax.get_legend() for ax in figure.axes] == [None] * 3
    [legend] = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["mean p(class), fully deleted image (uniform noise)",
                                                          "mean p(class), insertion's first image (the blurred image)"]
    below = legend.get_window_extent()
    assert not any(below.overlaps(ax.get_window_extent()) for ax in figure.axes)
    assert below.x0 >= 0 and below.x1 <= figure.bbox.width  # the longer names still fit the figure
    without = pd.read_csv(root / "summary_ci.csv").drop(columns=["deleted_prob", "blurred_prob"])
    assert figures.summary_figure(without).legends == []


# The demo's and the study's figures at their largest: 14 configurations + 2 chance rows, 4 layers, 8 masks.
DEMO_METHODS = ([f"rise-binary-p0.{p}" for p in (1, 3, 5, 7)] + ["rise-gaussian", "rise-perlin"]
                + [f"abscam-{v}-layer{k}" for v in ("init", "final") for k in range(1, 5)] + ["random", "centre"])


def test_every_figure_fits_a_1280x720_window(tmp_path):
    """The report shows a PNG at its pixel size, centred: a taller one loses its top (title) in the window."""
    rng = np.random.default_rng(5)
    rgb, maps = rng.random((112, 112, 3)), {m: rng.random((112, 112)) for m in DEMO_METHODS}
    table = pd.DataFrame({"method_id": DEMO_METHODS, "deletion_auc": rng.random(len(DEMO_METHODS)),
                          "insertion_auc": rng.random(len(DEMO_METHODS))})
    table["score"] = table["insertion_auc"] - table["deletion_auc"]
    layers = {f"layer{k}": maps[f"abscam-init-layer{k}"] for k in range(1, 5)}
    curves = {m: (rng.random((4, 15)), rng.random((4, 15))) for m in DEMO_METHODS}
    built = {"overview": figures.overview_figure(rgb, maps, 1.0, "eggs"), "summary": figures.summary_figure(table),
             "masks": figures.masks_figure(rng.random((8, 112, 112)), rng.random((3, 112, 112)), title="binary masks"),
             "layers": figures.abscam_layers_figure(rgb, layers, layers),
             "init-vs-final": figures.abscam_init_vs_final_figure(rgb, maps["abscam-init-layer1"], maps["abscam-final-layer1"], "layer1"),
             "curves": figures.curves_figure(curves["random"][0][0], curves["random"][1][0], "a.png", "random"),
             "mean-curves": figures.mean_curves_figure(curves, "rise-perlin")}
    for name, figure in built.items():
        assert figures.figure_problems(figure) == [], name
        with Image.open(figures.save_figure(figure, tmp_path / f"{name}.png")) as image:
            assert image.height <= figures.MAX_HEIGHT_PX <= 650, (name, image.size)
            assert image.width <= 1400, (name, image.size)


def test_file_stem_is_safe_and_collisions_are_refused():
    assert figures.file_stem("class_a/img 01.png") == "class_a__img_01"
    assert figures.file_stem("n01440764/ILSVRC2012_val_00000293.JPEG") == "n01440764__ILSVRC2012_val_00000293"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", figures.file_stem("ä/ö?*:|<>.tif"))
    with pytest.raises(UserError, match="same figure file name"):
        figures.unique_stems(["a/b.png", "a/b.jpg"])


def test_mask_figures_read_only_the_first_masks(stage_outputs):
    root, _ = stage_outputs
    mask_set = MaskSet(root / "rise-binary-p0.5.h5")
    masks, attrs = mask_set.first(3), mask_set.attrs
    with h5py.File(root / "rise-binary-p0.5.h5") as handle:
        np.testing.assert_array_equal(masks, handle["masks"][:3].astype(np.float32))
    assert masks.dtype == np.float32 and attrs["kind"] == "binary"
    assert figures.mask_title("rise-binary-p0.5", attrs) == "binary masks \u2014 rise-binary-p0.5 (p=0.5, s=8, n=10)"


# ---- report captions ---------------------------------------------------------------------
CAPTIONS = ("masks", "overview", "abscam_init_vs_final", "abscam_layers", "curves", "mean_curves", "summary_chart",
            "per_image", "summary_table")


@pytest.mark.parametrize("name", CAPTIONS)
def test_caption_is_valid_short_rst(name):
    docutils_core = pytest.importorskip("docutils.core")
    text = (Path(__file__).parents[1] / "workflow" / "report" / f"{name}.rst").read_text()
    sentences = len(re.findall(r"[.!?](?:\s|$)", re.sub(r"``[^`]*``|e\.g\.|i\.e\.", "x", text)))
    assert 2 <= sentences <= 5, f"{name}.rst has {sentences} sentences"
    warnings = []
    docutils_core.publish_doctree(text, settings_overrides={"report_level": 2, "halt_level": 5,
                                                            "warning_stream": _Collect(warnings)})
    assert warnings == [], warnings


class _Collect:
    def __init__(self, sink):
        self.sink = sink

    def write(self, message):
        if message.strip():
            self.sink.append(message)


def test_saliency_file_without_maps_is_user_error(stage_outputs, tmp_path):
    root, records = stage_outputs
    path = tmp_path / "no-maps.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("image_id", data=np.array([records[0].image_id], dtype=object), dtype=h5py.string_dtype("utf-8"))
        handle.attrs["method_id"] = "random"
    with pytest.raises(UserError, match="no-maps.h5 is not a saliency file"):
        figures.write_saliency_figures([path], records, tmp_path / "out")
    assert not (tmp_path / "out").exists()
