"""The summary statistics behind the tables: per-image annotations, then per method configuration the
means with bootstrap CIs and the paired tests against the best and against chance (`summarise`).

Rows of the summary are method configurations. A RISE repeat `<id>-seed<r>` (r > 0) is not a row
of its own: the repeats of a configuration are evidence of its stability across mask seeds and
go into the stability columns of `<id>`. The reference rows (the chance baselines `random` and
`centre`; the ground truth `evidence`) are rows but are never "best".

Score = Insertion AUC - Deletion AUC, per image; a method's value is the mean over its images.

Baseline-aware (normalised) AUCs put each AUC on the scale between the substrate and the image:

    deletion_auc_norm  = (deletion_auc  - deleted_prob) / (top1_prob - deleted_prob)
    insertion_auc_norm = (insertion_auc - blurred_prob) / (top1_prob - blurred_prob)

0 means the curve sat at the probability of the fully deleted image, resp. insertion's first image
(the substrates, `metrics.substrates`), from the first step; 1 means it stayed at the original
image's probability. They make models comparable whose substrate probability is far from 0 (the
study's model kept p = 0.5 on the deleted image). When |top1_prob - substrate probability| < 1e-6
the value is undefined (NaN) and the image is left out of that column's mean; the count is reported.

Statistics (see stats.py): every mean has a 95% paired-bootstrap percentile CI (one draw of image
indices per resample, shared by all columns). Every method is compared with the best by Score
(highest mean Score among non-chance methods) on their common images: the bootstrap CI of the
mean Score difference and the Wilcoxon signed-rank p-value, Holm-adjusted over all methods
compared with the best. A method counts as distinguishable from the best only when both agree
(Holm p < alpha and the CI excludes 0). The same comparison is made with each reference row. A
ground-truth row (`evidence`) is a Holm family of its own in each comparison, so that adding it
changes no other row's verdict.
"""
from __future__ import annotations

import logging
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import require
from ..formats.records import PROTOCOL_COLUMNS, SUBSTRATE_COLUMNS
from ..formats.tables import STUDY_COLUMNS
from ..methods import chance_ids, reference_role
from ..metrics.substrates import describe_substrate
from .stats import bootstrap_means, has_power, holm, min_wilcoxon_p, pairs_for_power, percentile_ci, wilcoxon_p

log = logging.getLogger(__name__)

REPEAT_ID = re.compile(r"^(?P<base>.+)-seed(?P<repeat>\d+)$")
NORMALISATION_EPS = 1e-6
AUC_METRICS = (*STUDY_COLUMNS, "deletion_auc_norm", "insertion_auc_norm")
LOCALISATION_METRICS = ("pointing_game", "energy_pointing_game")
STABILITY_METRICS = STUDY_COLUMNS
CHANCE_LEVEL = {"pointing_game": "pointing_chance", "energy_pointing_game": "energy_chance"}
CHECK = "\u2713"


def substrate_images(facts: dict) -> tuple[str, str]:
    """How the tables name the fully deleted image and insertion's first image: with their substrates,
    where the records say them."""
    return tuple(f"{image} ({describe_substrate(facts[column])})" if isinstance(facts.get(column), str) else image
                 for column, image in zip(SUBSTRATE_COLUMNS, ("fully deleted image", "insertion's first image")))


def insensitive_warning(facts: dict, n_images: int) -> str:
    """The summary's first line where the model gives the same p to the image and to both substrates:
    its curves are flat whatever the map (an untrained head, not the trained checkpoint); else ""."""
    count = facts.get("insensitive_images", 0)
    if not count:
        return ""
    which = "every image" if count == n_images else f"{count} of {n_images} images"
    deleted, first = substrate_images(facts)
    return (f"Warning: for {which} the model gives the explained class the same probability on the image, the "
            f"{deleted} and the {first}, so no saliency map can change their deletion or insertion AUC, and "
            "their Scores rank nothing. Check that the checkpoint is the trained model.")


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
    table["is_chance"] = table["base_method_id"].isin(chance_ids())
    table["score"] = table["insertion_auc"] - table["deletion_auc"]
    table["deletion_auc_norm"] = normalised_auc(table["deletion_auc"], table["deleted_prob"], table["top1_prob"])
    table["insertion_auc_norm"] = normalised_auc(table["insertion_auc"], table["blurred_prob"], table["top1_prob"])
    return table


# ---- statistics -------------------------------------------------------------------------
@dataclass
class Summary:
    table: pd.DataFrame                    # summary.csv
    stability: pd.DataFrame                # one row per configuration with mask-seed repeats
    best_id: str | None
    n_images: int
    facts: dict = field(default_factory=dict)
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)  # mean Score per method (rows) and class


def _pivot(frame: pd.DataFrame, metric: str, image_ids: list[str], method_ids: list[str]) -> np.ndarray:
    wide = frame.pivot(index="image_id", columns="method_id", values=metric)
    return wide.reindex(index=image_ids, columns=method_ids).to_numpy(dtype=np.float64)


def _nanmean(values: np.ndarray, axis: int = 0) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are NaN, on purpose
        return np.nanmean(values, axis=axis)


def ranked_rows(per_image: pd.DataFrame) -> pd.DataFrame:
    """The per-image rows the tables rank: each configuration's first repeat (RISE repeats r > 0 go
    into the stability columns only); every row of a table without a repeat column."""
    return per_image[per_image["repeat"] == 0] if "repeat" in per_image else per_image


def summarise(per_image: pd.DataFrame, n_resamples: int = 10_000, seed: int = 0, alpha: float = 0.05) -> Summary:
    """Summary rows with bootstrap CIs, comparisons with the best and with chance, and stability."""
    ranked = ranked_rows(per_image)
    chance = chance_ids()
    method_ids = sorted(dict.fromkeys(ranked["method_id"]), key=lambda m: m in chance)  # stable: chance last
    image_ids = list(dict.fromkeys(ranked["image_id"]))
    metrics = AUC_METRICS + tuple(m for m in LOCALISATION_METRICS if m in ranked and ranked[m].notna().any())
    wide = {metric: _pivot(ranked, metric, image_ids, method_ids) for metric in metrics}
    score = wide["score"]
    contenders = [j for j, m in enumerate(method_ids) if m not in chance]
    best = contenders[int(np.nanargmax(_nanmean(score[:, contenders])))] if contenders else None
    references = {"best": best, **{c: method_ids.index(c) for c in chance if c in method_ids}}

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
               "is_chance": method_id in chance, "n_images": int(mine["score"].notna().sum()),
               "constant_maps": int(mine["constant_map"].sum())}
        for metric in metrics:
            row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = ci[(metric, method_id)]
        row.update(top1_prob=mine["top1_prob"].mean(), deleted_prob=mine["deleted_prob"].mean(),
                   blurred_prob=mine["blurred_prob"].mean(),
                   deletion_auc_norm_undefined=int(mine["deletion_auc_norm"].isna().sum()),
                   insertion_auc_norm_undefined=int(mine["insertion_auc_norm"].isna().sum()),
                   **{column: mine[column].iloc[0] for column in PROTOCOL_COLUMNS if column in mine})
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
    facts = headline_facts(ranked, per_image, image_ids, alpha)
    return Summary(table, stability, method_ids[best] if best is not None else None, len(image_ids), facts,
                   per_class_scores(ranked, method_ids))


def per_class_scores(ranked: pd.DataFrame, method_ids: list[str]) -> pd.DataFrame:
    """Mean Score per method and image class (the image's folder, not the explained class), with each
    class's image count in the columns' names: where a method fails on one class only. Empty unless
    the images come from two or more class folders."""
    if "class_name" not in ranked or ranked["class_name"].fillna("").eq("").any() or ranked["class_name"].nunique() < 2:
        return pd.DataFrame()
    means = ranked.pivot_table(index="method_id", columns="class_name", values="score", aggfunc="mean", sort=False)
    counts = ranked.drop_duplicates("image_id")["class_name"].value_counts()
    means = means.reindex(index=method_ids, columns=sorted(means.columns, key=lambda name: (-counts[name], name)))
    return means.rename(columns=lambda name: f"{name} (n={counts[name]})")


def _add_comparison(table: pd.DataFrame, name: str, ref: int, score: np.ndarray, ci: dict, method_ids: list[str],
                    alpha: float) -> None:
    """Columns score_diff_vs_<name> (+ CI), wilcoxon_p/holm_p_vs_<name>, n_pairs and a verdict vs_<name>.

    The verdict is better/worse only when the Holm-adjusted p < alpha and the CI excludes 0 on that
    side, else indistinguishable; the reference itself is "reference".
    """
    diffs = score - score[:, [ref]]
    p_values = np.array([wilcoxon_p(diffs[:, j]) if j != ref else math.nan for j in range(len(method_ids))])
    # The family: every row compared with this reference, but a ground-truth row is a family of its own,
    # so that adding it (baselines.evidence) changes no other row's verdict.
    apart = np.array([is_ground_truth(m) for m in method_ids])
    adjusted = np.full(len(method_ids), math.nan)
    for family in (~apart, apart):
        adjusted[family] = holm(p_values[family])
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


def is_ground_truth(method_id: str) -> bool:
    """A reference row that is not chance (`evidence`): a Holm family of its own in every comparison."""
    return method_id in chance_ids() and reference_role(method_id) != "chance"


def holm_family_size(method_ids: Sequence[str]) -> int:
    """How many tests each Holm family holds: every row but the reference compared with, ground truth apart."""
    return max(1, sum(not is_ground_truth(m) for m in dict.fromkeys(method_ids)) - 1)


def power_note(facts: dict, n_images: int, alpha: float) -> str:
    """The conclusions' line where no test can reach alpha with these images; else ""."""
    if facts["has_power"]:
        return ""
    family = f" and {facts['comparisons']} comparisons in each Holm family" if facts["comparisons"] > 1 else ""
    return (f"With {n_images} images{family} the smallest possible {'Holm-adjusted ' if family else ''}Wilcoxon p is "
            f"{facts['min_p']:.3f} >= {alpha}, so no method can be shown to differ; use at least "
            f"{facts['images_needed']} images.")


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


def headline_facts(ranked: pd.DataFrame, per_image: pd.DataFrame, image_ids: list[str], alpha: float) -> dict:
    """Numbers the conclusion quotes that are not per-method: baseline probabilities and test power."""
    comparisons = holm_family_size(ranked["method_id"])
    per_image_probs = ranked.groupby("image_id")[["top1_prob", "deleted_prob", "blurred_prob"]].mean()
    # images whose p is the same on the original and on both substrates: no map can move their AUCs
    insensitive = ((per_image_probs["top1_prob"] - per_image_probs["deleted_prob"]).abs() < NORMALISATION_EPS) & \
                  ((per_image_probs["top1_prob"] - per_image_probs["blurred_prob"]).abs() < NORMALISATION_EPS)
    facts = {"top1_prob": per_image_probs["top1_prob"].mean(), "deleted_prob": per_image_probs["deleted_prob"].mean(),
             "blurred_prob": per_image_probs["blurred_prob"].mean(),
             "deleted_prob_max": per_image_probs["deleted_prob"].max(), "insensitive_images": int(insensitive.sum()),
             "comparisons": comparisons, "has_power": has_power(len(image_ids), alpha, comparisons),
             "min_p": min(1.0, comparisons * min_wilcoxon_p(len(image_ids))),
             "images_needed": pairs_for_power(alpha, comparisons)}
    for column in PROTOCOL_COLUMNS:  # one each: `aggregate` refuses records that mix them
        if column in per_image:
            facts[column] = per_image[column].iloc[0].item() if column == "step" else str(per_image[column].iloc[0])
    if "energy_chance" in per_image:
        facts["pointing_chance"] = per_image.groupby("image_id")["pointing_chance"].first().mean()
        facts["energy_chance"] = per_image.groupby("image_id")["energy_chance"].first().mean()
    return facts


