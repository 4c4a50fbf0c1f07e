"""`saliency-bench aggregate` end to end on records, saliency files and evidence masks written here."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from saliency_bench.analysis.summary import annotate, normalised_auc, summarise
from saliency_bench.cli import main
from saliency_bench.data import ImageRecord
from saliency_bench.formats.image_table import write_image_table
from saliency_bench.formats.records import RECORD_COLUMNS, read_records
from saliency_bench.errors import UserError
from saliency_bench.formats.saliency import write_saliency

N_IMAGES, SIZE = 12, 56
# (method_id, method, variant, mean deletion AUC, mean insertion AUC). rise-gaussian has the
# lowest deletion, abscam-final the highest insertion and Score; the centre baseline beats them
# all and must still never be "best".
METHODS = [
    ("rise-binary-p0.5", "rise", "binary p=0.5", 0.30, 0.55),
    ("rise-gaussian", "rise", "gaussian", 0.20, 0.50),
    ("abscam-final-layer3", "abscam-final", "layer3", 0.25, 0.70),
    ("abscam-init-layer3", "abscam-init", "layer3", None, None),  # abscam-final, +-noise, 0.002 worse
    ("random", "random", "", 0.45, 0.46),
    ("centre", "centre", "", 0.15, 0.85),
]
SEED_SHIFTS = {1: 0.01, 2: -0.02}  # rise-gaussian repeats: Score shifted by these


def image_ids():
    return [f"cls{i % 2}/img{i:02d}.png" for i in range(N_IMAGES)]


def synthetic_records():
    rng = np.random.default_rng(0)
    effect = rng.uniform(-0.1, 0.1, N_IMAGES)              # shared per-image difficulty
    top1 = rng.uniform(0.7, 0.95, N_IMAGES)
    deleted = rng.uniform(0.02, 0.1, N_IMAGES)
    deleted[0] = top1[0]                                   # normalised deletion undefined here
    blurred = rng.uniform(0.1, 0.3, N_IMAGES)
    frames, aucs = [], {}
    for method_id, method, variant, deletion, insertion in METHODS:
        if deletion is None:
            wobble = np.repeat(rng.uniform(0.005, 0.02, N_IMAGES // 2), 2) * np.tile([1, -1], N_IMAGES // 2)
            aucs[method_id] = (aucs["abscam-final-layer3"][0] + wobble + 0.002, aucs["abscam-final-layer3"][1])
        else:
            aucs[method_id] = (deletion + effect + rng.normal(0, 0.01, N_IMAGES), insertion + effect + rng.normal(0, 0.01, N_IMAGES))
        frames.append(frame(method_id, method, variant, *aucs[method_id], top1, deleted, blurred))
    for repeat, shift in SEED_SHIFTS.items():
        deletion, insertion = aucs["rise-gaussian"]
        frames.append(frame(f"rise-gaussian-seed{repeat}", "rise", "gaussian", deletion, insertion + shift, top1, deleted, blurred))
    return frames


def frame(method_id, method, variant, deletion, insertion, top1, deleted, blurred):
    return pd.DataFrame({"image_id": image_ids(), "method_id": method_id, "method": method, "variant": variant,
                         "target": 1, "top1_prob": top1, "deletion_auc": deletion, "insertion_auc": insertion,
                         "deleted_prob": deleted, "blurred_prob": blurred, "constant_map": False,
                         "deletion_substrate": "zeros", "insertion_substrate": "blur", "step": 64})[list(RECORD_COLUMNS)]


def write_records(folder, frames, shards=2):
    paths = []
    for table in frames:
        for shard, part in enumerate(np.array_split(np.arange(len(table)), shards)):
            path = folder / "metrics" / table["method_id"].iloc[0] / f"shard-{shard}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            table.iloc[part].to_csv(path, index=False)
            paths.append(str(path))
    return paths


def write_maps_and_masks(folder):
    """Evidence squares (at 2x the map size), maps of abscam-final peaked on them, uniform noise for random."""
    rng = np.random.default_rng(1)
    masks = np.zeros((N_IMAGES, SIZE, SIZE), dtype=bool)
    for index, image_id in enumerate(image_ids()[:-1]):     # the last image has no evidence mask
        top, left = rng.integers(0, SIZE - 16, 2)
        masks[index, top:top + 12, left:left + 12] = True
        path = folder / "evidence" / image_id
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.kron(masks[index], np.ones((2, 2))).astype(np.uint8) * 255).save(path)
    maps = {"abscam-final-layer3": masks + 1e-3 * rng.uniform(size=masks.shape),
            "random": rng.uniform(size=masks.shape)}
    paths = []
    for method_id, saliency in maps.items():
        path = folder / "saliency" / method_id / "shard-0.h5"
        write_saliency(path, saliency, image_ids(), np.ones(N_IMAGES), np.full(N_IMAGES, 0.9), method_id=method_id,
                       method=method_id, variant="")
        paths.append(str(path))
    return paths, masks


@pytest.fixture(scope="module")
def run_aggregate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aggregate")
    frames = synthetic_records()
    records = write_records(folder, frames)
    saliency, masks = write_maps_and_masks(folder)
    write_image_table(folder / "images.csv", [ImageRecord(i, f"/data/{i}", int(i[3]), i[:4]) for i in image_ids()], 6)
    out = folder / "tables"
    code = main(["aggregate", "--records", *records, "--saliency", *saliency, "--evidence-root", str(folder / "evidence"),
                 "--images", str(folder / "images.csv"), "--bootstrap", "2000", "--seed", "3", "--out-dir", str(out)])
    assert code == 0
    return {"folder": folder, "out": out, "frames": frames, "records": records, "saliency": saliency, "masks": masks,
            "per_image": pd.read_csv(out / "per_image.csv", keep_default_na=False, na_values=[""]),
            "summary": pd.read_csv(out / "summary.csv", keep_default_na=False, na_values=[""]),
            "markdown": (out / "summary.md").read_text(encoding="utf-8")}


def test_tables_have_one_row_per_method_and_per_image_method(run_aggregate):
    summary, per_image = run_aggregate["summary"], run_aggregate["per_image"]
    assert list(summary["method_id"]) == [m[0] for m in METHODS]            # repeats are not rows; chance last
    assert len(per_image) == N_IMAGES * (len(METHODS) + len(SEED_SHIFTS))
    assert not per_image.duplicated(["image_id", "method_id"]).any()
    assert list(dict.fromkeys(per_image["image_id"])) == image_ids()          # image-table order
    assert set(per_image["class_name"]) == {"cls0", "cls1"}
    assert (summary["n_images"] == N_IMAGES).all()


def test_scores_means_and_aucs_are_consistent(run_aggregate):
    summary, per_image = run_aggregate["summary"], run_aggregate["per_image"]
    assert np.allclose(per_image["score"], per_image["insertion_auc"] - per_image["deletion_auc"])
    assert np.allclose(summary["score"], summary["insertion_auc"] - summary["deletion_auc"])
    for column in ("deletion_auc", "insertion_auc"):
        assert summary[column].between(0, 1).all() and per_image[column].between(0, 1).all()
        assert (summary[f"{column}_lo"] <= summary[column]).all() and (summary[column] <= summary[f"{column}_hi"]).all()
    written = pd.concat(run_aggregate["frames"]).groupby("method_id")["deletion_auc"].mean()
    assert np.allclose(summary.set_index("method_id")["deletion_auc"], written[summary["method_id"]])


def test_comparison_with_the_best(run_aggregate):
    summary = run_aggregate["summary"].set_index("method_id")
    best = "abscam-final-layer3"
    assert summary.at[best, "score_diff_vs_best"] == 0 and summary.at[best, "vs_best"] == "reference"
    # abscam-init differs from the best by 0.002 under symmetric noise of 0.005-0.02: no evidence.
    assert summary.at["abscam-init-layer3", "wilcoxon_p_vs_best"] > 0.2
    assert summary.at["abscam-init-layer3", "indistinguishable_from_best"]
    assert summary.at["abscam-init-layer3", "score_diff_vs_best_lo"] <= 0 <= summary.at["abscam-init-layer3", "score_diff_vs_best_hi"]
    for worse in ("rise-binary-p0.5", "rise-gaussian", "random"):                # shifted by >= 0.15 on 12 images
        assert not summary.at[worse, "indistinguishable_from_best"]
        assert summary.at[worse, "holm_p_vs_best"] < 0.05 and summary.at[worse, "score_diff_vs_best_hi"] < 0
        assert summary.at[worse, "holm_p_vs_best"] >= summary.at[worse, "wilcoxon_p_vs_best"]
    assert summary.at["rise-gaussian", "vs_random"] == "better"
    assert summary.at["rise-gaussian", "vs_centre"] == "worse"


def test_normalised_aucs_and_baseline_probabilities(run_aggregate):
    per_image, summary = run_aggregate["per_image"], run_aggregate["summary"]
    row = per_image.iloc[5]
    expected = (row["insertion_auc"] - row["blurred_prob"]) / (row["top1_prob"] - row["blurred_prob"])
    assert row["insertion_auc_norm"] == pytest.approx(expected)
    first = per_image[per_image["image_id"] == image_ids()[0]]
    assert first["deletion_auc_norm"].isna().all()                            # top1 == deleted: undefined
    assert (summary["deletion_auc_norm_undefined"] == 1).all()
    probs = pd.concat(run_aggregate["frames"]).drop_duplicates("image_id")
    assert f"fully deleted image (the mean colour) {probs['deleted_prob'].mean():.4f}" in run_aggregate["markdown"]
    assert f"insertion's first image (the blurred image) {probs['blurred_prob'].mean():.4f}" in run_aggregate["markdown"]
    assert ("Deletion replaces pixels with the mean colour (metrics.deletion_substrate: zeros), insertion starts from "
            "the blurred image (metrics.insertion_substrate: blur). Each step changes 64 pixels (metrics.step_rows rows "
            "of the image).") in run_aggregate["markdown"].splitlines()[2]


def test_normalised_auc_definition():
    values = normalised_auc(np.array([0.5, 0.9, 0.1, 0.4]), np.array([0.1, 0.1, 0.1, 0.4]), np.array([0.9, 0.9, 0.9, 0.4]))
    assert np.allclose(values[:3], [0.5, 1.0, 0.0]) and math.isnan(values[3])


def test_check_marks_sit_on_the_best_values_and_never_on_chance(run_aggregate):
    rows = [line for line in run_aggregate["markdown"].splitlines() if line.startswith("| ") and "(" in line]
    main_table = {line.split(" | ")[0][2:]: line.split(" | ") for line in rows[:len(METHODS)]}
    frames = pd.concat(run_aggregate["frames"][:len(METHODS)])
    contenders = frames[~frames["method_id"].isin(("random", "centre"))].assign(score=lambda f: f.insertion_auc - f.deletion_auc)
    means = contenders.groupby("method_id")[["deletion_auc", "insertion_auc", "score"]].mean()
    best = {2: means["deletion_auc"].min(), 3: means["insertion_auc"].max(), 4: means["score"].max()}
    expected = {column: set(means.index[means[name] == best[column]])
                for column, name in zip((2, 3, 4), ("deletion_auc", "insertion_auc", "score"))}
    # abscam-init copies abscam-final's insertion AUCs, so both hold the best insertion value.
    assert expected == {2: {"rise-gaussian"}, 3: {"abscam-final-layer3", "abscam-init-layer3"}, 4: {"abscam-final-layer3"}}
    for column, winners in expected.items():
        marked = {label.split("(")[1].rstrip(")") for label, cells in main_table.items() if "\u2713" in cells[column]}
        assert marked == winners, column
    assert "Best by Score: **abscam-final (abscam-final-layer3)" in run_aggregate["markdown"]


def test_stability_across_mask_seeds(run_aggregate):
    summary = run_aggregate["summary"].set_index("method_id")
    base = pd.concat(run_aggregate["frames"]).query("method_id == 'rise-gaussian'")
    base_score = (base["insertion_auc"] - base["deletion_auc"]).mean()
    per_seed = [base_score] + [base_score + shift for shift in SEED_SHIFTS.values()]
    assert summary.at["rise-gaussian", "n_seeds"] == 3
    assert summary.at["rise-gaussian", "score_seed_sd"] == pytest.approx(np.std(per_seed, ddof=1))
    assert summary.at["rise-gaussian", "score_seed_min"] == pytest.approx(min(per_seed))
    assert summary.at["rise-gaussian", "deletion_auc_seed_sd"] == pytest.approx(0, abs=1e-12)
    assert summary["n_seeds"].notna().sum() == 1
    assert "## Stability across RISE mask seeds" in run_aggregate["markdown"]


def test_localisation_columns(run_aggregate):
    summary = run_aggregate["summary"].set_index("method_id")
    masks = run_aggregate["masks"][:-1]
    assert summary.at["abscam-final-layer3", "pointing_game"] == 1.0
    assert summary.at["abscam-final-layer3", "energy_pointing_game"] > 0.95
    assert summary.at["abscam-final-layer3", "pointing_game_n"] == N_IMAGES - 1     # one image lacks a mask
    assert summary.at["random", "energy_pointing_game"] == pytest.approx(masks.mean(axis=(1, 2)).mean(), abs=0.01)
    assert summary.at["random", "energy_chance"] == pytest.approx(masks.mean(axis=(1, 2)).mean())
    assert math.isnan(summary.at["rise-gaussian", "pointing_game"])                  # no saliency given
    assert "## Localisation against evidence masks" in run_aggregate["markdown"]


def test_rerun_is_identical_and_without_power_is_said(run_aggregate, tmp_path):
    from saliency_bench.analysis.markdown import render_markdown

    again = tmp_path / "again"
    assert main(["aggregate", "--records", *run_aggregate["records"], "--saliency", *run_aggregate["saliency"],
                 "--evidence-root", str(run_aggregate["folder"] / "evidence"), "--images",
                 str(run_aggregate["folder"] / "images.csv"), "--bootstrap", "2000", "--seed", "3", "--out-dir", str(again)]) == 0
    # the same inputs, seed and code in the same process: byte-identical by construction
    assert (again / "summary.csv").read_bytes() == (run_aggregate["out"] / "summary.csv").read_bytes()
    assert "has no power" not in run_aggregate["markdown"]
    few = [frame.head(4) for frame in run_aggregate["frames"]]
    summary = summarise(annotate(pd.concat(few, ignore_index=True)), n_resamples=200)
    assert not summary.facts["has_power"]
    # 7 images give p = 0.016 to one test, but 4 methods and random, each compared with the best, make
    # a Holm family of 4 in which no adjusted p can fall below 4 * 0.016 = 0.0625: nothing can differ
    rows = ["abscam-final-layer3", "abscam-init-layer3", "rise-gaussian", "rise-binary-p0.5", "random"]
    seven = [frame.head(7) for frame in run_aggregate["frames"] if frame["method_id"].iloc[0] in rows]
    summary = summarise(annotate(pd.concat(seven, ignore_index=True)), n_resamples=200)
    assert summary.facts["comparisons"] == 4 and not summary.facts["has_power"]
    assert (summary.table["holm_p_vs_best"].dropna() >= 0.0625 - 1e-12).all()
    assert ("- With 7 images and 4 comparisons in each Holm family the smallest possible Holm-adjusted Wilcoxon p is "
            "0.062 >= 0.05, so no method can be shown to differ; use at least 8 images.") in render_markdown(summary)


def test_score_per_class_is_the_mean_of_each_class_s_images(run_aggregate):
    """Where a method fails on one class only: the per-class means, beside the overall table."""
    per_image, markdown = run_aggregate["per_image"], run_aggregate["markdown"]
    section = markdown.split("## Score per class")[1].split("##")[0]
    assert "| Method | Parameter/Layer | cls0 (n=6) | cls1 (n=6) |" in section
    ranked = per_image[per_image["repeat"] == 0]
    means = ranked.groupby(["method_id", "class_name"])["score"].mean()
    for method_id in dict.fromkeys(ranked["method_id"]):
        cells = [line for line in section.splitlines() if f"({method_id})" in line]
        assert len(cells) == 1 and cells[0].endswith(f"| {means[method_id, 'cls0']:.4f} | {means[method_id, 'cls1']:.4f} |")
    one_class = ranked.assign(class_name="cls0")
    assert summarise(one_class, n_resamples=50).per_class.empty  # nothing to break down


def test_a_model_that_ignores_the_substrates_is_warned_about_first(run_aggregate):
    """An untrained head gives the same p to every input: flat curves, AUCs that rank nothing. The
    summary said so only inside its baseline section, as 'n/a' normalised AUCs."""
    from saliency_bench.analysis.markdown import render_markdown

    assert "Warning" not in run_aggregate["markdown"]  # image 0: deleted p = top1, blurred p differs
    flat = []
    for frame in run_aggregate["frames"]:
        frame = frame.copy()
        for column in ("deleted_prob", "blurred_prob"):
            frame.loc[:2, column] = frame.loc[:2, "top1_prob"]
        flat.append(frame)
    conclusions = render_markdown(summarise(annotate(pd.concat(flat, ignore_index=True)), n_resamples=200)).split(
        "## Conclusions")[1]
    assert conclusions.startswith(f"\n\n- **Warning: for 3 of {N_IMAGES} images the model gives the explained class the "
                                  "same probability on the image, the fully deleted image (the mean colour) and the "
                                  "insertion's first image (the blurred image), so no "
                                  "saliency map can change")
    for frame in flat:
        frame["deleted_prob"] = frame["blurred_prob"] = frame["top1_prob"]
    summary = summarise(annotate(pd.concat(flat, ignore_index=True)), n_resamples=200)
    assert "- **Warning: for every image the model" in render_markdown(summary)


def test_bad_inputs_fail_with_one_line_and_no_output(run_aggregate, tmp_path, capsys):
    records = run_aggregate["records"]
    out = tmp_path / "out"
    assert main(["aggregate", "--records", records[0], records[0], "--out-dir", str(out)]) == 2
    assert "appears twice" in capsys.readouterr().err
    seed_only = [p for p in records if "seed1" in p]
    assert main(["aggregate", "--records", *seed_only, "--out-dir", str(out)]) == 2
    assert "pass the base configuration's records" in capsys.readouterr().err
    broken = tmp_path / "broken.csv"
    pd.read_csv(records[0]).drop(columns="deleted_prob").to_csv(broken, index=False)
    assert main(["aggregate", "--records", str(broken), "--out-dir", str(out)]) == 2
    assert "lacks the columns deleted_prob" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["aggregate", "--records", *records, "--saliency", *run_aggregate["saliency"],
                 "--evidence-root", str(tmp_path / "empty"), "--out-dir", str(out)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]  # progress bars aside
    assert len(errors) == 1 and "no evidence mask found" in errors[0]
    assert not out.exists() or not any(out.iterdir())


def test_records_of_other_substrates_are_named_and_never_mixed(run_aggregate, tmp_path, capsys):
    """AUCs measured with different substrates are not comparable: the tables say which ones they used
    (the summary once called every deleted image mean-coloured), and records that mix them are refused."""
    frames = [frame.assign(deletion_substrate="blur", insertion_substrate="zeros") for frame in synthetic_records()]
    out = tmp_path / "blur"
    assert main(["aggregate", "--records", *write_records(tmp_path / "b", frames), "--bootstrap", "200",
                 "--out-dir", str(out)]) == 0
    markdown = (out / "summary.md").read_text()
    assert ("Deletion replaces pixels with the blurred image (metrics.deletion_substrate: blur), insertion starts "
            "from the mean colour (metrics.insertion_substrate: zeros).") in markdown
    assert "fully deleted image (the blurred image) " in markdown and "insertion's first image (the mean colour) " in markdown
    assert "mean colour) image" not in markdown and "fully blurred" not in markdown
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["deletion_substrate"]) == {"blur"} and set(summary["insertion_substrate"]) == {"zeros"}

    mixed = write_records(tmp_path / "m", synthetic_records()[:2] + frames[2:3])
    assert main(["aggregate", "--records", *mixed, "--out-dir", str(tmp_path / "mixed")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the records mix deletion substrates (blur, zeros)" in error and "metrics.deletion_substrate" in error
    steps = write_records(tmp_path / "s", frames[:2] + [frames[2].assign(step=128)])  # and steps: the curves' resolution
    assert main(["aggregate", "--records", *steps, "--out-dir", str(tmp_path / "mixed")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the records mix steps (64, 128)" in error and "one metrics.step_rows" in error
    assert not (tmp_path / "mixed").exists()
    for value, message in (("", "column insertion_substrate of the records has empty values"),
                           ("sepia", "unknown insertion substrate 'sepia'")):
        odd = write_records(tmp_path / f"records-{value}", [frame.assign(insertion_substrate=value) for frame in frames])
        assert main(["aggregate", "--records", *odd, "--out-dir", str(tmp_path / "odd")]) == 2
        assert message in capsys.readouterr().err
    odd = write_records(tmp_path / "records-step", [frame.assign(step=0.5) for frame in frames])
    assert main(["aggregate", "--records", *odd, "--out-dir", str(tmp_path / "odd")]) == 2
    assert "column step of the records holds values that are no whole number of pixels" in capsys.readouterr().err
    assert not (tmp_path / "odd").exists()


def test_read_records_rejects_non_numeric_aucs(tmp_path):
    table = synthetic_records()[0].astype({"deletion_auc": object})
    table.loc[0, "deletion_auc"] = "oops"
    table.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(UserError, match="deletion_auc"):
        read_records([tmp_path / "r.csv"])
    table.loc[0, "deletion_auc"] = 1.5
    table.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(UserError, match="outside"):
        read_records([tmp_path / "r.csv"])


def test_the_ground_truth_row_is_a_reference_of_its_own(run_aggregate):
    """`evidence` is never best, is named as the ground truth, and is tested in a Holm family of its
    own: adding it leaves every other row's adjusted p and verdict as they were."""
    from saliency_bench.analysis.markdown import render_markdown

    frames = run_aggregate["frames"]
    before = summarise(annotate(pd.concat(frames, ignore_index=True)), n_resamples=200)
    rise = next(f for f in frames if f["method_id"].iloc[0] == "rise-binary-p0.5")
    # a ground truth that scores above every method (as centre does): still never best
    evidence = rise.assign(method_id="evidence", method="evidence", variant="ground truth",
                           deletion_auc=rise["deletion_auc"] - 0.2, insertion_auc=rise["insertion_auc"] + 0.4)
    after = summarise(annotate(pd.concat([*frames, evidence], ignore_index=True)), n_resamples=200)
    assert after.best_id == before.best_id == "abscam-final-layer3"
    table = after.table.set_index("method_id")
    old = before.table.set_index("method_id")
    for reference in ("best", "random", "centre"):
        for column in (f"holm_p_vs_{reference}", f"vs_{reference}"):
            pd.testing.assert_series_equal(table.loc[old.index, column], old[column])
    assert table.at["evidence", "is_chance"] and table.loc[old.index, "vs_evidence"].eq("worse").all()
    # alone in its family: its Holm p is its own Wilcoxon p
    assert table.at["evidence", "holm_p_vs_best"] == table.at["evidence", "wilcoxon_p_vs_best"]
    markdown = render_markdown(after)
    assert "| evidence (evidence) - ground truth | ground truth |" in markdown
    assert "- Better than the evidence map (ground truth): none; not better than evidence:" in markdown
    assert "a map of exactly the evidence scores lower" not in markdown  # said only where a method beats it
    evidence["insertion_auc"] = rise["insertion_auc"] - 0.3
    markdown = render_markdown(summarise(annotate(pd.concat([*frames, evidence], ignore_index=True)), n_resamples=200))
    assert "For these a map of exactly the evidence scores lower, so the Score rewards pixels outside" in markdown
