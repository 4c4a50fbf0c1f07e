"""The image table (results/images.csv), written by the `images` stage: one row per image of the
run, in order, with its shard (the images one `explain`/`evaluate` job handles).

Columns (IMAGE_TABLE_FIELDS): image_id (the path relative to the data root, or the file list's
path), path, label (class index; -1 when unknown), class_name, shard = row // images_per_job.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

from ..data import ImageRecord
from ..errors import atomic_path, require

IMAGE_TABLE_FIELDS = ("image_id", "path", "label", "class_name", "shard")


def write_image_table(path: str | os.PathLike, records: Sequence[ImageRecord], images_per_job: int) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(IMAGE_TABLE_FIELDS)
        for index, record in enumerate(records):
            writer.writerow([record.image_id, record.path, record.label, record.class_name, index // images_per_job])


def read_image_table(path: str | os.PathLike, shard: int | None = None) -> list[ImageRecord]:
    """Records of an image table, optionally only those of one shard."""
    require(Path(path).is_file(), f"image table not found: {path}; run the 'images' step first")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if shard is not None:
        rows = [row for row in rows if int(row["shard"]) == shard]
        require(bool(rows), f"shard {shard} of {path} is empty; check images_per_job")
    return [ImageRecord(r["image_id"], r["path"], int(r["label"]), r["class_name"]) for r in rows]
