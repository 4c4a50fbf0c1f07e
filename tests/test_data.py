"""Images: discovery in ImageFolder order, the study's split, every image mode as RGB, preprocessing."""
from __future__ import annotations

import csv
import itertools
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, features
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import pil_loader

from saliency_bench import UserError, cli
from saliency_bench.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    discover_images,
    load_images,
    open_rgb,
    preprocess,
    records_from_file_list,
    records_from_list,
    select_images,
    select_split,
    selected_count,
)
from saliency_bench.formats.image_table import read_image_table, write_image_table


def unnormalise(tensor: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    return tensor * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)


def save_png(path: Path, colour=(10, 20, 30), size=(6, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


# A tree that exercises torchvision's ordering rules: case-sensitive class order, a hidden
# class folder, nested folders, upper-case extensions, numeric names sorted as strings,
# and files ImageFolder ignores.
TREE = {
    "b_cls": ["img10.png", "img2.png", "img1.PNG", "sub/z.bmp", "sub/deeper/a.tif", "notes.txt"],
    "A_cls": ["x.jpeg", "y.JPG", "w.webp", "v.ppm", "u.pgm", "t.tiff"],
    ".hidden": ["h1.png", "h2.png"],
    "c": [f"{i:03d}.png" for i in range(11)] + ["readme.md", "c.gif"],
    "d-e": ["q.png"],
}


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for class_name, files in TREE.items():
        for index, name in enumerate(files):
            path = root / class_name / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith((".txt", ".md")):
                path.write_text("not an image")
            else:
                fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".pgm": "PPM", ".ppm": "PPM", ".gif": "GIF"}.get(Path(name).suffix.lower())
                mode = "L" if name.endswith(".pgm") else "RGB"
                Image.new(mode, (5 + index % 3, 4), 40 * (index % 6)).save(path, format=fmt)
    (root / "stray_file_at_root.png").parent.mkdir(parents=True, exist_ok=True)
    save_png(root / "stray_file_at_root.png")
    return root


def test_discovery_matches_torchvision_imagefolder(image_tree: Path):
    records, classes = discover_images(str(image_tree))
    reference = ImageFolder(str(image_tree))
    assert classes == reference.classes
    assert [(r.path, r.label) for r in records] == reference.samples
    assert [r.class_name for r in records] == [reference.classes[label] for _, label in reference.samples]
    assert [r.image_id for r in records] == [Path(p).relative_to(image_tree).as_posix() for p, _ in reference.samples]
    assert "b_cls/sub/deeper/a.tif" in {r.image_id for r in records}
    assert discover_images(image_tree)[0] == records  # a Path root gives the same, stable ids


@pytest.mark.parametrize("fraction, seed", [(0.2, 42), (0.3, 7), (0.5, 0)])
def test_split_reproduces_random_split_on_imagefolder(image_tree: Path, fraction: float, seed: int):
    records, _ = discover_images(image_tree)
    dataset = ImageFolder(str(image_tree))
    n = len(dataset)
    n_val = int(fraction * n)
    train, val = torch.utils.data.random_split(dataset, [n - n_val, n_val], generator=torch.Generator().manual_seed(seed))
    assert select_split(n, "val", fraction, seed) == val.indices
    assert select_split(n, "train", fraction, seed) == train.indices
    assert [records[i].path for i in select_split(n, "val", fraction, seed)] == [dataset.samples[i][0] for i in val.indices]
    assert select_split(n, "all", fraction, seed) == list(range(n))


def test_split_rejects_bad_arguments():
    with pytest.raises(UserError, match="unknown split"):
        select_split(10, "test")
    with pytest.raises(UserError, match="fraction"):
        select_split(10, "val", 1.0)
    with pytest.raises(UserError, match="validation split of 4 images is empty"):
        select_split(4, "val", 0.2)


def read_table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_images_command_writes_the_split_in_order(image_tree: Path, tmp_path: Path):
    out = tmp_path / "results" / "images.csv"
    assert cli.main(["images", "--root", str(image_tree), "--images-per-job", "2", "--out", str(out)]) == 0
    dataset = ImageFolder(str(image_tree))
    n = len(dataset)
    _, val = torch.utils.data.random_split(dataset, [n - int(0.2 * n), int(0.2 * n)], generator=torch.Generator().manual_seed(42))
    rows = read_table(out)
    assert list(rows[0]) == ["image_id", "path", "label", "class_name", "shard"]
    assert [row["path"] for row in rows] == [dataset.samples[i][0] for i in val.indices]
    assert [int(row["label"]) for row in rows] == [dataset.samples[i][1] for i in val.indices]
    assert [int(row["shard"]) for row in rows] == [i // 2 for i in range(len(rows))]
    assert read_image_table(out, shard=1) == read_image_table(out)[2:4]

    cli.main(["images", "--root", str(image_tree), "--split", "all", "--limit", "5", "--out", str(out)])
    assert [row["path"] for row in read_table(out)] == [path for path, _ in dataset.samples[:5]]
    cli.main(["images", "--root", str(image_tree), "--val-fraction", "0.5", "--split-seed", "3", "--limit", "2", "--out", str(out)])
    expected = select_split(n, "val", 0.5, 3)[:2]
    assert [row["path"] for row in read_table(out)] == [dataset.samples[i][0] for i in expected]


def test_the_runs_images_are_the_first_rows_of_the_split_table_in_their_shards(image_tree: Path, tmp_path: Path, capsys):
    """The workflow's image_table job: the split's table cut to data.limit equals the images command with
    that limit, so a shard's first rows (`--rows`) are the run's images of that shard."""
    split, cut, direct = (tmp_path / name for name in ("split.csv", "cut.csv", "direct.csv"))
    common = ["--split", "all", "--images-per-job", "2"]
    assert cli.main(["images", "--root", str(image_tree), *common, "--out", str(split)]) == 0
    assert cli.main(["images", "--table", str(split), "--limit", "5", "--images-per-job", "2", "--out", str(cut)]) == 0
    assert cli.main(["images", "--root", str(image_tree), *common, "--limit", "5", "--out", str(direct)]) == 0
    assert cut.read_bytes() == direct.read_bytes()
    assert read_image_table(split, shard=2, rows=1) == read_image_table(cut, shard=2)
    with pytest.raises(UserError, match="has 2 images, not 3"):
        read_image_table(split, shard=2, rows=3)
    for arguments, problem in ((["--images-per-job", "3"], "are not of 3 images"),
                               (["--per-class-limit", "1"], "--per-class-limit applies to --root")):
        assert cli.main(["images", "--table", str(split), *arguments, "--out", str(tmp_path / "bad.csv")]) != 0
        assert problem in capsys.readouterr().err and not (tmp_path / "bad.csv").exists()


def test_images_command_with_a_file_list(tmp_path: Path):
    root = tmp_path / "pics"
    files = [save_png(root / "b" / "2.png"), save_png(root / "a" / "1.png"), save_png(root / "a" / "deep" / "3.png")]
    listing = tmp_path / "list.txt"
    listing.write_text("# my images\n" + "\n".join(map(str, files)) + "\n\n")
    out = tmp_path / "images.csv"
    assert cli.main(["images", "--file-list", str(listing), "--split", "all", "--out", str(out)]) == 0
    assert [row["image_id"] for row in read_table(out)] == ["b/2.png", "a/1.png", "a/deep/3.png"]
    cli.main(["images", "--file-list", str(listing), "--list-root", str(tmp_path), "--split", "all", "--out", str(out)])
    assert [row["image_id"] for row in read_table(out)] == ["pics/b/2.png", "pics/a/1.png", "pics/a/deep/3.png"]


def test_a_file_lists_relative_paths_are_read_from_list_root_or_its_own_folder(tmp_path: Path, monkeypatch):
    """Never from the working directory: a job under `snakemake --directory` or on a cluster runs
    elsewhere than where the list was written."""
    root = tmp_path / "pics"
    for name in ("b/2.png", "a/1.png"):
        save_png(root / name)
    listing = root / "val list.txt"
    listing.write_text("b/2.png\na/1.png\n")
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = tmp_path / "images.csv"
    assert cli.main(["images", "--file-list", str(listing), "--split", "all", "--out", str(out)]) == 0
    assert [(row["image_id"], row["path"]) for row in read_table(out)] == [
        ("b/2.png", str(root / "b" / "2.png")), ("a/1.png", str(root / "a" / "1.png"))]
    lists = tmp_path / "lists"  # a list kept apart from the images names them from list_root
    lists.mkdir()
    (lists / "val.txt").write_text(listing.read_text())
    assert [r.path for r in records_from_file_list(lists / "val.txt", root)] == [str(root / "b" / "2.png"), str(root / "a" / "1.png")]
    with pytest.raises(UserError, match="fix its line in the file list"):
        records_from_file_list(lists / "val.txt")
    # as a Windows editor saves it: a byte-order mark and CRLF line ends
    (lists / "windows.txt").write_bytes(b"\xef\xbb\xbfb/2.png\r\na/1.png\r\n")
    assert [r.image_id for r in records_from_file_list(lists / "windows.txt", root)] == ["b/2.png", "a/1.png"]


def test_file_list_errors(tmp_path: Path):
    image = save_png(tmp_path / "a" / "1.png")
    with pytest.raises(UserError, match="more than once"):
        records_from_list([image, tmp_path / "a" / ".." / "a" / "1.png"])
    with pytest.raises(UserError, match="not under the data root"):
        records_from_list([image], root=tmp_path / "elsewhere")
    with pytest.raises(UserError, match="image not found"):
        records_from_list([tmp_path / "missing.png"])


def test_image_table_round_trip(tmp_path: Path):
    records = records_from_list([save_png(tmp_path / f"{i}.png") for i in range(5)])
    write_image_table(tmp_path / "t.csv", records, images_per_job=2)
    assert read_image_table(tmp_path / "t.csv") == records
    assert read_image_table(tmp_path / "t.csv", shard=2) == records[4:]
    with pytest.raises(UserError, match="shard 3"):
        read_image_table(tmp_path / "t.csv", shard=3)


# ---- every image mode becomes RGB ------------------------------------------------------
def palette_image(transparent: bool) -> Image.Image:
    image = Image.new("P", (6, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((0, 0), 1)
    if transparent:
        image.info["transparency"] = 0
    return image


def split_image(mode: str, left, right, size=(6, 4)) -> Image.Image:
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


# name, file name, how to write it, expected RGB at (row 0, col 0) and (row 0, last col), tolerance
MODES = [
    ("L", "grey.png", lambda p: Image.new("L", (6, 4), 128).save(p), (128, 128, 128), (128, 128, 128), 0),
    ("1", "bits.png", lambda p: split_image("1", 0, 1).save(p), (0, 0, 0), (255, 255, 255), 0),
    ("P", "palette.png", lambda p: palette_image(False).save(p), (0, 0, 255), (255, 0, 0), 0),
    ("P+transparency", "palette_t.png", lambda p: palette_image(True).save(p), (0, 0, 255), (255, 0, 0), 0),
    ("RGBA", "rgba.png", lambda p: split_image("RGBA", (200, 100, 50, 0), (1, 2, 3, 255)).save(p), (200, 100, 50), (1, 2, 3), 0),
    ("LA", "la.png", lambda p: split_image("LA", (77, 0), (5, 255)).save(p), (77, 77, 77), (5, 5, 5), 0),
    ("I;16 PNG", "deep.png", lambda p: Image.fromarray(np.array([[32768, 0, 65535]] * 4, np.uint16).repeat(2, 1)).save(p),
     (128, 128, 128), (255, 255, 255), 0),
    ("I;16 TIFF", "deep.tif", lambda p: Image.fromarray(np.full((4, 6), 16384, np.uint16)).save(p), (64, 64, 64), (64, 64, 64), 0),
    ("F TIFF", "float.tif", lambda p: Image.fromarray(np.full((4, 6), 0.25, np.float32)).save(p), (64, 64, 64), (64, 64, 64), 0),
    ("CMYK JPEG", "cmyk.jpg", lambda p: split_image("CMYK", (0, 255, 255, 0), (0, 0, 0, 0), (16, 8)).save(p, quality=100),
     (255, 0, 0), (255, 255, 255), 8),
    ("RGB JPEG", "rgb.jpg", lambda p: split_image("RGB", (0, 128, 255), (255, 255, 0), (16, 8)).save(p, quality=100),
     (0, 128, 255), (255, 255, 0), 8),
    ("RGB TIFF", "rgb.tiff", lambda p: split_image("RGB", (1, 2, 3), (250, 251, 252)).save(p), (1, 2, 3), (250, 251, 252), 0),
    ("RGB BMP", "rgb.bmp", lambda p: split_image("RGB", (9, 99, 199), (0, 0, 0)).save(p), (9, 99, 199), (0, 0, 0), 0),
    ("L PGM", "grey.pgm", lambda p: Image.new("L", (6, 4), 200).save(p), (200, 200, 200), (200, 200, 200), 0),
    ("RGB WEBP", "rgb.webp", lambda p: split_image("RGB", (10, 200, 30), (90, 80, 70)).save(p, lossless=True),
     (10, 200, 30), (90, 80, 70), 0),
]


@pytest.mark.parametrize("name, filename, write, first, last, tolerance", MODES, ids=[m[0] for m in MODES])
def test_every_image_mode_loads_as_rgb(tmp_path: Path, name, filename, write, first, last, tolerance):
    if filename.endswith(".webp") and not features.check("webp"):
        pytest.skip("this PIL has no WEBP support")
    path = tmp_path / filename
    write(path)
    with Image.open(path) as written:  # the file really is in the mode under test
        expected_mode = name.split()[0].split("+")[0]
        assert written.mode == expected_mode
    width, height = Image.open(path).size
    tensor = load_images([path], size=(height, width))[0]
    assert tensor.shape == (3, height, width) and tensor.dtype == torch.float32
    rgb = unnormalise(tensor)
    assert rgb.min() >= -1e-6 and rgb.max() <= 1 + 1e-6
    pixels = (rgb * 255).round()
    assert torch.allclose(pixels[:, 0, 0], torch.tensor(first, dtype=torch.float32), atol=tolerance)
    assert torch.allclose(pixels[:, 0, -1], torch.tensor(last, dtype=torch.float32), atol=tolerance)
    if name in ("L", "L PGM", "1", "LA", "I;16 PNG", "F TIFF"):
        assert torch.equal(pixels[0], pixels[1]) and torch.equal(pixels[1], pixels[2])


@pytest.mark.parametrize("name, filename, write", [m[:3] for m in MODES if not m[0].startswith(("I;16", "F"))],
                         ids=[m[0] for m in MODES if not m[0].startswith(("I;16", "F"))])
def test_8bit_images_load_like_torchvision_imagefolder(tmp_path: Path, name, filename, write):
    """The pixels the model saw in training (ImageFolder's pil_loader), alpha dropped, not composited."""
    if filename.endswith(".webp") and not features.check("webp"):
        pytest.skip("this PIL has no WEBP support")
    write(tmp_path / filename)
    assert np.array_equal(np.asarray(open_rgb(tmp_path / filename)), np.asarray(pil_loader(tmp_path / filename)))


# ---- unreadable images -------------------------------------------------------------------
def test_corrupt_truncated_and_missing_images_name_their_path(tmp_path: Path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG not really" + bytes(range(256)))
    truncated = tmp_path / "truncated.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:400])
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "nowhere.png")
    for path in (garbage, truncated, dangling):
        with pytest.raises(UserError, match="cannot read image") as caught:
            open_rgb(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def corrupt_files(folder: Path) -> list[Path]:
    """Real bad files: a truncated PNG, a truncated JPEG, a text file named .png, an empty file."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    png, jpeg = folder / "cut.png", folder / "cut.jpg"
    Image.fromarray(pixels).save(png)
    png.write_bytes(png.read_bytes()[:300])
    Image.fromarray(pixels).save(jpeg)
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    text, empty = folder / "notes.png", folder / "empty.png"
    text.write_text("this is not an image\n")
    empty.write_bytes(b"")
    return [png, jpeg, text, empty]


def test_images_command_names_every_bad_image_at_once(image_tree: Path, tmp_path: Path, capsys):
    bad = corrupt_files(image_tree / "c")
    out = tmp_path / "images.csv"
    assert cli.main(["images", "--root", str(image_tree), "--split", "all", "--out", str(out)]) != 0
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "replace or remove" in message
    assert [path for path in bad if str(path) not in message] == []
    assert f"{len(bad)} of " in message
    assert not out.exists()  # no table: no later step can start
    for path in bad:
        path.unlink()
    assert cli.main(["images", "--root", str(image_tree), "--split", "all", "--out", str(out)]) == 0


def test_only_the_selected_images_are_decoded(image_tree: Path, tmp_path: Path):
    """A bad file outside the split or the limit does not stop a run that never reads it."""
    corrupt_files(image_tree / "zz")
    out = tmp_path / "images.csv"
    assert cli.main(["images", "--root", str(image_tree), "--split", "all", "--limit", "3", "--out", str(out)]) == 0


def test_per_class_limit_takes_the_first_of_each_class_in_split_order(image_tree: Path, tmp_path: Path):
    records, _ = discover_images(image_tree)
    labels = [r.label for r in records]
    split = select_split(len(records), "val", 0.5, 1)
    expected, seen = [], {}
    for index in split:
        seen[labels[index]] = seen.get(labels[index], 0) + 1
        if seen[labels[index]] <= 2:
            expected.append(index)
    assert select_images(labels, "val", 0.5, 1, per_class_limit=2) == expected
    assert select_images(labels, "val", 0.5, 1, limit=3, per_class_limit=2) == expected[:3]
    assert max(Counter(labels[i] for i in expected).values()) == 2
    out = tmp_path / "images.csv"
    assert cli.main(["images", "--root", str(image_tree), "--val-fraction", "0.5", "--split-seed", "1",
                     "--per-class-limit", "2", "--out", str(out)]) == 0
    assert [row["path"] for row in read_table(out)] == [records[i].path for i in expected]
    with pytest.raises(UserError, match="per-class limit needs"):
        select_images([-1, -1, -1], "all", per_class_limit=1)


@pytest.mark.filterwarnings("ignore:Length of split")  # torch on an empty validation part of a "train" split
@pytest.mark.parametrize("n", [1, 4, 5, 7, 51, 256])
def test_the_count_without_the_permutation_is_the_selections_length(n: int):
    """selected_count does the arithmetic where no per-class limit needs the permutation: the same number
    as select_images, and the same one-line error where there is none."""
    labels = [index % 3 for index in range(n)]
    for split, fraction, limit, per_class in itertools.product(("val", "train", "all", "test"), (0.2, 0.5, 0.9, 1.0),
                                                                 (None, 1, 3, 100), (None, 1, 2)):
        arguments = (labels, split, fraction, 42, limit, per_class)
        try:
            expected = len(select_images(*arguments))
        except UserError as error:
            with pytest.raises(UserError, match=re.escape(str(error))):
                selected_count(*arguments)
        else:
            assert selected_count(*arguments) == expected, arguments


def test_the_workflow_counts_the_images_the_images_step_writes(image_tree: Path, tmp_path: Path):
    """Shards are fixed when the workflow is parsed; the count must match the table, per-class limit included."""
    from saliency_bench import workflow_config as wc
    from workflow_helpers import typed_config

    out = tmp_path / "images.csv"
    for limit, per_class in ((None, None), (None, 1), (2, 1), (None, 3)):
        data = {"root": str(image_tree), "split": "val", "val_fraction": 0.5, "split_seed": 7,
                "limit": limit, "per_class_limit": per_class}
        config = typed_config({"data": data, "model": {"checkpoint": "m.pt"}, "images_per_job": 2})
        args = ["--limit", str(limit)] * bool(limit) + ["--per-class-limit", str(per_class)] * bool(per_class)
        assert cli.main(["images", "--root", str(image_tree), "--val-fraction", "0.5", "--split-seed", "7",
                         *args, "--out", str(out)]) == 0
        assert wc.selected_image_count(config) == len(read_table(out))


def test_class_names_that_name_the_folders_set_labels_as_the_model_counts_them(tmp_path: Path):
    """The checkpoint's order need not be the folders' sorted one, and a folder may lack a class: with
    data.class_names naming the folders, a label is the model's class index (comparable with
    `target`); names that match no folder only rename, in folder order."""
    for name in ("ant", "cat", "bee/nested"):
        save_png(tmp_path / "data" / name / "x.png")
    root = tmp_path / "data"

    def labels(names):
        return {record.class_name: record.label for record in discover_images(root, names)[0]}

    assert labels(None) == {"ant": 0, "bee": 1, "cat": 2}
    assert labels(["cat", "ant", "bee"]) == {"cat": 0, "ant": 1, "bee": 2}
    assert labels(["dog", "bee", "ant", "cat"]) == {"bee": 1, "ant": 2, "cat": 3}  # no dog folder here
    assert labels(["Ant", "Bee", "Cat"]) == {"ant": 0, "bee": 1, "cat": 2}  # display names
    with pytest.raises(UserError, match="names the class folder.s. ant, cat of .* but not bee; list every folder's class"):
        discover_images(root, ["cat", "ant", "Bee"])
    out = tmp_path / "images.csv"
    assert cli.main(["images", "--root", str(root), "--split", "all", "--class-names", "cat", "ant", "bee",
                     "--out", str(out)]) == 0
    assert {row["class_name"]: int(row["label"]) for row in read_table(out)} == {"cat": 0, "ant": 1, "bee": 2}


def test_the_demo_image_count_follows_its_tree(tmp_path: Path):
    """The demo's labels are known before its images exist; they must be those of the generated tree."""
    from saliency_bench import workflow_config as wc
    from saliency_bench.demo import write_demo_data
    from workflow_helpers import typed_config

    write_demo_data(tmp_path / "demo", per_class=6, none=1, size=32, seed=0, workers=1)
    records, _ = discover_images(tmp_path / "demo" / "images")
    config = typed_config({"data": {"per_class_limit": 1, "val_fraction": 0.5}, "demo": {"per_class": 6}})
    assert wc.image_labels(config) == [r.label for r in records]
    assert wc.selected_image_count(config) == 4


# ---- preprocessing -------------------------------------------------------------------------
def test_resize_keeps_all_content_of_a_non_square_image():
    image = Image.new("RGB", (80, 20), (0, 255, 0))
    image.paste((255, 0, 0), (0, 0, 10, 20))  # left edge red
    image.paste((0, 0, 255), (70, 0, 80, 20))  # right edge blue
    rgb = unnormalise(preprocess(image, size=(16, 16)))
    assert rgb.shape == (3, 16, 16)
    assert torch.allclose(rgb[:, :, 0], torch.tensor([1.0, 0, 0]).view(3, 1), atol=1e-5)  # not cropped away
    assert torch.allclose(rgb[:, :, -1], torch.tensor([0, 0, 1.0]).view(3, 1), atol=1e-5)
    reference = np.asarray(image.resize((16, 16), Image.BILINEAR), dtype=np.float32) / 255
    assert np.allclose(rgb.permute(1, 2, 0).numpy(), reference, atol=1e-5)


def test_size_is_height_then_width():
    assert preprocess(Image.new("RGB", (50, 50)), size=(10, 30)).shape == (3, 10, 30)


def test_imagenet_normalisation_by_default_and_configurable():
    image = Image.new("RGB", (4, 4), (51, 102, 204))
    value = torch.tensor([51, 102, 204]) / 255
    expected = (value - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(preprocess(image, (4, 4))[:, 2, 2], expected, atol=1e-6)
    custom = preprocess(image, (4, 4), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    assert torch.allclose(custom[:, 1, 1], (value - 0.5) / torch.tensor([0.25, 0.5, 1.0]), atol=1e-6)
    assert torch.allclose(preprocess(image, (4, 4), mean=(0, 0, 0), std=(1, 1, 1))[:, 0, 0], value, atol=1e-6)


# ---- each image is opened once per process ----------------------------------------------
@pytest.fixture
def count_opens(monkeypatch):
    """Counts PIL.Image.open calls per file; the real open still runs."""
    opened: list[str] = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        opened.append(os.path.basename(getattr(fp, "name", fp)))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    return opened


def test_each_image_is_opened_once(image_tree: Path, tmp_path: Path, count_opens: list[str]):
    out = tmp_path / "images.csv"
    cli.main(["images", "--root", str(image_tree), "--split", "all", "--out", str(out)])
    records = read_image_table(out)
    assert sorted(count_opens) == sorted(Path(r.path).name for r in records)
    count_opens.clear()
    load_images(records[:7], size=(8, 8))
    assert sorted(count_opens) == sorted(Path(r.path).name for r in records[:7])


@pytest.mark.workflow
def test_a_corrupt_image_stops_the_workflow_before_masks_tuning_or_any_model_job(tmp_path: Path):
    from workflow_helpers import make_user_project, make_workdir, snakemake

    config = make_user_project(tmp_path / "user")
    config.update({"memory_format": "auto"})  # so that a tune_forward job exists and could run early
    config["data"]["limit"] = None
    bad = corrupt_files(tmp_path / "user" / "images" / "class1")[:2]
    workdir = make_workdir(tmp_path / "run", config)
    result = snakemake(workdir, "--cores", "2", timeout=300)
    assert result.returncode != 0
    log = (workdir / "logs" / "images.log").read_text()
    assert all(str(path) in log for path in bad) and "replace or remove" in log
    assert not (workdir / "results" / "images.csv").exists()
    ran = {path.stem if path.parent.name == "logs" else path.parent.name for path in (workdir / "logs").rglob("*.log")}
    assert ran == {"images"}  # no masks, tune_forward, plan, explain or evaluate job started


def test_a_split_root_is_named_not_read_as_classes(tmp_path: Path):
    """data/ holding train/ and val/ (each with class folders) listed as two classes named train and
    val; a two-class checkpoint even loaded, so every label and class name was silently wrong."""
    for split in ("train", "Val"):
        for name in ("a/x.png", "b/y.png"):
            save_png(tmp_path / "data" / split / name)
    (tmp_path / "data" / "train" / ".DS_Store").write_text("not an image")
    with pytest.raises(UserError, match=r"holds Val/, train/: the folders of a data set's splits, not classes; "
                                        r"set data.root to one of them \(e.g. .*data/Val, with data.split: all"):
        discover_images(tmp_path / "data")
    assert discover_images(tmp_path / "data" / "Val")[1] == ["a", "b"]
    # classes that happen to bear such names hold their images directly
    for split in ("train", "Val"):
        save_png(tmp_path / "data" / split / "z.png")
    assert discover_images(tmp_path / "data")[1] == ["Val", "train"]
