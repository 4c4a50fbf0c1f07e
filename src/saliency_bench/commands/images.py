"""`saliency-bench images`: choose the images to explain and write the image table."""
from __future__ import annotations

import argparse
import sys

from ..argtypes import positive_int, seed
from ..config import defaults
from ..data import check_images, discover_images, records_from_file_list, select_images
from ..errors import require
from ..formats.image_table import read_sharded_table, write_image_table


def register(subparsers) -> None:
    parser = subparsers.add_parser("images", help="select the images to explain (ImageFolder, file list or an image table) and shard them",
                                   description="Write the image table (image_id, path, label, class_name, shard) used by every later step.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", help="ImageFolder tree: one sub-folder per class")
    source.add_argument("--file-list", help="text file with one image path per line (a relative one is read from "
                        "--list-root if given, else from the list file's folder)")
    source.add_argument("--table", help="an image table written before, its images already checked (the workflow's "
                        "results/split.csv): keep its first --limit rows, in their shards; the split options do not apply")
    parser.add_argument("--class-names", nargs="+", default=None,
                        help="with --root: the checkpoint's classes in its order; naming the folders, they set the "
                             "labels (default: the folders' sorted order, as ImageFolder)")
    parser.add_argument("--list-root", default=None, help="with --file-list: folder the image ids, and the list's relative paths, are relative to")
    data = defaults().data
    parser.add_argument("--split", default=data.split, choices=("val", "train", "all"),
                        help=f"which images (default {data.split}: the study's validation split)")
    parser.add_argument("--val-fraction", type=float, default=data.val_fraction,
                        help=f"validation fraction (default {data.val_fraction:g})")
    parser.add_argument("--split-seed", type=seed, default=data.split_seed, help=f"random_split seed (default {data.split_seed})")
    parser.add_argument("--limit", type=positive_int, default=None, help="explain at most this many images (first of the split)")
    parser.add_argument("--per-class-limit", type=positive_int, default=None,
                        help="explain at most this many images per class (the first of each class in split order; "
                             "applied before --limit); needs --root")
    parser.add_argument("--images-per-job", type=int, default=defaults().images_per_job,
                        help=f"images per shard (default {defaults().images_per_job})")
    parser.add_argument("--out", required=True, help="output CSV")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require(args.images_per_job >= 1, f"--images-per-job must be at least 1, got {args.images_per_job}")
    if args.table:
        return cut_table(args)
    if args.root:
        records, _ = discover_images(args.root, args.class_names)
    else:
        records = records_from_file_list(args.file_list, args.list_root)
    indices = select_images([r.label for r in records], args.split, args.val_fraction, args.split_seed,
                            args.limit, args.per_class_limit)
    chosen = [records[i] for i in indices]
    # Decode every image now, so that a bad file stops the run in seconds, before any model job.
    check_images([record.path for record in chosen])
    write_image_table(args.out, chosen, args.images_per_job)
    shards = -(-len(chosen) // args.images_per_job)
    print(f"{len(chosen)} of {len(records)} images in {shards} shard{'s' * (shards != 1)} -> {args.out}", file=sys.stderr)
    return 0


def cut_table(args: argparse.Namespace) -> int:
    """The run's images: the first --limit rows of a checked table, each in the shard it has there, which
    the workflow's explain and evaluate jobs read."""
    require(args.per_class_limit is None, "--per-class-limit applies to --root, not --table (the table was selected already)")
    shards, records = read_sharded_table(args.table)
    chosen = records[:args.limit] if args.limit is not None else records
    require(shards[:len(chosen)] == [i // args.images_per_job for i in range(len(chosen))],
            f"the shards of {args.table} are not of {args.images_per_job} images; give its --images-per-job")
    write_image_table(args.out, chosen, args.images_per_job)
    print(f"{len(chosen)} of {len(records)} images of {args.table} -> {args.out}", file=sys.stderr)
    return 0
