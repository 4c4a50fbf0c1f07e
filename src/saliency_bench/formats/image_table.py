"""The image table, written by the `images` stage: one row per image, in order, with its shard (the
images one `explain`/`evaluate` job handles). The workflow writes two: results/split.csv, every image
of the split, and results/images.csv, the run's images (its first data.limit rows, same shards).

Columns (IMAGE_TABLE_FIELDS): image_id (the path relative to the data root, or the file list's
path), path, label (class index: the folder's in sorted order, or its place in data.class_names
where those name the folders; -1 when unknown), class_name, shard = row // images_per_job.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import UserError, atomic_path, require

IMAGE_TABLE_FIELDS = ("image_id", "path", "label", "class_name", "shard")


@dataclass(frozen=True)
class ImageRecord:
    """One image of the run: a row of the image table without its shard (`saliency_bench.data` makes them)."""
    image_id: str
    path: str
    label: int  # class index of the folder (see `data.discover_images`), -1 when unknown
    class_name: str


def write_image_table(path: str | os.PathLike, records: Sequence[ImageRecord], images_per_job: int) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(IMAGE_TABLE_FIELDS)
        for index, record in enumerate(records):
            writer.writerow([record.image_id, record.path, record.label, record.class_name, index // images_per_job])


def read_image_table(path: str | os.PathLike, shard: int | None = None, rows: int | None = None) -> list[ImageRecord]:
    """Records of an image table, optionally only those of one shard, and of those the first `rows`."""
    shards, records = read_sharded_table(path)
    if shard is None:
        return records
    records = [record for record, k in zip(records, shards) if k == shard]
    require(bool(records), f"shard {shard} of {path} is empty; check images_per_job")
    if rows is not None:
        require(1 <= rows <= len(records), f"shard {shard} of {path} has {len(records)} images, not {rows}; "
                                           "give --rows from 1 to the shard's size")
        records = records[:rows]
    return records


def read_shards(path: str | os.PathLike) -> list[int]:
    """The shard of every row of an image table, in order."""
    return read_sharded_table(path)[0]


def read_sharded_table(path: str | os.PathLike) -> tuple[list[int], list[ImageRecord]]:
    """(the shard of every row, the records), in order: the table read once."""
    require(Path(path).is_file(), f"image table not found: {path}; run the 'images' step first")
    fix = "recreate it with `saliency-bench images`"
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in IMAGE_TABLE_FIELDS if name not in (reader.fieldnames or ())]
            require(not missing, f"{path} is not an image table (no column {', '.join(missing)}); {fix}")
            shards, records = [], []
            for row in reader:
                # a short row (truncated file) fills None, a long one puts its extra cells under None
                require(None not in row and None not in row.values(),
                        f"{path} line {reader.line_num} does not have the {len(IMAGE_TABLE_FIELDS)} columns; {fix}")
                shards.append(int(row["shard"]))
                records.append(ImageRecord(row["image_id"], row["path"], int(row["label"]), row["class_name"]))
    except UnicodeDecodeError:
        raise UserError(f"{path} is not an image table (not UTF-8 text); {fix}") from None
    except (ValueError, csv.Error) as error:  # int() of a non-number, a NUL byte, ...
        raise UserError(f"{path} is not a valid image table (line {reader.line_num}: {error}); {fix}") from None
    return shards, records
