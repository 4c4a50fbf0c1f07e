"""Malformed input files (truncated, binary, wrong columns or types) are a one-line UserError
naming the file and the fix, never a traceback; each case writes the real file in tmp_path."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from saliency_bench import UserError
from saliency_bench.data import ImageRecord
from saliency_bench.formats.image_table import read_image_table, write_image_table
from saliency_bench.formats.saliency import read_params, read_rows, read_saliency, write_saliency
from saliency_bench.formats.tables import read_table
from saliency_bench.plan import measure_stages, shard_sizes
from saliency_bench.runtime.tuning import read_forward_settings
from cli_helpers import one_line_error

BINARY = bytes(range(256)) * 4  # not UTF-8


def write_table(path: Path, n: int = 4, per_job: int = 2) -> Path:
    write_image_table(path, [ImageRecord(f"c/{i}.png", f"/data/c/{i}.png", 0, "c") for i in range(n)], per_job)
    return path


def write_h5(path: Path) -> Path:
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", data=np.zeros(3))
    return path


# ---- image table ------------------------------------------------------------------------------
def bad_tables(tmp_path: Path) -> dict[str, Path]:
    good = write_table(tmp_path / "good.csv").read_text()
    tables = {"header": "foo,bar\n1,2\n", "label": good.replace("/data/c/1.png,0,", "/data/c/1.png,zero,"),
              "shard": good.replace(",c,1\n", ",c,zero\n", 1), "truncated": good[:-12], "long row": good + "a,b,0,c,1,extra\n",
              "empty": "", "no shard column": "image_id,path,label,class_name\nc/0.png,/data/c/0.png,0,c\n"}
    paths = {}
    for name, text in tables.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.csv"
        paths[name].write_text(text)
    paths["binary"] = tmp_path / "binary.csv"
    paths["binary"].write_bytes(BINARY)
    paths["hdf5"] = write_h5(tmp_path / "saliency.h5")
    return paths


def test_a_bad_image_table_is_one_user_error_naming_the_file(tmp_path):
    for name, path in bad_tables(tmp_path).items():
        for shard in (None, 0):
            with pytest.raises(UserError, match="recreate it with `saliency-bench images`") as raised:
                read_image_table(path, shard)
            assert str(path) in str(raised.value) and "\n" not in str(raised.value), name
        with pytest.raises(UserError, match="recreate it with `saliency-bench images`"):
            shard_sizes(path)  # the plan reads the shards through the same reader


def test_the_plan_reads_shards_as_the_stages_do(tmp_path):
    assert shard_sizes(write_table(tmp_path / "images.csv", n=5, per_job=2)) == [2, 2, 1]
    assert read_image_table(tmp_path / "images.csv", 2) == [ImageRecord("c/4.png", "/data/c/4.png", 0, "c")]
    with pytest.raises(UserError, match="image table not found"):
        shard_sizes(tmp_path / "missing.csv")


def test_a_bad_image_table_on_the_command_line(tmp_path, capsys):
    paths = bad_tables(tmp_path)
    for name in ("header", "truncated", "binary", "hdf5"):
        one_line_error(["figures", "masks", "--masks", "m.h5", "--images", str(paths[name]), "--out-dir", str(tmp_path / "out")],
                       capsys, str(paths[name]), "saliency-bench images")


# ---- JSON side files ---------------------------------------------------------------------------
BAD_JSON = {"invalid": ("{oops", "is not valid JSON"), "empty": ("", "is not valid JSON"),
            "list": ("[1, 2]", "not a JSON object"), "number": ("3", "not a JSON object")}


@pytest.mark.parametrize("content, message", [*BAD_JSON.values(), ("{}", "rate_source and stages"),
                                              ('{"rate": 1, "rate_source": "x", "stages": [3]}', "rate_source and stages"),
                                              # a plan of an earlier version: no benchmark files named
                                              ('{"rate": 1, "rate_source": "x", "stages": [{"name": "masks", "jobs": 1, '
                                               '"seconds": 2.0}]}', "seconds and benchmarks")])
def test_timing_with_a_bad_plan(tmp_path, capsys, content, message):
    plan = tmp_path / "plan.json"
    plan.write_text(content)
    out = tmp_path / "timing.md"
    one_line_error(["timing", "--plan", str(plan), "--benchmarks", str(tmp_path), "--out", str(out)], capsys,
                   str(plan), message, "rerun `saliency-bench plan`")
    assert not out.exists()


def bad_json_files(tmp_path: Path) -> list[tuple[Path, str]]:
    files = []
    for name, (content, message) in {**BAD_JSON, "no keys": ("{}", "it needs memory_format and batch_size")}.items():
        path = tmp_path / f"{name.replace(' ', '_')}.json"
        path.write_text(content)
        files.append((path, message))
    (tmp_path / "binary.json").write_bytes(BINARY)
    (tmp_path / "folder.json").mkdir()
    return files + [(tmp_path / "binary.json", "not UTF-8"), (tmp_path / "folder.json", "is a folder"),
                    (tmp_path / "missing.json", "does not exist")]


def test_explain_reads_a_bad_forward_settings_file_as_one_error(tmp_path):
    for path, message in bad_json_files(tmp_path):
        with pytest.raises(UserError, match=message) as raised:
            read_forward_settings(path)  # what explain, evaluate and sanity call for --forward-settings
        assert str(path) in str(raised.value) and "saliency-bench tune-forward" in str(raised.value)


def test_plan_with_a_bad_forward_settings_file(tmp_path, capsys):
    for path, message in bad_json_files(tmp_path):
        out = tmp_path / "plan.md"
        one_line_error(["plan", "--config", "{}", "--num-classes", "2", "--images", str(tmp_path / "images.csv"),
                        "--forward-settings", str(path), "--out", str(out), "--out-json", str(tmp_path / "plan.json")],
                       capsys, str(path), message, "saliency-bench tune-forward")
        assert not out.exists()


def write_study_tables(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(exist_ok=True)
    summary, per_image = folder / "summary.csv", folder / "per_image.csv"
    summary.write_text("method_id,deletion_auc,insertion_auc,score\nrise,0.1,0.6,0.5\n")
    per_image.write_text("image_id,method_id,deletion_auc,insertion_auc,score\na.png,rise,0.1,0.6,0.5\n")
    return summary, per_image


def test_report_with_a_bad_forward_settings_file(tmp_path, capsys):
    summary, per_image = write_study_tables(tmp_path / "tables")
    for path, message in bad_json_files(tmp_path):
        one_line_error(["report", "--summary", str(summary), "--per-image", str(per_image), "--benchmarks", str(tmp_path),
                        "--forward-settings", str(path), "--out-dir", str(tmp_path / "pages")], capsys, str(path), message)
        assert not (tmp_path / "pages").exists()


# ---- saliency files ----------------------------------------------------------------------------
def saliency_file(path: Path, n: int = 2) -> Path:
    write_saliency(path, np.zeros((n, 4, 4)), [f"c/{i}.png" for i in range(n)], np.zeros(n), np.full(n, 0.5),
                   method_id="rise", method="rise", variant="binary", params={"precision": "fp32"})
    return path


def test_saliency_that_is_not_finite(tmp_path, capsys):
    """Every reader of saliency files refuses NaN maps, not only evaluate (localisation, figures)."""
    path = saliency_file(tmp_path / "saliency.h5", n=3)
    with h5py.File(path, "a") as handle:
        handle["saliency"][1, 2, 2] = np.nan
    for read in (read_saliency, lambda p: read_rows(p, [2, 1])):
        with pytest.raises(UserError, match=r"saliency of method rise image c/1.png holds NaN or infinite values"):
            read(path)
    assert read_rows(path, [0, 2]).saliency.shape == (2, 4, 4)  # the finite rows stay readable
    images = write_table(tmp_path / "images.csv", n=3)
    one_line_error(["figures", "saliency", "--saliency", str(path), "--images", str(images), "--out-dir",
                    str(tmp_path / "figures")], capsys, str(path), "c/1.png", "NaN")


def test_saliency_params_that_are_not_json(tmp_path):
    path = saliency_file(tmp_path / "saliency.h5")
    for params in ("{oops", "[1]"):
        with h5py.File(path, "a") as handle:
            handle.attrs["params"] = params
        for read in (read_params, read_saliency, lambda p: read_rows(p, [1])):
            with pytest.raises(UserError, match="rerun `saliency-bench explain`") as raised:
                read(path)
            assert str(path) in str(raised.value)


def test_a_saliency_dataset_of_the_wrong_shape(tmp_path, capsys):
    path = saliency_file(tmp_path / "saliency.h5")
    with h5py.File(path, "a") as handle:
        del handle["saliency"]
        handle["saliency"] = np.zeros((2, 4), np.float32)  # one row per image, not an (H, W) map
    for read in (read_saliency, lambda p: read_rows(p, [1, 0]), lambda p: read_rows(p, [])):
        with pytest.raises(UserError, match=r"saliency \(2, 4\) is not one \(H, W\) map per image id \(2\)"):
            read(path)
    # figures reads the maps row by row (aggregate and evaluate the whole file: read_saliency above)
    images = write_table(tmp_path / "images.csv", n=2)
    one_line_error(["figures", "saliency", "--saliency", str(path), "--images", str(images), "--out-dir",
                    str(tmp_path / "figures")], capsys, str(path), "saliency-bench explain")


# ---- benchmarks and tables -----------------------------------------------------------------------
@pytest.mark.parametrize("content", ["s\th:m:s\nabc\t0:00:01\n", "x\ty\n1\t2\n", "s\th:m:s\n\t0:00:01\n", None,
                                     "s\th:m:s\nnan\t0:00:01\n", "s\th:m:s\n-3\t0:00:01\n"])
def test_a_bad_benchmark_file(tmp_path, content):
    bad = tmp_path / "benchmarks" / "evaluate" / "rise" / "0.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(BINARY) if content is None else bad.write_text(content)
    (tmp_path / "benchmarks" / "masks").mkdir()
    (tmp_path / "benchmarks" / "masks" / "binary.tsv").write_text("s\th:m:s\n2.5\t0:00:02\n")
    plan = {"stages": [{"name": "masks", "benchmarks": ["masks/binary.tsv"]},
                       {"name": "deletion/insertion", "benchmarks": ["evaluate/rise/0.tsv"]}]}
    with pytest.raises(UserError, match="delete it and rerun its rule") as raised:
        measure_stages(tmp_path / "benchmarks", plan)
    assert str(bad) in str(raised.value)
    bad.unlink()
    measured = measure_stages(tmp_path / "benchmarks", plan)
    assert (measured.seconds, measured.peak_mb, measured.left_out) == ({"masks": 2.5}, {}, [])


def test_timing_with_a_bad_benchmark_file(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"rate": 10.0, "rate_source": "test",
                                "stages": [{"name": "masks", "jobs": 1, "seconds": 2.0, "benchmarks": ["masks.tsv"]}]}))
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "masks.tsv").write_text("s\th:m:s\nslow\t0:00:02\n")
    one_line_error(["timing", "--plan", str(plan), "--benchmarks", str(tmp_path / "benchmarks"), "--out", str(tmp_path / "t.md")],
                   capsys, "masks.tsv", "delete it and rerun its rule")


def test_a_summary_with_a_text_in_a_numeric_column(tmp_path, capsys):
    summary, per_image = write_study_tables(tmp_path / "tables")
    summary.write_text("method_id,deletion_auc,insertion_auc,score,score_lo\nrise,abc,0.6,0.5,\ncentre,0.2,0.5,0.3,\n")
    with pytest.raises(UserError, match="column deletion_auc holds 'abc', not a number"):
        read_table(summary)
    one_line_error(["figures", "summary", "--summary", str(summary), "--out", str(tmp_path / "summary.png")], capsys,
                   str(summary), "deletion_auc", "rerun `saliency-bench aggregate`")
    one_line_error(["report", "--summary", str(summary), "--per-image", str(per_image), "--benchmarks", str(tmp_path),
                    "--out-dir", str(tmp_path / "pages")], capsys, str(summary), "deletion_auc")
    summary.write_text("method_id,deletion_auc,insertion_auc,score,score_lo\nrise,0.1,0.6,0.5,\n")
    assert read_table(summary)["score_lo"].isna().all()  # empty values stay allowed


# ---- text files ------------------------------------------------------------------------------------
def test_text_files_that_are_not_utf8(tmp_path, capsys):
    binary = tmp_path / "binary.txt"
    binary.write_bytes(BINARY)
    one_line_error(["images", "--file-list", str(binary), "--out", str(tmp_path / "images.csv")], capsys,
                   str(binary), "not UTF-8", "one image path per line")
    images = write_table(tmp_path / "images.csv", n=2)
    one_line_error(["figures", "saliency", "--saliency", str(saliency_file(tmp_path / "s.h5")), "--images", str(images),
                    "--class-names", str(binary), "--out-dir", str(tmp_path / "figures")], capsys,
                   str(binary), "not UTF-8", "one class name per line")
    undecodable = b"\xff\xfe".decode("utf-8", errors="surrogateescape")  # such bytes typed on the command line
    one_line_error(["figures", "saliency", "--saliency", str(saliency_file(tmp_path / "s.h5")), "--images", str(images),
                    "--class-names", undecodable, "bees", "--out-dir", str(tmp_path / "figures")], capsys,
                   "--class-names", "is not UTF-8 text")


HOLD_OPEN = "import h5py, sys; handle = h5py.File(sys.argv[1], sys.argv[2]); print('open', flush=True); sys.stdin.read()"


@contextlib.contextmanager
def held_open(path: Path, mode: str = "a"):
    """Another process holding `path` open in HDF5 (and so its lock) while the block runs."""
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(path), mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        yield
    finally:
        holder.communicate("")  # closing its stdin ends it


def test_an_hdf5_file_that_cannot_be_locked_is_one_line_with_the_fix(tmp_path):
    """Where the file system has no locks (some NFS, Lustre, GPFS mounts) every HDF5 open fails: reading
    said the file was no mask file and to rerun its stage, writing gave a traceback. Another process
    holding the lock fails the same way, here."""
    import os

    from saliency_bench.formats.curves import read_curves, write_curves

    def write(path):
        write_curves(path, ["a.png"], np.ones((1, 3)), np.ones((1, 3)), method_id="random", step=8,
                     deletion_substrate="zeros", insertion_substrate="blur")

    written = tmp_path / "curves.h5"
    write(written)
    fix = r"another process has it open, .* set HDF5_USE_FILE_LOCKING=FALSE in the environment \(README, Cluster\)$"
    with held_open(written), pytest.raises(UserError, match=rf"^HDF5 cannot lock {written}: {fix}"):
        read_curves(written)
    assert read_curves(written)[0] == "random"  # the lock released, the same file reads

    out = tmp_path / "new.h5"
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")  # where `atomic_path` writes it first
    write(temporary)
    with held_open(temporary), pytest.raises(UserError, match=rf"^HDF5 cannot lock .*{temporary.name}: {fix}"):
        write(out)
    assert not out.exists() and not temporary.exists()
