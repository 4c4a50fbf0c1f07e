"""The report a reader opens: HTML tables and introduction from real aggregate output, and the
Snakemake report of the tiny workflow run driven in headless Chromium."""
from __future__ import annotations

import json
import re
import shutil
import time
from html.parser import HTMLParser

import pandas as pd
import pytest

from saliency_bench.analysis.summary import CHECK
from saliency_bench.analysis.markdown import best_values
from saliency_bench.cli import main
from saliency_bench.report.html import write_report_pages
from test_aggregate import synthetic_records, write_records
from workflow_helpers import snakemake

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


class Rows(HTMLParser):
    """Rows of each <tbody> as lists of cell texts, keyed by the tbody's class."""

    def __init__(self):
        super().__init__()
        self.bodies: dict[str, list[list[str]]] = {}
        self.body = self.row = self.cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self.body = self.bodies.setdefault(dict(attrs).get("class", ""), [])
        elif tag == "tr" and self.body is not None:
            self.row = []
        elif tag == "td" and self.row is not None:
            self.cell = ""

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

    def handle_endtag(self, tag):
        if tag == "td" and self.row is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.body.append(self.row)
            self.row = None


def parse_rows(html: str) -> dict[str, list[list[str]]]:
    parser = Rows()
    parser.feed(html)
    return parser.bodies


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    assert main(["aggregate", "--records", *write_records(folder, synthetic_records()), "--bootstrap", "500",
                 "--out-dir", str(folder / "tables")]) == 0
    bench = folder / "benchmarks" / "explain" / "rise-gaussian"
    bench.mkdir(parents=True)
    (bench / "shard-0.tsv").write_text("s\th:m:s\n12.5\t0:00:12\n")
    (bench / "shard-1.tsv").write_text("s\th:m:s\n40.0\t0:00:40\n")  # a shard the plan does not have: left out
    plan = folder / "plan.json"
    plan.write_text(json.dumps({"rate": 10.0, "rate_source": "test", "stages": [
        {"name": "rise", "jobs": 1, "seconds": 10.0, "benchmarks": ["explain/rise-gaussian/shard-0.tsv"]}]}))
    paths = write_report_pages(folder / "tables" / "summary.csv", folder / "tables" / "per_image.csv", folder / "pages",
                               run={"model": "resnet18", "classes": 2, "size": [64, 64], "alpha": 0.05,
                                    "rise": {"n_masks": 16, "s": 8, "binary": {"p": [0.5]}},
                                    "abscam": {"layers": ["layer3"], "variants": ["final"]}, "precision": "fp32"},
                               benchmarks=folder / "benchmarks", plan=plan)
    summary = pd.read_csv(folder / "tables" / "summary.csv", keep_default_na=False, na_values=[""])
    return {name: path.read_text(encoding="utf-8") for name, path in paths.items()} | {"table": summary, "folder": folder}


def test_summary_page_has_every_method_chance_apart_and_marks_the_best(pages):
    table, bodies = pages["table"], parse_rows(pages["summary.html"])
    methods, chance = bodies["methods"], [row for row in bodies["chance"] if len(row) > 1]
    assert len(methods) + len(chance) == len(table)
    assert {re.search(r"\((.+?)\)", row[0])[1] for row in chance} == {"random", "centre"}
    contenders = table[~table["method_id"].isin(["random", "centre"])]
    best = contenders.loc[contenders["score"].idxmax()]
    best_row = next(row for row in methods if f"({best['method_id']})" in row[0])
    assert best_row[4] == f"{best['score']:.4f} [{best['score_lo']:.4f}, {best['score_hi']:.4f}] {CHECK}"
    assert best_row[6] == "best"  # the verdict column vs best
    marked = sum((contenders[m] == best_value).sum() for m, best_value in best_values(table).items())
    assert sum(CHECK in cell for row in methods + chance for cell in row) == marked >= 3
    assert all(CHECK not in cell for row in chance for cell in row)
    assert "<script>" in pages["summary.html"] and "http" not in pages["summary.html"].split("<body>")[1]


def test_per_image_page_has_one_row_per_image_and_method(pages, tmp_path):
    rows = parse_rows(pages["per_image.html"])[""]
    per_image = pd.read_csv(pages["folder"] / "tables" / "per_image.csv")
    assert len(rows) == len(per_image) > 0
    assert [row[0] for row in rows] == per_image["image_id"].tolist()
    assert all(re.fullmatch(r"-?\d\.\d{4}|n/a", cell) for row in rows for cell in row[2:])


def test_introduction_states_the_run_and_the_headline(pages):
    html, table = pages["introduction.html"], pages["table"]
    contenders = table[~table["method_id"].isin(["random", "centre"])]
    best = contenders.loc[contenders["score"].idxmax()]
    assert f'<b id="best-method">{best["method_id"]}</b>' in html
    assert f"{best['score']:.4f} [{best['score_lo']:.4f}, {best['score_hi']:.4f}]" in html
    assert "N = <b>16</b>" in html and "s = <b>8</b>" in html and "layer3" in html
    assert "Better than the random baseline" in html
    assert "fully deleted image (the mean colour) <b>" in html and "insertion&#x27;s first image (the blurred image) <b>" in html
    assert "(metrics.deletion_substrate: zeros)" in html
    assert "rise <b>12.5 s</b>. Wall seconds" in html and "From the config:" in html  # shard 1 left out
    assert f"({pages['folder'] / 'benchmarks'}/**/*.tsv)" in html  # the folder actually read


def test_introduction_names_the_forward_settings_file_it_read(pages):
    folder = pages["folder"]
    record = folder / "tuned" / "forward.json"
    record.parent.mkdir()
    record.write_text(json.dumps({"memory_format": "channels_last", "batch_size": 8, "images_per_second": {"channels_last 8": 50.0}}))
    paths = write_report_pages(folder / "tables" / "summary.csv", folder / "tables" / "per_image.csv", folder / "tuned",
                               forward_settings=record, benchmarks=folder / "benchmarks")
    html = paths["introduction.html"].read_text(encoding="utf-8")
    assert f"<i>tune_forward</i> ({record}):" in html and "batch_size = <b>8</b>" in html
    assert "Not shown: no plan was given" in html  # without the plan's benchmark files no time is summed


def test_a_summary_without_any_score_has_no_best_method(pages, tmp_path):
    table = pd.read_csv(pages["folder"] / "tables" / "summary.csv")
    table[[c for c in table if c.startswith(("deletion_auc", "insertion_auc", "score"))]] = float("nan")
    table.to_csv(tmp_path / "summary.csv", index=False)
    paths = write_report_pages(tmp_path / "summary.csv", pages["folder"] / "tables" / "per_image.csv", tmp_path / "pages")
    assert "No method has a Score" in paths["introduction.html"].read_text(encoding="utf-8")


def test_a_model_that_ignores_the_substrates_heads_the_introduction(pages, tmp_path):
    per_image = pd.read_csv(pages["folder"] / "tables" / "per_image.csv")
    assert "Warning" not in pages["introduction.html"]
    per_image["deleted_prob"] = per_image["blurred_prob"] = per_image["top1_prob"]
    per_image.to_csv(tmp_path / "per_image.csv", index=False)
    paths = write_report_pages(pages["folder"] / "tables" / "summary.csv", tmp_path / "per_image.csv", tmp_path / "pages")
    html = paths["introduction.html"].read_text(encoding="utf-8")
    assert '<li><b>Warning: for every image the model gives the explained class the same probability' in html


def test_report_cli_bad_run_json_is_one_line(pages, tmp_path, capsys):
    assert main(["report", "--summary", "x.csv", "--per-image", "y.csv", "--run", "{oops", "--out-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "--run is not valid JSON" in error and "\n" not in error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("run, message", [
    ('{"alpha": "no"}', "alpha must be a number between 0 and 1"), ('{"alpha": null}', "alpha must be a number"),
    ('{"alpha": 1.5}', "alpha must be a number"), ('{"rise": 5}', "rise and abscam must be JSON objects"),
    ('{"abscam": "x"}', "rise and abscam must be JSON objects"), ('{"abscam": {"layers": 3}}', "abscam.layers must be a list"),
    ('{"abscam": {"layers": [3]}}', "abscam.layers must be a list of names"), ('{"rise": {"binary": {"p": 0.5}}}', "rise.binary.p a list"),
    ('{"size": 224}', "size must be a list"), ("[1]", "--run is not a JSON object"),
])
def test_report_cli_run_facts_of_the_wrong_type_are_one_line(pages, tmp_path, capsys, run, message):
    tables = pages["folder"] / "tables"
    out = tmp_path / "pages"
    assert main(["report", "--summary", str(tables / "summary.csv"), "--per-image", str(tables / "per_image.csv"),
                 "--run", run, "--benchmarks", str(pages["folder"] / "benchmarks"), "--out-dir", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("saliency-bench report: error: --run ") and message in error and "\n" not in error
    assert not out.exists()


# ---- the real report in a real browser -------------------------------------------------------
@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver: run scripts/install-browser.sh")
def test_report_opens_in_chromium(tiny_run, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.monotonic()
    result = snakemake(tiny_run, "--report", "results/report.html", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,720"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        driver.get((tiny_run / "results" / "report.html").as_uri())
        wait = WebDriverWait(driver, 30)
        best = wait.until(lambda d: d.find_elements(By.ID, "best-method"))[0].text
        summary = pd.read_csv(tiny_run / "results/tables/summary.csv").set_index("method_id")
        assert best == summary[~summary["is_chance"]]["score"].idxmax()  # reference rows are never best
        driver.save_screenshot(str(tmp_path / "introduction.png"))
        for text in ("Summary", "Comparison"):  # the menu: category, subcategory
            wait.until(lambda d: d.find_elements(By.XPATH, f"//*[normalize-space(text())='{text}']"))[0].click()
        view = "//tr[td[normalize-space()='Summary by method (sortable table)']]/td[last()]//a"  # the row's eye button
        wait.until(lambda d: d.find_elements(By.XPATH, view))[0].click()
        wait.until(lambda d: d.find_elements(By.TAG_NAME, "iframe"))
        driver.switch_to.frame(driver.find_element(By.TAG_NAME, "iframe"))
        rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#summary tbody tr[data-method]"))
        assert {row.get_attribute("data-method") for row in rows} == set(summary.index)
        assert all(row.is_displayed() for row in rows[:3])
        driver.switch_to.default_content()
        driver.save_screenshot(str(tmp_path / "summary.png"))
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()
    print(f"report built and checked in Chromium in {time.monotonic() - started:.1f} s; screenshots in {tmp_path}")


def test_summary_page_gives_the_score_per_class_as_summary_md_does(pages):
    """summary.md's "Score per class" was not in the report; images of one class give no table."""
    from saliency_bench.report.html import summary_page

    folder = pages["folder"]
    per_image = pd.read_csv(folder / "tables" / "per_image.csv")
    table = pd.read_csv(folder / "tables" / "summary.csv", keep_default_na=False, na_values=[""])
    assert 'id="per-class"' not in pages["summary.html"]  # no class names in this run
    labelled = per_image.assign(class_name=per_image["image_id"].str.split("/").str[0])
    rows = parse_rows(summary_page(table, per_image=labelled))["per-class"]
    ranked = labelled[labelled["repeat"] == 0]
    for row, method_id in zip(rows, table["method_id"]):
        assert f"({method_id})" in row[0]
        mine = ranked[ranked["method_id"] == method_id]
        expected = [mine[mine["class_name"] == name]["score"].mean() for name in ("cls0", "cls1")]
        assert row[2:] == [f"{value:.4f}" for value in expected]
    assert len(rows) == len(table)
    assert 'id="per-class"' not in summary_page(table, per_image=labelled.assign(class_name="cls0"))


def test_the_introduction_says_what_a_method_above_the_ground_truth_means():
    from saliency_bench.analysis.summary import annotate, summarise
    from saliency_bench.report.html import introduction_fragment

    frames = synthetic_records()
    rise = next(f for f in frames if f["method_id"].iloc[0] == "rise-binary-p0.5")
    sentence = "For these a map of exactly the evidence scores lower, so the Score rewards pixels outside the evidence"
    for shift, said in ((0.4, False), (-0.4, True)):  # the ground truth above every method, then below them
        evidence = rise.assign(method_id="evidence", method="evidence", variant="ground truth",
                               insertion_auc=rise["insertion_auc"] + shift)
        per_image = annotate(pd.concat([*frames, evidence], ignore_index=True))
        html = introduction_fragment(summarise(per_image, n_resamples=200).table, per_image, {}, None)
        assert "Better than the evidence map (ground truth): " in html and (sentence in html) == said
