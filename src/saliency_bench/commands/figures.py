"""`saliency-bench figures`: PNG figures from the stage outputs (masks, saliency, curves, summary).

Each sub-command writes a fixed set of names, so a Snakemake rule can declare them (the
per-image ones are best declared as a `directory()` output with report `patterns`):

- `figures masks --out-dir D`:    D/masks-<mask_id>.png, one per mask file (<mask_id> = its stem)
- `figures saliency --out-dir D`: D/overview-<image>.png, D/abscam-init-vs-final-<image>-<layer>.png,
                                  D/abscam-layers-<image>.png (choose with --kinds)
- `figures curves --out-dir D`:   D/curves-<image>-<method_id>.png, D/mean-curves-<method_id>.png
- `figures summary --out F`:      F

<image> is the image id with its extension dropped, '/' -> '__' and other unsafe
characters -> '_' (`saliency_bench.report.names.file_stem`).
"""
from __future__ import annotations

import argparse
import os
import sys

from ..argtypes import finite_float, positive_float, positive_int
from ..config import defaults
from ..errors import require
from ..formats.image_table import read_image_table
from ..formats.json_files import read_text
from ..report import figures


def register(subparsers) -> None:
    parser = subparsers.add_parser("figures", help="draw the PNG figures (masks, saliency maps, curves, summary)",
                                   description=__doc__.split("\n\n")[0])
    kinds = parser.add_subparsers(dest="figure_kind", metavar="KIND", required=True)

    masks = kinds.add_parser("masks", help="a few masks of each mask set next to an example image times each mask")
    masks.add_argument("--masks", nargs="+", required=True, metavar="FILE.h5", help="mask files from `saliency-bench masks`")
    masks.add_argument("--images", required=True, help="image table; its first image (or --image-index) is the example")
    masks.add_argument("--image-index", type=int, default=0, help="row of the image table to show (default 0)")
    masks.add_argument("--count", type=int, default=4, help="masks per figure (default 4)")
    _add_display_args(masks, with_size=True)
    masks.add_argument("--out-dir", required=True, help="folder for masks-<mask_id>.png")
    masks.set_defaults(func=run_masks)

    saliency = kinds.add_parser("saliency", help="per image: every method's map, Abs-CAM Init vs Final, Abs-CAM per layer")
    saliency.add_argument("--saliency", nargs="+", required=True, metavar="FILE.h5", help="saliency files from `saliency-bench explain`")
    saliency.add_argument("--images", required=True, help="image table (image paths, order and class names)")
    saliency.add_argument("--class-names", nargs="+", default=None, metavar="NAME",
                          help="class names by index, or one text file with one name per line (default: the table's class_name)")
    saliency.add_argument("--kinds", nargs="+", default=list(figures.SALIENCY_KINDS), choices=figures.SALIENCY_KINDS,
                          help="which figures (default: all)")
    max_images = defaults().figures.max_images
    saliency.add_argument("--max-images", type=int, default=max_images,
                          help=f"figures for at most this many images (default {max_images}; 0: none)")
    _add_display_args(saliency, with_size=True)
    saliency.add_argument("--out-dir", required=True, help="output folder")
    saliency.set_defaults(func=run_saliency)

    curves = kinds.add_parser("curves", help="deletion/insertion curves per image and their means per method")
    curves.add_argument("--curves", nargs="+", required=True, metavar="FILE.h5", help="curves files from `saliency-bench evaluate`")
    curves.add_argument("--kinds", nargs="+", default=list(figures.CURVE_KINDS), choices=figures.CURVE_KINDS,
                        help="which figures (default: all)")
    curves.add_argument("--band", default="se", choices=("se", "percentile"),
                        help="band around the mean curve: 1 standard error (default) or the 2.5-97.5 percentile")
    curves.add_argument("--max-images", type=int, default=max_images,
                        help=f"per-image curves for at most this many images (default {max_images}; 0: only the means)")
    curves.add_argument("--out-dir", required=True, help="output folder")
    curves.set_defaults(func=run_curves)

    summary = kinds.add_parser("summary", help="bar chart of Deletion AUC, Insertion AUC and Score per method")
    summary.add_argument("--summary", required=True, help="summary.csv from `saliency-bench aggregate`")
    summary.add_argument("--out", required=True, help="output PNG")
    summary.set_defaults(func=run_summary)


def _add_display_args(parser: argparse.ArgumentParser, with_size: bool) -> None:
    group = parser.add_argument_group("preprocessing (to show the images as the model saw them)")
    if with_size:
        group.add_argument("--size", type=positive_int, nargs=2, default=None, metavar=("H", "W"),
                           help="input size; must match the masks / maps (default: their size)")
    pre = defaults().preprocess
    group.add_argument("--mean", type=finite_float, nargs=3, default=pre.mean, help="normalisation mean (default: ImageNet's)")
    group.add_argument("--std", type=positive_float, nargs=3, default=pre.std, help="normalisation std (default: ImageNet's)")


def _report(paths, out: str) -> int:
    print(f"{len(paths)} figures -> {out}", file=sys.stderr)
    return 0


def run_masks(args: argparse.Namespace) -> int:
    records = read_image_table(args.images)
    paths = figures.write_mask_figures(args.masks, records, args.out_dir, count=args.count, size=args.size,
                                       mean=args.mean, std=args.std, image_index=args.image_index)
    return _report(paths, args.out_dir)


def _class_names(values: list[str] | None) -> list[str] | None:
    if values and len(values) == 1 and os.path.isfile(values[0]):
        text = read_text(values[0], "class-names file", "give a text file with one class name per line")
        return [line.strip() for line in text.splitlines() if line.strip()]
    for name in values or ():  # bytes that are not UTF-8 reach Python as unpaired surrogates
        require(name.encode("utf-8", errors="replace").decode() == name, f"--class-names {name!r} is not UTF-8 text; "
                "give the names in UTF-8")
    return values


def run_saliency(args: argparse.Namespace) -> int:
    records = read_image_table(args.images)
    paths = figures.write_saliency_figures(args.saliency, records, args.out_dir, max_images=args.max_images, kinds=args.kinds,
                                           size=args.size, mean=args.mean, std=args.std,
                                           class_names=_class_names(args.class_names))
    return _report(paths, args.out_dir)


def run_curves(args: argparse.Namespace) -> int:
    paths = figures.write_curve_figures(args.curves, args.out_dir, max_images=args.max_images, kinds=args.kinds, band=args.band)
    return _report(paths, args.out_dir)


def run_summary(args: argparse.Namespace) -> int:
    figures.write_summary_figure(args.summary, args.out)
    return _report([args.out], args.out)
