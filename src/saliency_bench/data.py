"""Images: discovery (ImageFolder tree or explicit list), the study's split, preprocessing.

Every image carries a stable id: its path relative to the data root, with '/' separators.
Ids are what every output file and table uses to name an image.
"""
from __future__ import annotations

import dataclasses
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import UserError, require
from .formats.image_table import ImageRecord
from .formats.json_files import read_text

if TYPE_CHECKING:  # torch is imported only where images become tensors
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The extensions torchvision's ImageFolder accepts; kept identical so that our
# ordering, and hence the random_split indices, match ImageFolder exactly.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Folder names of a data set's splits: a tree of only these, each holding class folders, is a split root.
SPLIT_FOLDER_NAMES = frozenset({"train", "training", "val", "valid", "validation", "test", "testing"})


def discover_images(root: str | os.PathLike, class_names: Sequence[str] | None = None
                    ) -> tuple[list[ImageRecord], list[str]]:
    """List an ImageFolder tree in torchvision's order: classes sorted, files sorted per class.

    A label is the class folder's index in that order, as ImageFolder gives it, unless `class_names`
    (data.class_names: the checkpoint's classes, in its order) names the folders: then it is the
    folder's index there, the model's class index, also where the folders are fewer or sort otherwise.
    """
    root = Path(root)
    require(root.is_dir(), f"data folder not found: {root} (set data.root to a folder with one sub-folder per class)")
    # Hidden folders count as classes too, exactly as in torchvision's find_classes:
    # skipping them would shift every label and change n, hence the split.
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    require(bool(classes), f"data folder {root} has no class sub-folders (expected ImageFolder layout: {root}/<class>/<image>)")
    check_not_a_split_root(root, classes)
    records: list[ImageRecord] = []
    for label, name in enumerate(classes):
        found = []
        for dirpath, _, filenames in sorted(os.walk(root / name, followlinks=True)):
            for filename in sorted(filenames):
                if filename.lower().endswith(IMAGE_EXTENSIONS):
                    found.append(Path(dirpath) / filename)
        require(bool(found), f"class folder {root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder")
        records += [ImageRecord(p.relative_to(root).as_posix(), str(p), label, name) for p in found]
    if class_names:
        records = labelled_as_the_model(records, classes, class_names, root)
    return records, classes


def labelled_as_the_model(records: list[ImageRecord], folders: Sequence[str], class_names: Sequence[str],
                          root: Path) -> list[ImageRecord]:
    """Each image labelled with its folder's index in `class_names`. Names that match no folder are
    display names, given in the folders' order: the labels stay. Some folders named but not all is
    ambiguous."""
    named = [folder for folder in folders if folder in class_names]
    if not named:
        return records
    unnamed = [folder for folder in folders if folder not in class_names]
    require(not unnamed, f"data.class_names names the class folder(s) {', '.join(named[:3])} of {root} but not "
                         f"{', '.join(unnamed[:3])}; list every folder's class, in the checkpoint's order (or only "
                         "display names, in the folders' sorted order)")
    index = {name: position for position, name in enumerate(class_names)}
    return [dataclasses.replace(record, label=index[record.class_name]) for record in records]


def check_not_a_split_root(root: Path, folders: Sequence[str]) -> None:
    """`data/` holding `train/` and `val/`, each with class folders, would list as two classes named
    train and val, which a two-class checkpoint would even load: every label and class name wrong."""
    if not set(name.lower() for name in folders) <= SPLIT_FOLDER_NAMES:
        return
    if any(entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS)
           for name in folders for entry in os.scandir(root / name)):
        return  # images directly in a folder: it is a class that happens to be named so
    pick = next((name for name in folders if name.lower().startswith("val")), folders[0])
    raise UserError(f"data folder {root} holds {', '.join(f'{name}/' for name in folders)}: the folders of a data "
                    f"set's splits, not classes; set data.root to one of them (e.g. {root / pick}, with data.split: all "
                    "to explain every image in it)")


def records_from_list(files: Sequence[str | os.PathLike], root: str | os.PathLike | None = None) -> list[ImageRecord]:
    """Records for an explicit list of files; ids are relative to `root` (default: their common folder)."""
    require(len(files) > 0, "the image list is empty; give at least one image file")
    paths = [Path(f) for f in files]
    for path in paths:
        require(path.is_file(), f"image not found: {path}; fix its line in the file list (a relative line is read "
                                "from data.list_root if set, else from the list file's folder)")
    base = Path(root) if root is not None else Path(os.path.commonpath([p.resolve().parent for p in paths]))
    records = []
    for path in paths:
        try:
            image_id = path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            raise UserError(f"image {path} is not under the data root {base}; set data.root to a folder that contains it") from None
        records.append(ImageRecord(image_id, str(path), -1, ""))
    repeated = sorted(image_id for image_id, count in Counter(r.image_id for r in records).items() if count > 1)
    if repeated:
        raise UserError(f"the image list names {repeated[0]} more than once; list every image once")
    return records


def select_split(n: int, split: str = "val", fraction: float = 0.2, seed: int = 42) -> list[int]:
    """Indices of the images to explain.

    "val" reproduces the study exactly: `random_split(dataset, [n - v, v],
    generator=torch.Generator().manual_seed(seed))` with `v = int(fraction * n)`, and
    returns the validation subset's indices in random_split's order. "train" returns the
    other part, "all" every index in order.
    """
    if split == "all":
        return list(range(n))
    n_val = validation_size(n, split, fraction)
    import torch  # lazily: light commands (aggregate, figures) and the Snakefile's parse start without it

    train, val = torch.utils.data.random_split(range(n), [n - n_val, n_val], generator=torch.Generator().manual_seed(seed))
    return list(val.indices if split == "val" else train.indices)


def validation_size(n: int, split: str, fraction: float) -> int:
    """random_split's validation length `int(fraction * n)`, checked for a "val" or "train" split."""
    require(split in ("val", "train"), f"unknown split {split!r}; use 'val', 'train' or 'all'")
    require(0 < fraction < 1, f"split fraction must lie in (0, 1), got {fraction}")
    n_val = int(fraction * n)
    require(n_val >= 1 or split == "train", f"a {fraction:.0%} validation split of {n} images is empty; use more images, a larger fraction, or split: all")
    return n_val


def selected_count(labels: Sequence[int], split: str, fraction: float, seed: int, limit: int | None,
                   per_class_limit: int | None) -> int:
    """len(select_images(...)) of the same arguments, without the permutation (and torch) where no
    per-class limit needs it: the shard count, in every parse of the Snakefile (each cluster job's too)."""
    if per_class_limit is not None:
        return len(select_images(labels, split, fraction, seed, limit, per_class_limit))
    require(limit is None or limit >= 1, f"the image limit must be at least 1, got {limit}")
    n = len(labels)
    if split == "all":
        size = n
    else:
        n_val = validation_size(n, split, fraction)
        size = n_val if split == "val" else n - n_val
    return size if limit is None else min(size, limit)


def select_images(labels: Sequence[int], split: str = "val", fraction: float = 0.2, seed: int = 42,
                  limit: int | None = None, per_class_limit: int | None = None) -> list[int]:
    """Indices of the images to explain, in split order: the split (`select_split`), then at most
    `per_class_limit` per class (the first of each class, so a balanced set), then at most `limit`.

    One function for the `images` step and the evidence check; `selected_count` is its length (the
    workflow's shard count), so that the two agree.
    """
    require(limit is None or limit >= 1, f"the image limit must be at least 1, got {limit}")
    require(per_class_limit is None or per_class_limit >= 1, f"the per-class limit must be at least 1, got {per_class_limit}")
    chosen = select_split(len(labels), split, fraction, seed)
    if per_class_limit is not None:
        require(all(label >= 0 for label in labels), "a per-class limit needs the images' classes; use data.root "
                "(one sub-folder per class) instead of data.file_list, or drop data.per_class_limit")
        taken: Counter = Counter()
        kept = []
        for index in chosen:
            taken[labels[index]] += 1
            if taken[labels[index]] <= per_class_limit:
                kept.append(index)
        chosen = kept
    return chosen[:limit] if limit is not None else chosen


def check_images(paths: Sequence[str | os.PathLike]) -> None:
    """Decode every image; one UserError naming every file that does not decode to a non-empty image."""
    bad = []
    for path in paths:
        try:
            image = _decode_rgb(path)
            problem = "" if image.width > 0 and image.height > 0 else "it has no pixels"
        except _DECODE_ERRORS as error:
            problem = _describe(error)
        if problem:
            bad.append(f"{path} ({problem})")
    if bad:
        raise UserError(f"{len(bad)} of {len(paths)} images cannot be read: {'; '.join(bad)}; "
                        "replace or remove these files (or leave them out of the file list)")


def _high_depth_to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit integer or float greyscale as 8 bit; PIL's convert("RGB") would clip it to white or black."""
    array = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if array.size and array.min() >= 0 and array.max() <= 1 else 255.0
    elif image.mode.startswith("I;16") or image.format in ("PNG", "PPM") or (array.size and array.max() > 255):
        top = 65535.0  # PNG and PGM have no 32-bit greyscale: their mode I is 16-bit
    else:
        top = 255.0
    return Image.fromarray(np.clip(array / top * 255.0, 0, 255).round().astype(np.uint8), "L")


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Open any image PIL reads as RGB, as torchvision's ImageFolder loader does.

    Like `torchvision.datasets.folder.pil_loader` (`convert("RGB")`): alpha is dropped,
    not composited, so the pixels are those the model saw in training. Only high-depth
    greyscale (16-bit PNG/TIFF, 32-bit, float) differs: it is rescaled to 8 bit instead
    of being clipped to white.
    """
    try:
        return _decode_rgb(path)
    except _DECODE_ERRORS as error:
        raise UserError(f"cannot read image {path}: {_describe(error)}; replace or remove the file") from None


_DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError)


def _describe(error: Exception) -> str:
    return f"{error.__class__.__name__}: {' '.join(str(error).split()) or 'unreadable'}"


def _decode_rgb(path: str | os.PathLike) -> Image.Image:
    with open(path, "rb") as handle, Image.open(handle) as image:
        image.load()
        if image.mode.startswith("I") or image.mode == "F":
            return _high_depth_to_8bit(image).convert("RGB")
        return image.convert("RGB")


def preprocess(image: Image.Image, size: tuple[int, int] = (224, 224), mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Resize to (H, W) without cropping, scale to [0, 1], normalise: a (3, H, W) float32 tensor."""
    from torchvision.transforms import functional as F

    height, width = size
    resized = F.resize(image, [height, width], interpolation=F.InterpolationMode.BILINEAR, antialias=True)
    tensor = F.to_tensor(resized)
    return F.normalize(tensor, list(mean), list(std))


def load_images(records: Iterable[ImageRecord] | Iterable[str], size: tuple[int, int] = (224, 224),
                mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Load and preprocess images into one (B, 3, H, W) tensor."""
    paths = [r.path if isinstance(r, ImageRecord) else str(r) for r in records]
    require(len(paths) > 0, "no images to load")
    import torch

    return torch.stack([preprocess(open_rgb(p), tuple(size), mean, std) for p in paths])


def read_file_list(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[str]:
    """Image paths of a list file: one per line; blank lines and '#' comments skipped. A relative
    path is read from `root` (data.list_root) when given, else from the list file's own folder, not
    from the working directory: that is wherever snakemake runs (or its --directory), which the list's
    author cannot know."""
    fix = "give a text file with one image path per line"
    require(Path(path).is_file(), f"file list not found: {path}; {fix}")
    lines = read_text(path, "file list", fix).splitlines()
    base = Path(root) if root is not None else Path(path).parent
    return [str(base / line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def records_from_file_list(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[ImageRecord]:
    """Records for the images a list file names (see `read_file_list`); ids relative to `root`."""
    return records_from_list(read_file_list(path, root), root)
