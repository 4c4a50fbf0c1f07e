"""The result tables, written by `aggregate`: per_image.csv (one row per image and method
configuration) and summary.csv (one row per method configuration), both with the record ids
(`formats.records.ID_COLUMNS`) first; their other columns are defined in `aggregate`."""
from __future__ import annotations

import os

import pandas as pd

from ..errors import UserError, atomic_path, require
from .records import ID_COLUMNS, PROBABILITY_COLUMNS

STUDY_COLUMNS = ("deletion_auc", "insertion_auc", "score")  # the study's table: every reader needs them
# Numbers the readers compute with, where present: the metrics with their CI bounds, the records'
# probabilities, the repeat index (ids, verdicts and flags are text).
NUMERIC_COLUMNS = tuple(dict.fromkeys(
    [f"{metric}{bound}" for metric in (*STUDY_COLUMNS, "deletion_auc_norm", "insertion_auc_norm")
     for bound in ("", "_lo", "_hi")] + [*PROBABILITY_COLUMNS, "repeat", "n_images"]))


def write_table(path: str | os.PathLike, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """summary.csv or per_image.csv as `aggregate` wrote it (ids and variants as text)."""
    require(os.path.isfile(path), f"table not found: {path}; run `saliency-bench aggregate` first")
    try:
        table = pd.read_csv(path, dtype={column: str for column in ID_COLUMNS}, keep_default_na=False,
                            na_values=["", "nan", "NaN"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path} ({error.__class__.__name__}); rerun `saliency-bench aggregate`") from None
    missing = [column for column in ("method_id", *STUDY_COLUMNS) if column not in table]
    require(not missing, f"{path} lacks the columns {', '.join(missing)}; pass a table written by `saliency-bench aggregate`")
    for column in (c for c in NUMERIC_COLUMNS if c in table and not pd.api.types.is_numeric_dtype(table[c])):
        bad = table[column][pd.to_numeric(table[column], errors="coerce").isna() & table[column].notna()].iloc[0]
        raise UserError(f"{path}: column {column} holds {bad!r}, not a number; rerun `saliency-bench aggregate`")
    for column in ("method", "variant"):
        if column in table:
            table[column] = table[column].fillna("")
    return table
