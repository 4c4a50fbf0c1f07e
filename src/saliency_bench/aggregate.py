"""Tables and conclusions: per_image.csv, summary.csv and summary.md from the per-shard records.

Rows of the summary are method configurations. A RISE repeat `<id>-seed<r>` (r > 0) is not a row
of its own: the repeats of a configuration are evidence of its stability across mask seeds and
go into the stability columns of `<id>`. The chance baselines `random` and `centre` are rows but
are never "best".

Score = Insertion AUC - Deletion AUC, per image; a method's value is the mean over its images.

Baseline-aware (normalised) AUCs put each AUC on the scale between the substrate and the image:

    deletion_auc_norm  = (deletion_auc  - deleted_prob) / (top1_prob - deleted_prob)
    insertion_auc_norm = (insertion_auc - blurred_prob) / (top1_prob - blurred_prob)

0 means the curve sat at the probability of the fully deleted (mean-colour) image, resp. the fully
blurred image, from the first step; 1 means it stayed at the original image's probability. They
make models comparable whose substrate probability is far from 0 (the study's model kept p = 0.5
on the deleted image). When |top1_prob - substrate probability| < 1e-6 the value is undefined
(NaN) and the image is left out of that column's mean; the count is reported.

Statistics (see stats.py): every mean has a 95% paired-bootstrap percentile CI (one draw of image
indices per resample, shared by all columns). Every method is compared with the best by Score
(highest mean Score among non-chance methods) on their common images: the bootstrap CI of the
mean Score difference and the Wilcoxon signed-rank p-value, Holm-adjusted over all methods
compared with the best. A method counts as distinguishable from the best only when both agree
(Holm p < alpha and the CI excludes 0). The same comparison is made with each chance baseline.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from .data import read_image_table
from .errors import UserError, atomic_path, require
from .localisation import evidence_path, load_evidence_mask, localise
from .saliency_io import read_saliency
from .stats import bootstrap_means, has_power, holm, min_wilcoxon_p, percentile_ci, wilcoxon_p

log = logging.getLogger(__name__)

RECORD_COLUMNS = ("image_id", "method_id", "method", "variant", "target", "top1_prob", "deletion_auc",
                  "insertion_auc", "deleted_prob", "blurred_prob", "constant_map")
CHANCE_IDS = ("random", "centre")
REPEAT_ID = re.compile(r"^(?P<base>.+)-seed(?P<repeat>\d+)$")
NORMALISATION_EPS = 1e-6
AUC_METRICS = ("deletion_auc", "insertion_auc", "score", "deletion_auc_norm", "insertion_auc_norm")
LOCALISATION_METRICS = ("pointing_game", "energy_pointing_game")
STABILITY_METRICS = ("deletion_auc", "insertion_auc", "score")
CHANCE_LEVEL = {"pointing_game": "pointing_chance", "energy_pointing_game": "energy_chance"}
CHECK = "\u2713"


# ---- inputs -----------------------------------------------------------------------------
def read_records(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """All records CSVs in one frame, checked for the contract's columns and duplicate rows."""
    require(len(paths) > 0, "no records given; pass the CSVs of `saliency-bench evaluate` with --records")
    frames = []
    for path in paths:
        require(os.path.isfile(path), f"records file not found: {path}; run `saliency-bench evaluate` first")
        try:
            frame = pd.read_csv(path, dtype={"image_id": str, "method_id": str, "method": str, "variant": str},
                                keep_default_na=False, na_values={c: ["", "nan", "NaN"] for c in RECORD_COLUMNS[5:]})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise UserError(f"cannot read records {path} ({error.__class__.__name__}); rerun `saliency-bench evaluate`") from None
        missing = [c for c in RECORD_COLUMNS if c not in frame.columns]
        require(not missing, f"{path} lacks the columns {', '.join(missing)}; rerun `saliency-bench evaluate`")
        frames.append(frame)
    records = pd.concat(frames, ignore_index=True)
    require(len(records) > 0, "the records files hold no rows; check that `saliency-bench evaluate` explained any image")
    for column in RECORD_COLUMNS[5:10]:
        converted = pd.to_numeric(records[column], errors="coerce")
        require(converted.notna().sum() == records[column].notna().sum() and converted.notna().any(),
                f"column {column} of the records is not numeric; rerun `saliency-bench evaluate`")
        require(converted.dropna().between(-1e-6, 1 + 1e-6).all(),
                f"column {column} of the records has values outside [0, 1]; these are probabilities, rerun `saliency-bench evaluate`")
        require(column not in ("top1_prob", "deletion_auc", "insertion_auc") or converted.notna().all(),
                f"column {column} of the records has empty values; rerun `saliency-bench evaluate` for those images")
        records[column] = converted.astype(np.float64)
    records["constant_map"] = records["constant_map"].astype(str).str.strip().str.lower().isin(("true", "1", "1.0"))
    duplicated = records.duplicated(["image_id", "method_id"])
    if duplicated.any():
        first = records[duplicated].iloc[0]
        raise UserError(f"image {first.image_id} of method {first.method_id} appears twice in the records; pass each records file once")
    return records


def normalised_auc(auc: np.ndarray, substrate_prob: np.ndarray, top1_prob: np.ndarray) -> np.ndarray:
    """(auc - substrate_prob) / (top1_prob - substrate_prob): 0 = the substrate's probability, 1 = the image's.

    NaN where |top1_prob - substrate_prob| < 1e-6, where the scale is undefined.
    """
    span = np.asarray(top1_prob, dtype=np.float64) - np.asarray(substrate_prob, dtype=np.float64)
    defined = np.abs(span) >= NORMALISATION_EPS
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined, (np.asarray(auc, dtype=np.float64) - substrate_prob) / np.where(defined, span, 1.0), np.nan)


def annotate(records: pd.DataFrame) -> pd.DataFrame:
    """Add base_method_id, repeat, is_chance, score and the normalised AUCs to the records."""
    table = records.copy()
    known = set(table["method_id"])
    bases, repeats = [], []
    for method_id in table["method_id"]:
        match = REPEAT_ID.match(method_id)
        if match and match["base"] in known:
            bases.append(match["base"])
            repeats.append(int(match["repeat"]))
        else:
            require(not match, f"records of {method_id} (a mask-seed repeat) but none of {match['base'] if match else ''}; "
                               "pass the base configuration's records too")
            bases.append(method_id)
            repeats.append(0)
    table["base_method_id"] = bases
    table["repeat"] = repeats
    table["is_chance"] = table["base_method_id"].isin(CHANCE_IDS)
    table["score"] = table["insertion_auc"] - table["deletion_auc"]
    table["deletion_auc_norm"] = normalised_auc(table["deletion_auc"], table["deleted_prob"], table["top1_prob"])
    table["insertion_auc_norm"] = normalised_auc(table["insertion_auc"], table["blurred_prob"], table["top1_prob"])
    return table


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


# ---- statistics -------------------------------------------------------------------------
@dataclass
class Summary:
    table: pd.DataFrame                    # summary.csv
    stability: pd.DataFrame                # one row per configuration with mask-seed repeats
    best_id: str | None
    n_images: int
    facts: dict = field(default_factory=dict)


def _pivot(frame: pd.DataFrame, metric: str, image_ids: list[str], method_ids: list[str]) -> np.ndarray:
    wide = frame.pivot(index="image_id", columns="method_id", values=metric)
    return wide.reindex(index=image_ids, columns=method_ids).to_numpy(dtype=np.float64)


def _nanmean(values: np.ndarray, axis: int = 0) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are NaN, on purpose
        return np.nanmean(values, axis=axis)


def summarise(per_image: pd.DataFrame, n_resamples: int = 10_000, seed: int = 0, alpha: float = 0.05) -> Summary:
    """Summary rows with bootstrap CIs, comparisons with the best and with chance, and stability."""
    ranked = per_image[per_image["repeat"] == 0]
    method_ids = sorted(dict.fromkeys(ranked["method_id"]), key=lambda m: m in CHANCE_IDS)  # stable: chance last
    image_ids = list(dict.fromkeys(ranked["image_id"]))
    metrics = AUC_METRICS + tuple(m for m in LOCALISATION_METRICS if m in ranked and ranked[m].notna().any())
    wide = {metric: _pivot(ranked, metric, image_ids, method_ids) for metric in metrics}
    score = wide["score"]
    contenders = [j for j, m in enumerate(method_ids) if m not in CHANCE_IDS]
    best = contenders[int(np.nanargmax(_nanmean(score[:, contenders])))] if contenders else None
    references = {"best": best, **{c: method_ids.index(c) for c in CHANCE_IDS if c in method_ids}}

    # One matrix of every per-image quantity, so one paired bootstrap serves all CIs.
    columns = {(metric, m): wide[metric][:, j] for metric in metrics for j, m in enumerate(method_ids)}
    for name, ref in references.items():
        if ref is not None:
            columns.update({(f"vs_{name}", m): score[:, j] - score[:, ref] for j, m in enumerate(method_ids)})
    keys = list(columns)
    matrix = np.column_stack([columns[k] for k in keys])
    log.info(f"bootstrap: {n_resamples} resamples of {len(image_ids)} images x {len(keys)} columns")
    low, high = percentile_ci(bootstrap_means(matrix, n_resamples, seed), alpha)
    estimate = _nanmean(matrix)
    ci = {k: (estimate[i], low[i], high[i]) for i, k in enumerate(keys)}

    info = ranked.drop_duplicates("method_id").set_index("method_id")
    rows = []
    for j, method_id in enumerate(method_ids):
        mine = ranked[ranked["method_id"] == method_id]
        row = {"method_id": method_id, "method": info.at[method_id, "method"], "variant": info.at[method_id, "variant"],
               "is_chance": method_id in CHANCE_IDS, "n_images": int(mine["score"].notna().sum()),
               "constant_maps": int(mine["constant_map"].sum())}
        for metric in metrics:
            row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = ci[(metric, method_id)]
        row.update(top1_prob=mine["top1_prob"].mean(), deleted_prob=mine["deleted_prob"].mean(),
                   blurred_prob=mine["blurred_prob"].mean(),
                   deletion_auc_norm_undefined=int(mine["deletion_auc_norm"].isna().sum()),
                   insertion_auc_norm_undefined=int(mine["insertion_auc_norm"].isna().sum()))
        for metric in metrics[len(AUC_METRICS):]:
            row[CHANCE_LEVEL[metric]] = mine[CHANCE_LEVEL[metric]].mean()
            row[f"{metric}_n"] = int(mine[metric].notna().sum())
        rows.append(row)
    table = pd.DataFrame(rows)
    for name, ref in references.items():
        if ref is not None:
            _add_comparison(table, name, ref, score, ci, method_ids, alpha)
    if best is not None:
        table["indistinguishable_from_best"] = table["vs_best"].isin(("reference", "indistinguishable"))

    stability = stability_table(per_image)
    if len(stability):
        keep = ["method_id", "n_seeds"] + [c for c in stability if c.endswith(("_seed_sd", "_seed_min", "_seed_max", "_image_seed_sd"))]
        table = table.merge(stability[keep], on="method_id", how="left")
    facts = _facts(ranked, per_image, image_ids, alpha)
    return Summary(table, stability, method_ids[best] if best is not None else None, len(image_ids), facts)


def _add_comparison(table: pd.DataFrame, name: str, ref: int, score: np.ndarray, ci: dict, method_ids: list[str],
                    alpha: float) -> None:
    """Columns score_diff_vs_<name> (+ CI), wilcoxon_p/holm_p_vs_<name>, n_pairs and a verdict vs_<name>.

    The verdict is better/worse only when the Holm-adjusted p < alpha and the CI excludes 0 on that
    side, else indistinguishable; the reference itself is "reference".
    """
    diffs = score - score[:, [ref]]
    p_values = np.array([wilcoxon_p(diffs[:, j]) if j != ref else math.nan for j in range(len(method_ids))])
    adjusted = holm(p_values)  # the family: every method compared with this reference
    estimate, low, high = (np.array([ci[(f"vs_{name}", m)][i] for m in method_ids]) for i in range(3))
    table[f"score_diff_vs_{name}"], table[f"score_diff_vs_{name}_lo"], table[f"score_diff_vs_{name}_hi"] = estimate, low, high
    table[f"wilcoxon_p_vs_{name}"], table[f"holm_p_vs_{name}"] = p_values, adjusted
    table[f"n_pairs_vs_{name}"] = (~np.isnan(diffs)).sum(axis=0)
    verdicts = []
    for j in range(len(method_ids)):
        if j == ref:
            verdicts.append("reference")
        elif adjusted[j] < alpha and high[j] < 0:
            verdicts.append("worse")
        elif adjusted[j] < alpha and low[j] > 0:
            verdicts.append("better")
        else:
            verdicts.append("indistinguishable")
    table[f"vs_{name}"] = verdicts


def stability_table(per_image: pd.DataFrame) -> pd.DataFrame:
    """Spread across mask seeds of each configuration that has repeats (seed 0 = the base id).

    Per seed, the mean over images of each metric; then the mean, sample sd, min and max of those
    per-seed means; score_image_seed_sd is the mean over images of the per-image sd across seeds.
    """
    rows = []
    for base, group in per_image.groupby("base_method_id", sort=False):
        seeds = sorted(group["repeat"].unique())
        if len(seeds) < 2:
            continue
        row = {"method_id": base, "method": group["method"].iloc[0], "variant": group["variant"].iloc[0],
               "n_seeds": len(seeds), "n_images": group["image_id"].nunique()}
        for metric in STABILITY_METRICS:
            per_seed = group.pivot(index="image_id", columns="repeat", values=metric).reindex(columns=seeds)
            seed_means = per_seed.mean(axis=0).to_numpy()
            row.update({f"{metric}_seed_mean": seed_means.mean(), f"{metric}_seed_sd": seed_means.std(ddof=1),
                        f"{metric}_seed_min": seed_means.min(), f"{metric}_seed_max": seed_means.max()})
        per_seed = group.pivot(index="image_id", columns="repeat", values="score")
        row["score_image_seed_sd"] = per_seed.std(axis=1, ddof=1).mean()
        rows.append(row)
    return pd.DataFrame(rows)


def _facts(ranked: pd.DataFrame, per_image: pd.DataFrame, image_ids: list[str], alpha: float) -> dict:
    """Numbers the conclusion quotes that are not per-method: baseline probabilities and test power."""
    per_image_probs = ranked.groupby("image_id")[["top1_prob", "deleted_prob", "blurred_prob"]].mean()
    facts = {"top1_prob": per_image_probs["top1_prob"].mean(), "deleted_prob": per_image_probs["deleted_prob"].mean(),
             "blurred_prob": per_image_probs["blurred_prob"].mean(),
             "deleted_prob_max": per_image_probs["deleted_prob"].max(),
             "has_power": has_power(len(image_ids), alpha), "min_p": min_wilcoxon_p(len(image_ids))}
    if "energy_chance" in per_image:
        facts["pointing_chance"] = per_image.groupby("image_id")["pointing_chance"].first().mean()
        facts["energy_chance"] = per_image.groupby("image_id")["energy_chance"].first().mean()
    return facts


# ---- outputs ----------------------------------------------------------------------------
def _number(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _with_ci(row: pd.Series, metric: str) -> str:
    return f"{_number(row[metric])} [{_number(row[f'{metric}_lo'])}, {_number(row[f'{metric}_hi'])}]"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else (f"{value:.2e}" if value < 1e-3 else f"{value:.3f}")


def _label(row: pd.Series) -> str:
    return f"{row['method']} ({row['method_id']})" + (" - chance" if row["is_chance"] else "")


def best_values(table: pd.DataFrame) -> dict[str, float]:
    """The best value of each main column among non-chance methods: lowest deletion, highest insertion and score."""
    contenders = table[~table["is_chance"]]
    if contenders.empty:
        return {}
    return {"deletion_auc": contenders["deletion_auc"].min(), "insertion_auc": contenders["insertion_auc"].max(),
            "score": contenders["score"].max()}


def render_markdown(summary: Summary, alpha: float = 0.05, n_resamples: int = 10_000) -> str:
    """summary.md: the study's table with CIs and check marks, then the conclusions, all computed."""
    table = summary.table
    level = f"{1 - alpha:.0%}"
    best = best_values(table)
    lines = [f"# Saliency benchmark summary ({summary.n_images} images)", "",
             f"Values are means over images with {level} paired-bootstrap CIs ({n_resamples} resamples). "
             f"Score = Insertion AUC - Deletion AUC. {CHECK} marks the best value of each column (chance baselines excluded)."
             + (f" Forward passes in {summary.facts['precision']}." if summary.facts.get("precision") else ""), "",
             "| Method | Parameter/Layer | Deletion AUC | Insertion AUC | Score | n |", "|---|---|---|---|---|---|"]
    for _, row in table.iterrows():
        cells = []
        for metric in ("deletion_auc", "insertion_auc", "score"):
            mark = f" {CHECK}" if not row["is_chance"] and row[metric] == best.get(metric) else ""
            cells.append(_with_ci(row, metric) + mark)
        lines.append(f"| {_label(row)} | {row['variant']} | {' | '.join(cells)} | {row['n_images']} |")
    lines += ["", "## Conclusions", ""] + _conclusions(summary, alpha)
    lines += ["", "## Baseline probabilities and baseline-aware AUCs", ""] + _baselines(summary)
    if "pointing_game" in table:
        lines += ["", "## Localisation against evidence masks", ""] + _localisation(summary)
    if len(summary.stability):
        lines += ["", "## Stability across RISE mask seeds", ""] + _stability(summary)
    return "\n".join(lines) + "\n"


def _conclusions(summary: Summary, alpha: float) -> list[str]:
    table, facts = summary.table, summary.facts
    if summary.best_id is None:
        return ["Only chance baselines were given; there is no best method."]
    best = table[table["method_id"] == summary.best_id].iloc[0]
    contenders = table[~table["is_chance"]]
    others = contenders[contenders["method_id"] != summary.best_id]
    lines = [f"- Best by Score: **{_label(best)}, {best['variant']}**, Score {_with_ci(best, 'score')}."]
    if others.empty:
        lines.append("- No other method to compare with.")
    else:
        lines.append(f"- Statistically indistinguishable from the best (Holm-adjusted Wilcoxon p >= {alpha} or the "
                     f"bootstrap CI of the Score difference covers 0): {_names(others[others['indistinguishable_from_best']])}.")
        worse = others[others["vs_best"] == "worse"]
        if not worse.empty:
            lines.append(f"- Worse than the best (both tests agree): {_names(worse)}.")
    if not facts["has_power"]:
        lines.append(f"- With {summary.n_images} images the Wilcoxon test has no power: its smallest possible p is "
                     f"{facts['min_p']:.3f} >= {alpha}, so no method can be shown to differ by it; collect more images.")
    chance = [c for c in CHANCE_IDS if f"vs_{c}" in table]
    for c in chance:
        fails = contenders[contenders[f"vs_{c}"] != "better"]
        lines.append(f"- Better than the {c} baseline: {_names(contenders[contenders[f'vs_{c}'] == 'better'])}"
                     + (f"; not better than {c}: {_names(fails)}." if len(fails) else "."))
    compared = table[table["method_id"] != summary.best_id]
    if len(compared):
        lines += ["", "| Method | Score diff. to best [CI] | Wilcoxon p | Holm p | Verdict |", "|---|---|---|---|---|"]
    for _, row in compared.iterrows():
        lines.append(f"| {_label(row)} | {_with_ci(row, 'score_diff_vs_best')} | {_p(row['wilcoxon_p_vs_best'])} | "
                     f"{_p(row['holm_p_vs_best'])} | {row['vs_best']} |")
    if chance:
        lines += ["", "Compared with chance (Score difference to the baseline [CI], Holm-adjusted Wilcoxon p):", "",
                  "| Method | " + " | ".join(f"vs {c}" for c in chance) + " |", "|---|" + "---|" * len(chance)]
        for _, row in contenders.iterrows():
            cells = [f"{row[f'vs_{c}']}: {_with_ci(row, f'score_diff_vs_{c}')}, p = {_p(row[f'holm_p_vs_{c}'])}" for c in chance]
            lines.append(f"| {_label(row)} | " + " | ".join(cells) + " |")
    return lines


def _names(rows: pd.DataFrame) -> str:
    return ", ".join(_label(row) for _, row in rows.iterrows()) or "none"


def _baselines(summary: Summary) -> list[str]:
    facts, table = summary.facts, summary.table
    lines = [f"Mean p(explained class) over images: original image {_number(facts['top1_prob'])}, fully deleted "
             f"(mean-colour) image {_number(facts['deleted_prob'])} (max {_number(facts['deleted_prob_max'])}), fully "
             f"blurred image {_number(facts['blurred_prob'])}. Deletion curves end at the deleted image's p and insertion "
             "curves start at the blurred image's p, so an AUC near these values is no better than the substrate.", "",
             "Baseline-aware AUCs: deletion (AUC - p_deleted) / (p_original - p_deleted), insertion "
             "(AUC - p_blurred) / (p_original - p_blurred); 0 = the substrate's p, 1 = the original image's p.", "",
             "| Method | Parameter/Layer | Deletion AUC (norm.) | Insertion AUC (norm.) | undefined (del./ins.) |",
             "|---|---|---|---|---|"]
    for _, row in table.iterrows():
        lines.append(f"| {_label(row)} | {row['variant']} | {_with_ci(row, 'deletion_auc_norm')} | "
                     f"{_with_ci(row, 'insertion_auc_norm')} | {row['deletion_auc_norm_undefined']}/{row['insertion_auc_norm_undefined']} |")
    return lines


def _localisation(summary: Summary) -> list[str]:
    facts, table = summary.facts, summary.table
    lines = [f"Pointing game: the saliency maximum within 15 px (at 224 px) of the evidence; chance (a random point) "
             f"{_number(facts['pointing_chance'])}. Energy pointing game: share of positive saliency inside the evidence; "
             f"chance (a uniform map) {_number(facts['energy_chance'])}.", "",
             "| Method | Parameter/Layer | Pointing game | Energy pointing game | n |", "|---|---|---|---|---|"]
    for _, row in table[table["pointing_game_n"] > 0].iterrows():
        lines.append(f"| {_label(row)} | {row['variant']} | {_with_ci(row, 'pointing_game')} | "
                     f"{_with_ci(row, 'energy_pointing_game')} | {row['pointing_game_n']} |")
    if facts.get("maps_without_mask"):
        lines += ["", f"{facts['maps_without_mask']} maps (counted over all methods) have no evidence mask for their "
                      "image and are left out; methods without saliency files are not listed."]
    return lines


def _stability(summary: Summary) -> list[str]:
    lines = ["Mean over seeds ± sd of the per-seed means [min, max]; the last column is the mean per-image sd of "
             "the Score across seeds. The CIs above cover image sampling only, not the mask seed.", "",
             "| Method | Parameter/Layer | seeds | Deletion AUC | Insertion AUC | Score | per-image Score sd |",
             "|---|---|---|---|---|---|---|"]
    for _, row in summary.stability.iterrows():
        cells = [f"{_number(row[f'{m}_seed_mean'])} ± {_number(row[f'{m}_seed_sd'])} "
                 f"[{_number(row[f'{m}_seed_min'])}, {_number(row[f'{m}_seed_max'])}]" for m in STABILITY_METRICS]
        lines.append(f"| {row['method']} ({row['method_id']}) | {row['variant']} | {row['n_seeds']} | "
                     + " | ".join(cells) + f" | {_number(row['score_image_seed_sd'])} |")
    return lines


def aggregate(records: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
              saliency: Sequence[str | os.PathLike] = (), evidence_root: str | os.PathLike | None = None,
              images: str | os.PathLike | None = None, n_resamples: int = 10_000, seed: int = 0,
              alpha: float = 0.05) -> dict[str, Path]:
    """Write per_image.csv, summary.csv and summary.md into `out_dir`; return their paths."""
    require(n_resamples >= 1, f"--bootstrap must be at least 1, got {n_resamples}")
    require(0 < alpha < 1, f"--alpha must lie in (0, 1), got {alpha}")
    require(evidence_root is None or len(saliency) > 0, "--evidence-root needs the saliency maps; pass them with --saliency")
    per_image = annotate(read_records(records))
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
    with atomic_path(paths["per_image.csv"]) as tmp:
        per_image.to_csv(tmp, index=False)
    with atomic_path(paths["summary.csv"]) as tmp:
        summary.table.to_csv(tmp, index=False)
    with atomic_path(paths["summary.md"]) as tmp:
        tmp.write_text(render_markdown(summary, alpha, n_resamples), encoding="utf-8")
    return paths


def _precisions(saliency: Sequence[str | os.PathLike]) -> str:
    """The precision(s) the maps were computed in, from the saliency files' parameters ("" if none say)."""
    import h5py

    found = set()
    for path in saliency:
        with h5py.File(path, "r") as handle:
            found.add(json.loads(handle.attrs.get("params", "{}")).get("precision"))
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
