"""The result tables, written by `aggregate`: per_image.csv (one row per image and method
configuration) and summary.csv (one row per method configuration), both with the record ids
(`formats.records.ID_COLUMNS`) first; their other columns are defined in `aggregate`."""
from __future__ import annotations

import os

import pandas as pd

from ..errors import UserError, atomic_path, require
from .records import ID_COLUMNS

STUDY_COLUMNS = ("deletion_auc", "insertion_auc", "score")  # the study's table: every reader needs them


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
    for column in ("method", "variant"):
        if column in table:
            table[column] = table[column].fillna("")
    return table
