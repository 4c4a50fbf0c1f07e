"""Records: one CSV per (method configuration, shard), one row per image, written by `evaluate`.

Columns (RECORD_COLUMNS): ids and method fields, the explained class `target`, `top1_prob` (its
probability on the image), `deletion_auc` and `insertion_auc`, `deleted_prob` (last deletion
point: the fully deleted image) and `blurred_prob` (first insertion point: the fully blurred
image), the baselines the AUCs are read against, `constant_map` (the map ranks nothing), and
`deletion_substrate` / `insertion_substrate` (what deleted pixels became and what insertion started
from, names of `metrics.substrates`) and `step` (pixels changed per step): AUCs measured with
different ones are not comparable.
"""
from __future__ import annotations

import csv
import os
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import UserError, atomic_path, require

ID_COLUMNS = ("image_id", "method_id", "method", "variant")
PROBABILITY_COLUMNS = ("top1_prob", "deletion_auc", "insertion_auc", "deleted_prob", "blurred_prob")
SUBSTRATE_COLUMNS = ("deletion_substrate", "insertion_substrate")
# How the curves were measured: records measured otherwise have AUCs that do not compare.
PROTOCOL_COLUMNS = (*SUBSTRATE_COLUMNS, "step")
RECORD_COLUMNS = (*ID_COLUMNS, "target", *PROBABILITY_COLUMNS, "constant_map", *PROTOCOL_COLUMNS)
REQUIRED_PROBABILITIES = ("top1_prob", "deletion_auc", "insertion_auc")

if TYPE_CHECKING:  # pandas only where records are read (aggregate): an evaluate job writes them with csv
    import pandas as pd


def write_records(path: str | os.PathLike, records: Sequence[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RECORD_COLUMNS)
        writer.writeheader()
        writer.writerows(records)


def read_records(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """All records CSVs in one frame, checked for the contract's columns, probabilities in
    [0, 1] and duplicate rows."""
    import pandas as pd

    require(len(paths) > 0, "no records given; pass the CSVs of `saliency-bench evaluate` with --records")
    records = pd.concat([_read_one(path) for path in paths], ignore_index=True)
    require(len(records) > 0, "the records files hold no rows; check that `saliency-bench evaluate` explained any image")
    for column in PROBABILITY_COLUMNS:
        records[column] = _probabilities(records[column], column)
    records["constant_map"] = records["constant_map"].astype(str).str.strip().str.lower().isin(("true", "1", "1.0"))
    for column in SUBSTRATE_COLUMNS:
        require(records[column].str.strip().ne("").all(),
                f"column {column} of the records has empty values; rerun `saliency-bench evaluate`")
    steps = pd.to_numeric(records["step"], errors="coerce")
    require(bool((steps.notna() & (steps >= 1) & (steps % 1 == 0)).all()),
            "column step of the records holds values that are no whole number of pixels; rerun `saliency-bench evaluate`")
    records["step"] = steps.astype(np.int64)
    duplicated = records.duplicated(["image_id", "method_id"])
    if duplicated.any():
        first = records[duplicated].iloc[0]
        raise UserError(f"image {first.image_id} of method {first.method_id} appears twice in the records; pass each records file once")
    return records


def _read_one(path: str | os.PathLike) -> pd.DataFrame:
    import pandas as pd

    require(os.path.isfile(path), f"records file not found: {path}; run `saliency-bench evaluate` first")
    try:
        frame = pd.read_csv(path, dtype={column: str for column in ID_COLUMNS + SUBSTRATE_COLUMNS}, keep_default_na=False,
                            na_values={column: ["", "nan", "NaN"] for column in PROBABILITY_COLUMNS + ("constant_map",)})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read records {path} ({error.__class__.__name__}); rerun `saliency-bench evaluate`") from None
    missing = [column for column in RECORD_COLUMNS if column not in frame.columns]
    require(not missing, f"{path} lacks the columns {', '.join(missing)}; rerun `saliency-bench evaluate`")
    return frame


def _probabilities(values: pd.Series, column: str) -> pd.Series:
    import pandas as pd

    converted = pd.to_numeric(values, errors="coerce")
    require(converted.notna().sum() == values.notna().sum() and converted.notna().any(),
            f"column {column} of the records is not numeric; rerun `saliency-bench evaluate`")
    require(converted.dropna().between(-1e-6, 1 + 1e-6).all(),
            f"column {column} of the records has values outside [0, 1]; these are probabilities, rerun `saliency-bench evaluate`")
    require(column not in REQUIRED_PROBABILITIES or converted.notna().all(),
            f"column {column} of the records has empty values; rerun `saliency-bench evaluate` for those images")
    return converted.astype(np.float64)
