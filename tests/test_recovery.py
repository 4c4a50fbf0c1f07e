"""Crash recovery: a run killed with SIGKILL mid-way (Snakemake and every job) resumes with
`snakemake --unlock` and the same command; only unfinished jobs run again, and the tables and
saliency files are byte-identical to those of an uninterrupted run."""
from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from workflow_helpers import REPO, SNAKEMAKE, make_workdir, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

# The tables and the files they come from; timing.md holds measured seconds, so it is not among them.
TARGETS = ["results/tables/summary.csv", "results/tables/per_image.csv", "results/tables/summary.md"]
COMPARED = ["results/tables/*.csv", "results/tables/summary.md", "results/saliency/*/*.h5", "results/metrics/*/*.csv",
            "results/masks/*.h5"]


def command(workdir: Path) -> list[str]:
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", "tiny.yaml",
            "--cores", "2", *TARGETS]


def start_from_reference(workdir: Path, reference: Path) -> None:
    """Reuse the reference run's demo model, image tables and forward settings (mtimes kept): the
    interrupted run then skips the training (CI time) and runs every model job with the same
    settings, so bytes can be compared. A new split table would make Snakemake rerun tune_forward,
    whose new measurement could choose other settings on a busy machine."""
    shutil.copytree(reference / "results" / "demo", workdir / "results" / "demo")
    for table in ("split.csv", "images.csv"):
        shutil.copy2(reference / "results" / table, workdir / "results" / table)
    settings = reference / "results/model/forward_settings.json"
    if settings.exists():  # only where the config leaves memory format or batch size to tune_forward
        (workdir / "results" / "model").mkdir(parents=True)
        shutil.copy2(settings, workdir / "results/model/forward_settings.json")


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL Snakemake and all its jobs (its process group), as a lost node or the OOM killer would."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def incomplete_outputs(workdir: Path) -> set[str]:
    """Outputs Snakemake marked as being written when it died (.snakemake/incomplete/<base64 path>)."""
    root = workdir / ".snakemake" / "incomplete"
    found = set()
    for marker in root.rglob("*") if root.exists() else []:
        if marker.is_file() and marker.name != "migration_underway":
            encoded = "".join(part.lstrip("@") for part in marker.relative_to(root).parts)
            found.add(base64.urlsafe_b64decode(encoded).decode())
    return found


def model_outputs(workdir: Path) -> dict[str, int]:
    """Mask, saliency and metric files -> mtime (ns)."""
    files = [*workdir.glob("results/masks/*.h5"), *workdir.glob("results/saliency/*/*.h5"),
             *workdir.glob("results/metrics/*/*.csv")]
    return {str(f.relative_to(workdir)): f.stat().st_mtime_ns for f in files}


def executed_jobs(output: str) -> dict[str, int]:
    stats = output.split("Job stats:", 1)[1].split("Select jobs", 1)[0]
    jobs = {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)\s*$", stats, flags=re.M)}
    jobs.pop("total", None)
    return jobs


def test_a_killed_run_resumes_with_only_the_unfinished_jobs(tiny_run, tmp_path):
    started = time.monotonic()
    workdir = make_workdir(tmp_path)
    start_from_reference(workdir, tiny_run)
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command(workdir), cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            # Kill once a few evaluations are done: explain and evaluate jobs are then both finished and running.
            deadline = time.monotonic() + 900
            while len(list(workdir.glob("results/metrics/*/*.csv"))) < 3 and process.poll() is None:
                assert time.monotonic() < deadline, "the first run made no progress"
                time.sleep(0.2)
            assert process.poll() is None, "the run finished before it could be killed"
        finally:
            kill_group(process)
    # the reference's forward settings hold: a new measurement could choose others and change every model output
    assert "rule tune_forward:" not in (tmp_path / "first.log").read_text()
    before = model_outputs(workdir)
    unfinished = incomplete_outputs(workdir)
    assert not (workdir / "results/tables/summary.csv").exists()

    assert snakemake(workdir, "--unlock").returncode == 0
    result = subprocess.run(command(workdir), cwd=workdir, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = executed_jobs(result.stderr + result.stdout)

    after = model_outputs(workdir)
    finished = {path for path in before if path not in unfinished}
    assert {path for path in finished if after[path] != before[path]} == set()  # nothing finished is rebuilt
    # every job whose output was missing or cut off runs again, and no other
    for rule, folder in (("masks", "masks"), ("explain", "saliency"), ("evaluate", "metrics")):
        outputs = [path for path in after if path.startswith(f"results/{folder}/")]
        assert jobs.get(rule, 0) == len(outputs) - sum(path in finished for path in outputs), rule
    assert {"demo_data", "train_demo", "tune_forward", "images", "plan"}.isdisjoint(jobs)
    done_evaluate = sum(p.startswith("results/metrics/") for p in finished)
    # the kill came once 3 records files existed; a records file is written before its job's curves file,
    # so up to 2 of them (2 cores) can belong to jobs that were still running
    assert done_evaluate >= 1 and jobs["evaluate"] >= 1

    compared = sorted({str(f.relative_to(tiny_run)) for pattern in COMPARED for f in tiny_run.glob(pattern)}
                      - {"results/tables/timing.md"})
    assert len(compared) > 30
    differ = [path for path in compared if (workdir / path).read_bytes() != (tiny_run / path).read_bytes()]
    assert differ == []
    leftovers = [str(p.relative_to(workdir)) for p in (workdir / "results").rglob(".*.tmp-*")]
    print(f"recovery test: {time.monotonic() - started:.0f} s; rerun jobs {jobs}; leftover temporary files {leftovers}")
