"""Readers of the stage outputs and writers of the PNG files with fixed, predictable names."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from ...data import IMAGENET_MEAN, IMAGENET_STD, load_images
from ...errors import require
from ...formats.curves import read_curve_files
from ...formats.image_table import ImageRecord
from ...formats.masks import MaskSet
from ...formats.saliency import read_image_ids, read_rows
from ...formats.tables import read_table
from ...methods import method_sort_key
from ..names import file_stem, unique_stems
from .builders import (abscam_init_vs_final_figure, abscam_layers_figure, curves_figure, masks_figure,
                       mean_curves_figure, natural_key, overview_figure, summary_figure)
from .style import DPI, STYLE, plt, save_figure, unnormalise


# ---- readers ---------------------------------------------------------------------------
def mask_title(mask_id: str, attrs: Mapping) -> str:
    parts = [f"{attrs['kind']} masks" if "kind" in attrs else "masks", mask_id]
    for key in ("p", "s", "n"):
        if key in attrs and attrs[key] is not None and not (isinstance(attrs[key], float) and np.isnan(attrs[key])):
            parts.append(f"{key}={attrs[key]:g}" if isinstance(attrs[key], (float, np.floating)) else f"{key}={attrs[key]}")
    return " \u2014 ".join(parts[:2]) + (" (" + ", ".join(parts[2:]) + ")" if len(parts) > 2 else "")


def class_name_lookup(records: Sequence[ImageRecord], class_names: Sequence[str] | None = None):
    """Class index -> name: an explicit list first, else the image table's (label, class_name) pairs."""
    from_table = {r.label: r.class_name for r in records if r.label >= 0 and r.class_name}

    def name(index: int) -> str:
        if class_names is not None and 0 <= index < len(class_names):
            return class_names[index]
        return from_table.get(int(index), f"class {int(index)}")

    return name


# ---- writers: stage outputs -> PNG files -------------------------------------------------
class _StagedOutputs:
    """Render into a temporary folder next to `out_dir`; move everything into place only on success."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.tmp-", dir=self.out_dir.parent))
        self.names: list[str] = []

    def save(self, figure: Figure, name: str) -> None:
        with plt.rc_context(STYLE):  # ticks are created at draw time: same style as the builders
            figure.savefig(self.staging / name, format="png", dpi=DPI)
        self.names.append(name)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        try:
            if kind is None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                for name in self.names:
                    os.replace(self.staging / name, self.out_dir / name)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)


def _progress(items, description: str):
    return tqdm(items, desc=description, unit="fig", file=sys.stderr, disable=None, leave=False)


def write_mask_figures(mask_paths: Sequence[str | os.PathLike], records: Sequence[ImageRecord], out_dir: str | os.PathLike,
                       *, count: int = 4, size: tuple[int, int] | None = None, mean: Sequence[float] = IMAGENET_MEAN,
                       std: Sequence[float] = IMAGENET_STD, image_index: int = 0) -> list[Path]:
    """Writes `masks-<mask_id>.png` per mask file (mask_id = the file's stem).

    The example image is row `image_index` of the image table, resized to the masks' size.
    """
    require(count >= 1, f"--count must be at least 1, got {count}")
    require(len(records) > 0, "the image table is empty; run `saliency-bench images` on a folder with images")
    require(0 <= image_index < len(records), f"--image-index {image_index} is outside the image table (0..{len(records) - 1})")
    stems = unique_stems([Path(p).stem for p in mask_paths])
    images: dict[tuple[int, int], np.ndarray] = {}
    with _StagedOutputs(out_dir) as staged:
        for path in _progress(mask_paths, "mask figures"):
            mask_set = MaskSet(path)
            masks, attrs = mask_set.first(count), mask_set.attrs
            shape = tuple(size) if size else masks.shape[1:]
            require(tuple(masks.shape[1:]) == tuple(shape),
                    f"{path}: masks are {masks.shape[1:]}, not --size {tuple(shape)}; drop --size or regenerate the masks")
            if shape not in images:
                images[shape] = load_images([records[image_index]], shape, mean, std)[0].numpy()
            mask_id = Path(path).stem
            figure = masks_figure(masks, images[shape], mean, std, title=mask_title(mask_id, attrs))
            staged.save(figure, f"masks-{stems[mask_id]}.png")
    return [staged.out_dir / name for name in staged.names]


SALIENCY_KINDS = ("overview", "abscam-init-vs-final", "abscam-layers")


def write_saliency_figures(saliency_paths: Sequence[str | os.PathLike], records: Sequence[ImageRecord], out_dir: str | os.PathLike,
                           *, max_images: int = 8, kinds: Sequence[str] = SALIENCY_KINDS, size: tuple[int, int] | None = None,
                           mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                           class_names: Sequence[str] | None = None) -> list[Path]:
    """Per explained image (the first `max_images` in image-table order that any saliency file holds):

    - `overview-<image>.png`: every configuration's map;
    - `abscam-init-vs-final-<image>-<layer>.png`: for each layer with both Abs-CAM Init and Final;
    - `abscam-layers-<image>.png`: when any Abs-CAM map exists.
    <image> is `file_stem(image_id)`, <layer> the layer stored in the saliency file.
    The images are shown at the maps' size (`size`, when given, must match it). With
    `max_images=0` the folder is created empty.
    """
    require(max_images >= 0, f"--max-images must be at least 0, got {max_images}")
    unknown = sorted(set(kinds) - set(SALIENCY_KINDS))
    require(not unknown, f"unknown figure kinds {unknown}; choose from {', '.join(SALIENCY_KINDS)}")
    maps, top1, abscam_layers = _collect_maps(saliency_paths, records, max_images)
    chosen = list(maps)
    stems = unique_stems(chosen)
    by_id = {r.image_id: r for r in records}
    highest = max((target for target, _ in top1.values()), default=-1)
    require(class_names is None or highest < len(class_names),
            f"--class-names gives {len(class_names or ())} name(s), but the maps explain class {highest}; "
            "give one name per class of the checkpoint, in its order")
    name_of = class_name_lookup(records, class_names)
    with _StagedOutputs(out_dir) as staged:
        for image_id in _progress(chosen, "saliency figures"):
            image_maps = maps[image_id]
            shape = next(iter(image_maps.values())).shape
            require(size is None or tuple(size) == tuple(shape),
                    f"saliency maps of {image_id} are {tuple(shape)}, not --size {tuple(size or ())}; pass the size used by explain")
            rgb = unnormalise(load_images([by_id[image_id]], shape, mean, std)[0].numpy(), mean, std)
            target, prob = top1[image_id]
            stem = stems[image_id]
            if "overview" in kinds:
                staged.save(overview_figure(rgb, image_maps, prob, name_of(target)), f"overview-{stem}.png")
            init, final = _abscam_maps(image_maps, abscam_layers)
            if "abscam-init-vs-final" in kinds:
                for layer in sorted(set(init) & set(final), key=natural_key):
                    figure = abscam_init_vs_final_figure(rgb, init[layer], final[layer], layer)
                    staged.save(figure, f"abscam-init-vs-final-{stem}-{file_stem(layer)}.png")
            if "abscam-layers" in kinds and (init or final):
                staged.save(abscam_layers_figure(rgb, init, final), f"abscam-layers-{stem}.png")
    return [staged.out_dir / name for name in staged.names]


def _collect_maps(paths, records, max_images):
    """{image_id: {method_id: map}} for the first `max_images` images, {image_id: (target, top1_prob)},
    and {method_id: (variant, layer)} of the Abs-CAM configurations (from the files' stored method and params).

    Reads only the chosen images' rows, so memory stays bounded however large a saliency file is.
    """
    files = list(paths)
    require(len(files) > 0, "no saliency files given; pass --saliency results/saliency/<method_id>/shard-<k>.h5 ...")
    ids_by_file = {path: read_image_ids(path) for path in files}
    available = {image_id for ids in ids_by_file.values() for image_id in ids}
    order = [r.image_id for r in records if r.image_id in available]
    require(bool(order), "no image of the image table appears in the saliency files; pass the matching --images table")
    chosen = order[:max_images]
    wanted = set(chosen)
    maps: dict[str, dict[str, np.ndarray]] = {image_id: {} for image_id in chosen}
    top1: dict[str, tuple[int, float]] = {}
    abscam_layers: dict[str, tuple[str, str]] = {}
    for path, ids in ids_by_file.items():
        rows = [row for row, image_id in enumerate(ids) if image_id in wanted]
        if not rows:
            continue
        part = read_rows(path, rows)
        if part.method in ABSCAM_VARIANTS:
            abscam_layers[part.method_id] = (ABSCAM_VARIANTS[part.method], str(part.params.get("layer")))
        for image_id, saliency, target, prob in zip(part.image_id, part.saliency, part.target, part.top1_prob):
            maps[image_id][part.method_id] = saliency
            top1.setdefault(image_id, (int(target), float(prob)))
    return maps, top1, abscam_layers


ABSCAM_VARIANTS = {"abscam-init": "init", "abscam-final": "final"}  # the methods the Abs-CAM figures compare


def _abscam_maps(image_maps: Mapping[str, np.ndarray], abscam_layers: Mapping[str, tuple[str, str]]
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """({layer: Init map}, {layer: Final map}) of one image."""
    init, final = {}, {}
    for method_id, saliency in image_maps.items():
        if method_id in abscam_layers:
            variant, layer = abscam_layers[method_id]
            (init if variant == "init" else final)[layer] = saliency
    return init, final


CURVE_KINDS = ("curves", "mean-curves")


def write_curve_figures(curve_paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, max_images: int = 8,
                        kinds: Sequence[str] = CURVE_KINDS, band: str = "se") -> list[Path]:
    """Writes, for every method id found in the curves files:

    - `curves-<image>-<method_id>.png` for the first `max_images` image ids (order of
      first appearance across the given files) that the method has;
    - `mean-curves-<method_id>.png`: mean over all its images, with the chance baselines.
    """
    require(max_images >= 0, f"--max-images must be at least 0, got {max_images}")
    unknown = sorted(set(kinds) - set(CURVE_KINDS))
    require(not unknown, f"unknown figure kinds {unknown}; choose from {', '.join(CURVE_KINDS)}")
    curves = read_curve_files(curve_paths)
    require(bool(curves), "no curves files given; pass --curves results/metrics/<method_id>/shard-<k>.curves.h5 ...")
    method_ids = sorted(curves, key=method_sort_key)
    method_stems = unique_stems(method_ids)
    first_seen = list(dict.fromkeys(i for m in method_ids for i in curves[m].image_id))
    chosen = first_seen[:max_images]
    image_stems = unique_stems(chosen)
    jobs = []
    if "curves" in kinds:
        jobs += [(image_id, method_id) for image_id in chosen for method_id in method_ids]
    if "mean-curves" in kinds:
        jobs += [(None, method_id) for method_id in method_ids]
    pairs = {m: (c.deletion, c.insertion) for m, c in curves.items()}
    with _StagedOutputs(out_dir) as staged:
        for image_id, method_id in _progress(jobs, "curve figures"):
            if image_id is None:
                figure = mean_curves_figure(pairs, method_id, band, curves[method_id].substrates)
                staged.save(figure, f"mean-curves-{method_stems[method_id]}.png")
                continue
            rows = curves[method_id].image_id
            if image_id not in rows:
                continue
            row = rows.index(image_id)
            figure = curves_figure(curves[method_id].deletion[row], curves[method_id].insertion[row], image_id, method_id,
                                   curves[method_id].substrates)
            staged.save(figure, f"curves-{image_stems[image_id]}-{method_stems[method_id]}.png")
    return [staged.out_dir / name for name in staged.names]


def write_summary_figure(summary_csv: str | os.PathLike, out: str | os.PathLike) -> Path:
    """summary.csv -> one bar chart at `out`."""
    require(os.path.isfile(summary_csv), f"summary table not found: {summary_csv}; run `saliency-bench aggregate` first")
    return save_figure(summary_figure(read_table(summary_csv)), out)
