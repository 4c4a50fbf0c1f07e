"""summary.md: the study's comparison table and the conclusions, rendered from a `Summary`
(`summary.summarise`); also the number formats the HTML report shares."""
from __future__ import annotations

import math

import pandas as pd

from ..formats.records import SUBSTRATE_COLUMNS
from ..formats.tables import STUDY_COLUMNS
from ..methods import chance_ids, reference_role
from ..metrics.substrates import substrates_sentence
from .summary import CHECK, STABILITY_METRICS, Summary, insensitive_warning, power_note, substrate_images


def number(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def with_ci(row: pd.Series, metric: str) -> str:
    return f"{number(row[metric])} [{number(row[f'{metric}_lo'])}, {number(row[f'{metric}_hi'])}]"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else (f"{value:.2e}" if value < 1e-3 else f"{value:.3f}")


def protocol_note(facts: dict) -> str:
    """The sentences that say how the curves were measured (substrates, step); "" where the records do not say."""
    sentences = []
    if all(isinstance(facts.get(column), str) for column in SUBSTRATE_COLUMNS):
        sentences.append(substrates_sentence(*(facts[column] for column in SUBSTRATE_COLUMNS)))
    if isinstance(facts.get("step"), int):
        sentences.append(f"Each step changes {facts['step']:,} pixels (metrics.step_rows rows of the image).")
    return " ".join(sentences)


def method_label(row: pd.Series) -> str:
    return f"{row['method']} ({row['method_id']})" + (f" - {reference_role(row['method_id'])}" if row["is_chance"] else "")


def reference_name(method_id: str) -> str:
    """A reference row as the conclusions name it: "the random baseline", "the evidence map (ground truth)"."""
    role = reference_role(method_id)
    return f"the {method_id} baseline" if role == "chance" else f"the {method_id} map ({role})"


def ground_truth_note(reference: str, better: pd.DataFrame) -> str:
    """What methods above a ground-truth reference row mean, to follow the list of them; else ""."""
    if reference_role(reference) == "chance" or better.empty:
        return ""
    return (" For these a map of exactly the evidence scores lower, so the Score rewards pixels outside the evidence "
            "(context the model uses, or evidence that the deletion substrate does not hide from it); read the Score "
            "beside the localisation table.")


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
    protocol = protocol_note(summary.facts)
    lines = [f"# Saliency benchmark summary ({summary.n_images} images)", "",
             f"Values are means over images with {level} paired-bootstrap CIs ({n_resamples} resamples). "
             f"Score = Insertion AUC - Deletion AUC. {CHECK} marks the best value of each column (reference rows excluded)."
             + (f" Forward passes in {summary.facts['precision']}." if summary.facts.get("precision") else "")
             + (f" {protocol}" if protocol else ""), "",
             "| Method | Parameter/Layer | Deletion AUC | Insertion AUC | Score | n |", "|---|---|---|---|---|---|"]
    for _, row in table.iterrows():
        cells = []
        for metric in STUDY_COLUMNS:
            mark = f" {CHECK}" if not row["is_chance"] and row[metric] == best.get(metric) else ""
            cells.append(with_ci(row, metric) + mark)
        lines.append(f"| {method_label(row)} | {row['variant']} | {' | '.join(cells)} | {row['n_images']} |")
    lines += ["", "## Conclusions", ""] + _conclusions(summary, alpha)
    if len(summary.per_class):
        lines += ["", "## Score per class", ""] + _per_class(summary)
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
    warning = insensitive_warning(summary.facts, summary.n_images)
    lines = [f"- **{warning}**"] if warning else []
    lines.append(f"- Best by Score: **{method_label(best)}, {best['variant']}**, Score {with_ci(best, 'score')}.")
    if others.empty:
        lines.append("- No other method to compare with.")
    else:
        lines.append(f"- Statistically indistinguishable from the best (Holm-adjusted Wilcoxon p >= {alpha} or the "
                     f"bootstrap CI of the Score difference covers 0): {_names(others[others['indistinguishable_from_best']])}.")
        worse = others[others["vs_best"] == "worse"]
        if not worse.empty:
            lines.append(f"- Worse than the best (both tests agree): {_names(worse)}.")
    if note := power_note(facts, summary.n_images, alpha):
        lines.append(f"- {note}")
    chance = [c for c in chance_ids() if f"vs_{c}" in table]
    for c in chance:
        better = contenders[contenders[f"vs_{c}"] == "better"]
        fails = contenders[contenders[f"vs_{c}"] != "better"]
        lines.append(f"- Better than {reference_name(c)}: {_names(better)}"
                     + (f"; not better than {c}: {_names(fails)}." if len(fails) else ".") + ground_truth_note(c, better))
    compared = table[table["method_id"] != summary.best_id]
    if len(compared):
        lines += ["", "| Method | Score diff. to best [CI] | Wilcoxon p | Holm p | Verdict |", "|---|---|---|---|---|"]
    for _, row in compared.iterrows():
        lines.append(f"| {method_label(row)} | {with_ci(row, 'score_diff_vs_best')} | {_p(row['wilcoxon_p_vs_best'])} | "
                     f"{_p(row['holm_p_vs_best'])} | {row['vs_best']} |")
    if chance:
        lines += ["", "Compared with the reference rows (Score difference to the reference [CI], Holm-adjusted "
                      "Wilcoxon p):", "",
                  "| Method | " + " | ".join(f"vs {c}" for c in chance) + " |", "|---|" + "---|" * len(chance)]
        for _, row in contenders.iterrows():
            cells = [f"{row[f'vs_{c}']}: {with_ci(row, f'score_diff_vs_{c}')}, p = {_p(row[f'holm_p_vs_{c}'])}" for c in chance]
            lines.append(f"| {method_label(row)} | " + " | ".join(cells) + " |")
    return lines


PER_CLASS_NOTE = ("Mean Score of the images of each class (their folder; the explained class is the model's top-1), "
                  "without CIs: a class holds a fraction of the images. Where one method's Score drops on one class "
                  "only, look at that class's maps.")


def _per_class(summary: Summary) -> list[str]:
    per_class = summary.per_class
    lines = [PER_CLASS_NOTE, "",
             "| Method | Parameter/Layer | " + " | ".join(per_class.columns) + " |",
             "|---|---|" + "---|" * len(per_class.columns)]
    for _, row in summary.table.iterrows():
        scores = per_class.loc[row["method_id"]]
        lines.append(f"| {method_label(row)} | {row['variant']} | " + " | ".join(number(v) for v in scores) + " |")
    return lines


def _names(rows: pd.DataFrame) -> str:
    return ", ".join(method_label(row) for _, row in rows.iterrows()) or "none"


def _baselines(summary: Summary) -> list[str]:
    facts, table = summary.facts, summary.table
    deleted, first = substrate_images(facts)
    lines = [f"Mean p(explained class) over images: original image {number(facts['top1_prob'])}, {deleted} "
             f"{number(facts['deleted_prob'])} (max {number(facts['deleted_prob_max'])}), {first} "
             f"{number(facts['blurred_prob'])}. Deletion curves end at the deleted image's p and insertion curves start "
             "at the first image's p, so an AUC near these values is no better than the substrate.", "",
             "Baseline-aware AUCs: deletion (AUC - p_deleted) / (p_original - p_deleted), insertion "
             "(AUC - p_first) / (p_original - p_first); 0 = the substrate's p, 1 = the original image's p.", "",
             "| Method | Parameter/Layer | Deletion AUC (norm.) | Insertion AUC (norm.) | undefined (del./ins.) |",
             "|---|---|---|---|---|"]
    for _, row in table.iterrows():
        lines.append(f"| {method_label(row)} | {row['variant']} | {with_ci(row, 'deletion_auc_norm')} | "
                     f"{with_ci(row, 'insertion_auc_norm')} | {row['deletion_auc_norm_undefined']}/{row['insertion_auc_norm_undefined']} |")
    return lines


def _localisation(summary: Summary) -> list[str]:
    facts, table = summary.facts, summary.table
    lines = [f"Pointing game: the saliency maximum within 15 px (at 224 px) of the evidence; chance (a random point) "
             f"{number(facts['pointing_chance'])}. Energy pointing game: share of positive saliency inside the evidence; "
             f"chance (a uniform map) {number(facts['energy_chance'])}.", "",
             "| Method | Parameter/Layer | Pointing game | Energy pointing game | n |", "|---|---|---|---|---|"]
    for _, row in table[table["pointing_game_n"] > 0].iterrows():
        lines.append(f"| {method_label(row)} | {row['variant']} | {with_ci(row, 'pointing_game')} | "
                     f"{with_ci(row, 'energy_pointing_game')} | {row['pointing_game_n']} |")
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
        cells = [f"{number(row[f'{m}_seed_mean'])} ± {number(row[f'{m}_seed_sd'])} "
                 f"[{number(row[f'{m}_seed_min'])}, {number(row[f'{m}_seed_max'])}]" for m in STABILITY_METRICS]
        lines.append(f"| {row['method']} ({row['method_id']}) | {row['variant']} | {row['n_seeds']} | "
                     + " | ".join(cells) + f" | {number(row['score_image_seed_sd'])} |")
    return lines


