"""HTML pages for the Snakemake report, from the tables that `aggregate` writes.

- `summary.html`: the study's table (Method, Parameter/Layer, Deletion AUC, Insertion AUC,
  Score with CIs, best values marked, verdicts against the best and against chance), chance
  rows set apart; sortable by a click on a column header.
- `per_image.html`: every (image, method) row of per_image.csv, sortable and filterable.
- `introduction.html`: an HTML fragment for the report's first page (workflow/report/workflow.rst
  includes it): what was compared, the headline, baseline probabilities, time per stage and the
  forward settings used.

Pages are self-contained (inline CSS and JavaScript, no network), so they display inline in the
report, also when it is opened from disk.
"""
from __future__ import annotations

import math
import os
from html import escape
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..analysis.markdown import (PER_CLASS_NOTE, best_values, ground_truth_note, method_label, number,
                                 protocol_note, reference_name, with_ci)
from ..analysis.summary import (AUC_METRICS, CHECK, LOCALISATION_METRICS, headline_facts, insensitive_warning,
                                per_class_scores, power_note, ranked_rows, substrate_images)
from ..errors import atomic_path
from ..formats.tables import STUDY_COLUMNS, read_table
from ..methods import chance_ids
from ..plan import BENCHMARK_ROOT, measure_stages, read_plan
from .names import PAGES

HEADERS = {"deletion_auc": "Deletion AUC", "insertion_auc": "Insertion AUC", "score": "Score",
           "deletion_auc_norm": "Deletion AUC (norm.)", "insertion_auc_norm": "Insertion AUC (norm.)",
           "pointing_game": "Pointing game", "energy_pointing_game": "Energy pointing game",
           "top1_prob": "p(class), image", "deleted_prob": "p(class), deleted", "blurred_prob": "p(class), blurred"}
VERDICTS = {"reference": "best", "better": "better", "worse": "worse", "indistinguishable": "indistinguishable"}

STYLE = """<style>
body{font:14px/1.4 system-ui,sans-serif;margin:12px;color:#1e293b}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e2e8f0;padding:4px 8px;text-align:left;white-space:nowrap}
th{background:#f1f5f9;position:sticky;top:0;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right}.best{font-weight:600;color:#047857}
tbody.chance td{background:#f8fafc;color:#475569}
tr.group td{font-weight:600;background:#e2e8f0;color:#1e293b}
.better{color:#047857}.worse{color:#b91c1c}.note{color:#475569;max-width:70em}
</style>"""

# Sort each <tbody> on its own (the chance rows stay apart); cells sort by data-v, numbers numerically.
SORT_SCRIPT = """<script>
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      table.querySelectorAll("tbody").forEach(function (body) {
        var rows = Array.from(body.querySelectorAll("tr:not(.group)"));
        rows.sort(function (a, b) {
          var x = a.cells[column].dataset.v, y = b.cells[column].dataset.v;
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
          return up ? c : -c;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
});
var filter = document.getElementById("filter");
if (filter) filter.addEventListener("input", function () {
  var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
  document.querySelectorAll("table.sortable tbody tr").forEach(function (row) {
    var text = row.textContent.toLowerCase();
    row.style.display = words.every(function (w) { return text.includes(w); }) ? "" : "none";
  });
});
</script>"""


# ---- cells ------------------------------------------------------------------------------
def _cell(text: str, value=None, css: str = "") -> str:
    sort_value = text if value is None else ("" if _missing(value) else repr(float(value)))
    cls = f' class="{css}"' if css else ""
    return f'<td{cls} data-v="{escape(str(sort_value))}">{escape(text)}</td>'


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _metric_cell(row: pd.Series, metric: str, best: dict) -> str:
    marked = not row.get("is_chance", False) and metric in best and row[metric] == best[metric]
    has_ci = f"{metric}_lo" in row and f"{metric}_hi" in row
    text = (with_ci(row, metric) if has_ci else number(row[metric])) + (f" {CHECK}" if marked else "")
    return _cell(text, row[metric], "num best" if marked else "num")


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>{STYLE}</head>\n'
            f"<body>\n{body}\n{SORT_SCRIPT}\n</body></html>\n")


# ---- pages ------------------------------------------------------------------------------
def summary_page(table: pd.DataFrame, alpha: float = 0.05, per_image: pd.DataFrame | None = None) -> str:
    """The study's table, ✓ on the best value of each column (reference rows excluded), reference rows
    apart; then, from `per_image`, the Score per class where the images come from two or more classes."""
    table = table.copy()
    table["is_chance"] = table["method_id"].isin(chance_ids())
    best = best_values(table)
    verdicts = [c for c in ("vs_best", *(f"vs_{c}" for c in chance_ids())) if c in table]
    head = ["Method", "Parameter/Layer", *(HEADERS[m] + (f" [{1 - alpha:.0%} CI]" if f"{m}_lo" in table else "")
                                          for m in STUDY_COLUMNS), "n images"]
    head += [f"vs {c[3:]}" for c in verdicts]
    bodies = []
    for chance, rows in ((False, table[~table["is_chance"]]), (True, table[table["is_chance"]])):
        if rows.empty:
            continue
        lines = [f'<tr class="group"><td colspan="{len(head)}">Reference rows (never "best")</td></tr>'] if chance else []
        for _, row in rows.iterrows():
            cells = [_cell(method_label(row)), _cell(str(row.get("variant", ""))),
                     *(_metric_cell(row, m, best) for m in STUDY_COLUMNS),
                     _cell(str(row.get("n_images", "")), row.get("n_images"), "num")]
            cells += [_cell(VERDICTS.get(row[c], str(row[c])), None, row[c]) for c in verdicts]
            lines.append(f'<tr data-method="{escape(row["method_id"])}">{"".join(cells)}</tr>')
        bodies.append(f'<tbody class="{"chance" if chance else "methods"}">\n' + "\n".join(lines) + "\n</tbody>")
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    compared = " / ".join(f"<i>vs {escape(c[3:])}</i>" for c in verdicts)
    note = (f"Means over images with {1 - alpha:.0%} paired-bootstrap CIs. Score = Insertion AUC \u2212 Deletion AUC. "
            f"{CHECK} marks the best value of each column (reference rows excluded). {compared}: the Score compared "
            f"with that method; better or worse only when the Holm-adjusted Wilcoxon p &lt; {alpha} and the bootstrap "
            "CI of the difference agree. Click a column header to sort.")
    body = (f'<h2>Summary by method</h2>\n<p class="note">{note}</p>\n<table class="sortable" id="summary">'
            f"<thead><tr>{header}</tr></thead>\n" + "\n".join(bodies) + "\n</table>")
    return _page("Summary by method", body + (_per_class_table(table, per_image) if per_image is not None else ""))


def _per_class_table(table: pd.DataFrame, per_image: pd.DataFrame) -> str:
    """summary.md's "Score per class", sortable; "" for images of one class (or of none)."""
    ranked = ranked_rows(per_image)
    per_class = per_class_scores(ranked, list(table["method_id"]))
    if per_class.empty:
        return ""
    header = "".join(f"<th>{escape(h)}</th>" for h in ("Method", "Parameter/Layer", *per_class.columns))
    lines = []
    for _, row in table.iterrows():
        scores = per_class.loc[row["method_id"]]
        cells = [_cell(method_label(row)), _cell(str(row.get("variant", "")))]
        cells += [_cell(number(value), value, "num") for value in scores]
        lines.append(f'<tr data-method="{escape(row["method_id"])}">{"".join(cells)}</tr>')
    return (f'\n<h2>Score per class</h2>\n<p class="note">{escape(PER_CLASS_NOTE)}</p>\n<table class="sortable" '
            f'id="per-class"><thead><tr>{header}</tr></thead>\n<tbody class="per-class">\n' + "\n".join(lines) + "\n</tbody>\n</table>")


def per_image_page(per_image: pd.DataFrame) -> str:
    """Every (image, method) row: probabilities, AUCs, Score, normalised AUCs, localisation; 4 decimals."""
    text_columns = [c for c in ("image_id", "class_name", "method_id") if c in per_image]
    numbers = [c for c in ("top1_prob", *AUC_METRICS, "deleted_prob", "blurred_prob", *LOCALISATION_METRICS)
               if c in per_image]
    head = [c.replace("_", " ") for c in text_columns] + [HEADERS[c] for c in numbers]
    lines = []
    for row in per_image[text_columns + numbers].itertuples(index=False):
        values = row._asdict()
        cells = [_cell(str(values[c])) for c in text_columns] + [_cell(number(values[c]), values[c], "num") for c in numbers]
        lines.append(f"<tr>{''.join(cells)}</tr>")
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    images = per_image["image_id"].nunique() if "image_id" in per_image else 0
    body = (f"<h2>Per image ({images} images, {len(per_image)} rows)</h2>\n"
            '<p class="note">One row per image and method configuration; 4 decimals. Filter: '
            '<input id="filter" placeholder="image or method" size="30"> Click a column header to sort.</p>\n'
            f'<table class="sortable" id="per-image"><thead><tr>{header}</tr></thead>\n<tbody>\n'
            + "\n".join(lines) + "\n</tbody>\n</table>")
    return _page("Per-image values", body)


# ---- introduction -----------------------------------------------------------------------
def _list(items: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _names(rows: pd.DataFrame) -> str:
    return ", ".join(f"<b>{escape(m)}</b>" for m in rows["method_id"]) or "none"


def _compared(run: dict, per_image: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """What was compared: model, images, RISE N and s, Abs-CAM layers, the chance rows."""
    rise, abscam = run.get("rise", {}), run.get("abscam", {})
    images = per_image["image_id"].nunique()
    size = "x".join(str(v) for v in run.get("size", [])) or "?"
    classes = f", {run['classes']} classes" if run.get("classes") else ""
    methods = table[~table["method_id"].isin(chance_ids())]
    items = [f"Model: <b>{escape(str(run.get('model', '?')))}</b>{classes} ({escape(str(run.get('weights') or 'weights from the config'))}).",
             f"Images: <b>{images}</b> at {size} px; {len(methods)} method configurations, "
             f"{len(table) - len(methods)} reference rows ({', '.join(c for c in chance_ids() if c in set(table['method_id']))}).",
             f"RISE: N = <b>{rise.get('n_masks', '?')}</b> masks per set, grid s = <b>{rise.get('s', '?')}</b>, "
             f"binary p = {', '.join(str(p) for p in rise.get('binary', {}).get('p', [])) or 'none'}"
             + "".join(f", {kind}" for kind in ("gaussian", "perlin") if rise.get(kind, {}).get("enabled"))
             + f"; weights: {escape(str(rise.get('score', 'logits')))}.",
             f"Abs-CAM {escape(' and '.join(abscam.get('variants', [])) or 'none')} at layers "
             f"<b>{escape(', '.join(abscam.get('layers', [])) or 'none')}</b>."]
    return items


def _headline(table: pd.DataFrame, per_image: pd.DataFrame, alpha: float) -> list[str]:
    """Best by Score with its CI, who beats each chance baseline, and whether the test has power."""
    table = table.assign(is_chance=table["method_id"].isin(chance_ids()))
    contenders = table[~table["is_chance"]]
    if contenders.empty:
        return ["Only chance baselines were run; there is no best method."]
    if contenders["score"].isna().all():
        return ["No method has a Score (no deletion and insertion AUCs in the summary); there is no best method."]
    best = contenders.loc[contenders["score"].idxmax()]
    detail = ", ".join(escape(str(best[c])) for c in ("method", "variant") if best.get(c))
    items = [f'Best by Score: <b id="best-method">{escape(best["method_id"])}</b> ({detail}), '
             f"Score {escape(with_ci(best, 'score'))} ({1 - alpha:.0%} CI)."]
    if "vs_best" in table:
        tied = contenders[(contenders["method_id"] != best["method_id"]) & (contenders["vs_best"] != "worse")]
        items.append(f"Not distinguishable from the best: {_names(tied)}.")
    for chance in (c for c in chance_ids() if f"vs_{c}" in table):
        better = contenders[contenders[f"vs_{chance}"] == "better"]
        items.append(f"Better than {escape(reference_name(chance))}: {_names(better)}."
                     + escape(ground_truth_note(chance, better)))
    ranked = ranked_rows(per_image)
    image_ids = list(dict.fromkeys(ranked["image_id"]))
    facts = headline_facts(ranked, per_image, image_ids, alpha)
    warning = insensitive_warning(facts, len(image_ids))
    if warning:
        items.insert(0, f"<b>{escape(warning)}</b>")
    if note := power_note(facts, len(image_ids), alpha):
        items.append(f"<b>{escape(note)}</b>")
    deleted, first = substrate_images(facts)
    items.append(f"Baseline probabilities (mean p of the explained class): original image <b>{number(facts['top1_prob'])}</b>, "
                 f"{escape(deleted)} <b>{number(facts['deleted_prob'])}</b>, {escape(first)} "
                 f"<b>{number(facts['blurred_prob'])}</b>. Deletion curves end at the first, insertion curves start at the "
                 f"second: an AUC near these values is no better than the substrate. {escape(protocol_note(facts))}".rstrip())
    return items


def _settings(run: dict, forward: dict | None, forward_path: str | os.PathLike | None) -> list[str]:
    """The forward settings used: the measured ones (read from `forward_path`) when tune_forward ran, else the config's."""
    if not forward:
        keys = ("device", "precision", "memory_format", "batch_size", "threads")
        return ["From the config: " + ", ".join(f"{k} = <b>{escape(str(run.get(k, '?')))}</b>" for k in keys) + "."]
    shown = {k: v for k, v in forward.items() if isinstance(v, (str, int, float, bool))}
    settings = [f"Measured on this machine by <i>tune_forward</i> ({escape(str(forward_path))}): "
                + ", ".join(f"{escape(k)} = <b>{escape(str(v))}</b>" for k, v in shown.items()) + "."]
    speeds = forward.get("images_per_second", {})
    if isinstance(speeds, dict) and speeds:
        settings.append("Images/s: " + ", ".join(f"{escape(k)}: {v}" for k, v in speeds.items()) + ".")
    return settings


def introduction_fragment(table: pd.DataFrame, per_image: pd.DataFrame, run: dict, seconds: dict[str, float] | None,
                          forward: dict | None = None, *, forward_path: str | os.PathLike | None = None,
                          benchmarks: str | os.PathLike = BENCHMARK_ROOT) -> str:
    """The computed part of the report's first page, as an HTML fragment (no <html>, no script).

    `seconds`: measured seconds per stage (`plan.measure_stages` of the `benchmarks` folder, as in
    the workflow's timing table; None: no plan to read them by); `forward`: tune_forward's record, read
    from `forward_path`.
    """
    alpha = float(run.get("alpha", 0.05))
    sections = [("Headline", _list(_headline(table, per_image, alpha))),
                ("What was compared", _list(_compared(run, per_image, table))),
                ("Time per stage", _times(seconds, benchmarks)),
                ("Precision and forward settings", _list(_settings(run, forward, forward_path)))]
    return '<div id="introduction">\n' + "\n".join(f"<h2>{title}</h2>\n{html}" for title, html in sections) + "\n</div>\n"


def _times(seconds: dict[str, float] | None, benchmarks: str | os.PathLike) -> str:
    if seconds is None:
        return "<p>Not shown: no plan was given (<code>saliency-bench report --plan results/plan.json</code>).</p>"
    listed = "; ".join(f"{escape(stage)} <b>{value:.1f} s</b>" for stage, value in seconds.items())
    return (f"<p>{listed or 'no benchmark files found'}. Wall seconds of this run's jobs "
            f"({escape(str(Path(benchmarks)))}/**/*.tsv) summed per stage; jobs run in parallel, so the run took less.</p>")


def write_report_pages(summary_csv: str | os.PathLike, per_image_csv: str | os.PathLike, out_dir: str | os.PathLike, *,
                       run: dict | None = None, benchmarks: str | os.PathLike = BENCHMARK_ROOT,
                       plan: str | os.PathLike | None = None,
                       forward_settings: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write summary.html, per_image.html and introduction.html into `out_dir`; return their paths.
    `plan`: the run's plan JSON, whose stages name the benchmark files the introduction's times sum."""
    run = run or {}
    table, per_image = read_table(summary_csv), read_table(per_image_csv)
    forward = None
    if forward_settings:
        from ..runtime.tuning import read_forward_record  # imports torch: only when there is a file to read

        forward = read_forward_record(forward_settings)
    seconds = measure_stages(benchmarks, read_plan(plan)).seconds if plan else None
    pages = {"summary.html": summary_page(table, float(run.get("alpha", 0.05)), per_image),
             "per_image.html": per_image_page(per_image),
             "introduction.html": introduction_fragment(table, per_image, run, seconds, forward,
                                                       forward_path=forward_settings, benchmarks=benchmarks)}
    paths = {name: Path(out_dir) / name for name in PAGES}
    for name, text in pages.items():
        with atomic_path(paths[name]) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return paths
