"""`saliency-bench images`: choose the images to explain and write the image table."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ..data import discover_images, open_rgb, records_from_list, select_split, write_image_table
from ..errors import require


def register(subparsers) -> None:
    parser = subparsers.add_parser("images", help="select the images to explain (ImageFolder or file list) and shard them",
                                   description="Write the image table (image_id, path, label, class_name, shard) used by every later step.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", help="ImageFolder tree: one sub-folder per class")
    source.add_argument("--file-list", help="text file with one image path per line")
    parser.add_argument("--list-root", default=None, help="with --file-list: folder the image ids are relative to")
    parser.add_argument("--split", default="val", choices=("val", "train", "all"), help="which images (default: the study's validation split)")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="validation fraction (default 0.2)")
    parser.add_argument("--split-seed", type=int, default=42, help="random_split seed (default 42)")
    parser.add_argument("--limit", type=int, default=None, help="explain at most this many images (first of the split)")
    parser.add_argument("--images-per-job", type=int, default=8, help="images per shard (default 8)")
    parser.add_argument("--out", required=True, help="output CSV")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require(args.images_per_job >= 1, f"--images-per-job must be at least 1, got {args.images_per_job}")
    require(args.limit is None or args.limit >= 1, f"--limit must be at least 1, got {args.limit}")
    if args.root:
        records, _ = discover_images(args.root)
    else:
        records = records_from_list(read_file_list(args.file_list), args.list_root)
    chosen = [records[i] for i in select_split(len(records), args.split, args.val_fraction, args.split_seed)]
    if args.limit is not None:
        chosen = chosen[: args.limit]
    # Fail now, with the path, rather than deep inside a later job.
    for record in tqdm(chosen, desc="checking images", unit="image", disable=None):
        open_rgb(record.path)
    write_image_table(args.out, chosen, args.images_per_job)
    print(f"{len(chosen)} of {len(records)} images in {-(-len(chosen) // args.images_per_job)} shards -> {args.out}", file=sys.stderr)
    return 0


def read_file_list(path: str) -> list[str]:
    """Image paths of a list file: one per line; blank lines and '#' comments skipped."""
    require(Path(path).is_file(), f"file list not found: {path}; give --file-list a text file with one image path per line")
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]
