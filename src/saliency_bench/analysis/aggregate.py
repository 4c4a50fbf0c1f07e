"""`aggregate`: per_image.csv, summary.csv and summary.md from the per-shard records, the saliency
files (localisation) and the image table. Statistics in `summary.py`, rendering in
`markdown.py`, file formats in `formats/`."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..errors import atomic_path, require
from ..formats.image_table import read_image_table
from ..formats.records import PROTOCOL_COLUMNS, SUBSTRATE_COLUMNS, read_records
from ..formats.saliency import read_params, read_saliency
from ..formats.tables import write_table
from ..formats.evidence import evidence_path, load_evidence_mask
from ..metrics.localisation import localise
from ..metrics.substrates import SUBSTRATES
from .markdown import render_markdown
from .summary import annotate, summarise


def localisation_scores(saliency_paths: Sequence[str | os.PathLike], evidence_root: str | os.PathLike) -> tuple[pd.DataFrame, int]:
    """Pointing game and energy pointing game of every map in the saliency files.

    Returns one row per (image_id, method_id) and the number of maps whose image has no evidence
    mask (their scores are NaN). Files are read one at a time, so memory holds one shard.
    """
    require(Path(evidence_root).is_dir(), f"evidence root not found: {evidence_root}; pass the folder of evidence masks")
    frames, without_mask = [], 0
    for path in tqdm(saliency_paths, desc="localisation", unit="file", file=sys.stderr, disable=len(saliency_paths) < 2):
        maps = read_saliency(path)
        height, width = maps.saliency.shape[1:]
        mask_paths = [evidence_path(evidence_root, image_id) for image_id in maps.image_id]
        without_mask += sum(p is None for p in mask_paths)
        empty = np.zeros((height, width), dtype=bool)
        masks = np.stack([load_evidence_mask(str(p), height, width) if p else empty for p in mask_paths])
        scores = localise(maps.saliency, masks)
        frames.append(pd.DataFrame({"image_id": maps.image_id, "method_id": maps.method_id, **scores}))
    table = pd.concat(frames, ignore_index=True).drop_duplicates(["image_id", "method_id"], keep="last")
    return table, without_mask



def aggregate(records: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
              saliency: Sequence[str | os.PathLike] = (), evidence_root: str | os.PathLike | None = None,
              images: str | os.PathLike | None = None, n_resamples: int = 10_000, seed: int = 0,
              alpha: float = 0.05) -> dict[str, Path]:
    """Write per_image.csv, summary.csv and summary.md into `out_dir`; return their paths."""
    require(n_resamples >= 1, f"--bootstrap must be at least 1, got {n_resamples}")
    require(0 < alpha < 1, f"--alpha must lie in (0, 1), got {alpha}")
    require(evidence_root is None or len(saliency) > 0, "--evidence-root needs the saliency maps; pass them with --saliency")
    rows = read_records(records)
    check_one_protocol(rows)
    per_image = annotate(rows)
    maps_without_mask = 0
    if evidence_root is not None:
        scores, maps_without_mask = localisation_scores(saliency, evidence_root)
        require(scores["energy_chance"].notna().any(),
                f"no evidence mask found under {evidence_root} for any image; masks go at <evidence-root>/<image_id>")
        per_image = per_image.merge(scores, on=["image_id", "method_id"], how="left")
    if images is not None:
        per_image = _join_image_table(per_image, images)
    summary = summarise(per_image, n_resamples, seed, alpha)
    summary.facts["maps_without_mask"] = maps_without_mask
    summary.facts["precision"] = _precisions(saliency)
    out = Path(out_dir)
    paths = {name: out / name for name in ("per_image.csv", "summary.csv", "summary.md")}
    write_table(paths["per_image.csv"], per_image)
    write_table(paths["summary.csv"], summary.table)
    with atomic_path(paths["summary.md"]) as tmp:
        tmp.write_text(render_markdown(summary, alpha, n_resamples), encoding="utf-8")
    return paths


def check_one_protocol(records: pd.DataFrame) -> None:
    """All records measured with one deletion substrate, one insertion substrate and one step: the
    tables compare their AUCs."""
    for column in PROTOCOL_COLUMNS:
        values = sorted(set(records[column]))
        key = "metrics.step_rows" if column == "step" else f"metrics.{column}"
        require(len(values) == 1, f"the records mix {column.replace('_', ' ')}s ({', '.join(map(str, values))}), whose AUCs "
                                  f"are not comparable; evaluate every method with one {key} and aggregate those records")
        require(column not in SUBSTRATE_COLUMNS or values[0] in SUBSTRATES,
                f"the records name an unknown {column.replace('_', ' ')} {values[0]!r} (known: {', '.join(SUBSTRATES)}); "
                "rerun `saliency-bench evaluate`")


def _precisions(saliency: Sequence[str | os.PathLike]) -> str:
    """The precision(s) the maps were computed in, from the saliency files' parameters ("" if none say)."""
    found = {read_params(path).get("precision") for path in saliency}
    return ", ".join(sorted(p for p in found if p))


def _join_image_table(per_image: pd.DataFrame, images: str | os.PathLike) -> pd.DataFrame:
    """Add label and class_name from the image table and order rows as the table does."""
    records = read_image_table(images)
    table = pd.DataFrame({"image_id": [r.image_id for r in records], "label": [r.label for r in records],
                          "class_name": [r.class_name for r in records], "_order": range(len(records))})
    unknown = sorted(set(per_image["image_id"]) - set(table["image_id"]))
    require(not unknown, f"image {unknown[0] if unknown else ''} of the records is not in {images}; pass the image table the records came from")
    merged = per_image.merge(table, on="image_id", how="left")
    return merged.sort_values(["_order"], kind="stable").drop(columns="_order").reset_index(drop=True)
