"""Cluster execution on a real single-node SLURM cluster (issue 9).

The session fixture starts the cluster with scripts/slurm-cluster.sh (as root; it installs
the Debian packages when missing) and stops it afterwards. Without root, or when the
packages cannot be installed, the cluster tests are skipped with the reason.

The workflow under test is a parameter (`WorkflowCase`): the repository's own Snakefile on a
user's tiny data set and checkpoint, up to the tables (`_real_case`); point `WORKFLOW_CASE` at
another case to run a different workflow on the same cluster.
Measurements (cluster start, per-job overhead) are printed; see them with `pytest -s`.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = REPO / "scripts" / "slurm-cluster.sh"
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
DEFAULT_PROFILE = REPO / "workflow" / "profiles" / "default"
VENV_BIN = Path(sys.executable).parent
SNAKEMAKE = VENV_BIN / "snakemake"
STAGES = ("images", "image_table", "masks", "demo_data", "train_demo", "tune_forward", "sanity", "explain", "evaluate", "aggregate",
          "figures_masks", "figures_saliency", "figures_curves", "figures_summary")

START_TIMEOUT_S = 600      # includes apt-get install on a fresh machine
STOP_TIMEOUT_S = 120
WORKFLOW_TIMEOUT_S = 600   # one snakemake run (a busy 2-core machine needs the margin)
NOT_ROOT_EXIT = 3          # scripts/slurm-cluster.sh exit codes
INSTALL_FAILED_EXIT = 4

# --- the workflow under test -------------------------------------------------------------

@dataclasses.dataclass
class WorkflowCase:
    """A workflow to run locally and on SLURM, and how to break and fix one of its jobs."""

    snakefile: Path
    prepare: Callable[[Path], Path]    # fills a fresh working directory, returns the config file
    break_job: Callable[[Path], None]  # makes one cluster job fail
    fix_job: Callable[[Path], None]    # undoes break_job
    results: str = "results"           # folder whose files must equal the local run's
    extra_args: list[str] = dataclasses.field(default_factory=list)  # e.g. targets or --until


def _real_case(root: Path) -> WorkflowCase:
    """The real workflow on a user's (tiny) data set and checkpoint, up to the tables.

    The broken job is the aggregation: its evidence masks are missing (a user's mistake that
    is no input or param, so fixing it leaves the finished jobs up to date).
    """
    from workflow_helpers import make_user_project

    def prepare(workdir: Path) -> Path:
        workdir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(REPO / "config", workdir / "config")
        config = workdir / "slurm.yaml"
        config.write_text(yaml.safe_dump(make_user_project(workdir / "project")))
        return config

    def break_job(workdir: Path) -> None:
        shutil.move(workdir / "project" / "evidence", workdir / "project" / "evidence-aside")
        (workdir / "project" / "evidence").mkdir()

    def fix_job(workdir: Path) -> None:
        shutil.rmtree(workdir / "project" / "evidence")
        shutil.move(workdir / "project" / "evidence-aside", workdir / "project" / "evidence")

    return WorkflowCase(snakefile=REPO / "Snakefile", prepare=prepare, break_job=break_job, fix_job=fix_job,
                        results="results/tables",
                        extra_args=["results/tables/summary.csv", "results/tables/per_image.csv"])


WORKFLOW_CASE: Callable[[Path], WorkflowCase] = _real_case


def run_workflow(workdir: Path, snakefile: Path, configfile: Path, executor_args: list[str],
                 env: dict[str, str] | None = None, timeout: float = WORKFLOW_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run snakemake in `workdir` with the repository's default workflow profile plus
    `executor_args` (e.g. ["--profile", dir] for SLURM); stdout and stderr merged."""
    command = [str(SNAKEMAKE), "--snakefile", str(snakefile), "--configfile", str(configfile),
               "--directory", str(workdir), "--workflow-profile", str(DEFAULT_PROFILE), *executor_args]
    # its own process group, so that a timeout ends snakemake and every local job it started
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"snakemake did not finish within {timeout} s:\n{output[-4000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output)


def cluster_jobs(log: str) -> dict[str, str]:
    """{SLURM job id: path of its SLURM log} for every job snakemake submitted."""
    return dict(re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.?$", log, re.M))


def scheduled_jobs(log: str) -> list[tuple[str, list[str]]]:
    """(rule, outputs) of every non-local job snakemake scheduled, from its log."""
    jobs = []
    for block in re.split(r"\n(?=\[[A-Z][a-z]{2} )", log):
        rule = re.search(r"^rule (\w+):$", block, re.M)
        if rule:
            outputs = re.search(r"^\s+output: (.+)$", block, re.M)
            jobs.append((rule.group(1), outputs.group(1).split(", ") if outputs else []))
    return jobs


def result_files(workdir: Path, results: str) -> dict[str, bytes]:
    root = workdir / results
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def mtimes(workdir: Path, results: str) -> dict[str, int]:
    root = workdir / results
    return {str(path.relative_to(root)): path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


def process_alive(name: str, pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except OSError:
        return False


def explain(result: subprocess.CompletedProcess) -> str:
    return f"snakemake exited {result.returncode}; output tail:\n{result.stdout[-4000:]}"


# --- checks that need no cluster --------------------------------------------------------------

def test_slurm_profile_has_the_settings_the_cluster_needs():
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    assert profile["executor"] == "slurm"
    assert profile["retries"] == 0 and profile["jobs"] >= 1
    # Without accounting, sacct fails and the plugin would wait for ever.
    assert profile["slurm-status-command"] == "squeue"
    min_job_age = int(re.search(r"^MinJobAge=(\d+)$", CLUSTER_SCRIPT.read_text(), re.M).group(1))
    assert min_job_age >= 3 * profile["slurm-init-seconds-before-status-checks"]
    defaults = profile["default-resources"]
    assert {"slurm_partition", "slurm_account", "mem_mb", "runtime"} <= set(defaults)
    for stage in STAGES:
        assert {"mem_mb", "runtime"} <= set(profile["set-resources"][stage]), stage
        assert profile["set-threads"][stage] >= 1, stage
    # the default workflow profile is loaded too and wins per key: keep it executor-neutral
    default = yaml.safe_load((DEFAULT_PROFILE / "config.yaml").read_text())
    assert default["keep-going"] is False and default["latency-wait"] >= 30
    assert not {"executor", "jobs", "default-resources", "set-resources", "set-threads"} & set(default)


def test_cluster_script_refuses_non_root_with_its_own_exit_code():
    command = ["bash", str(CLUSTER_SCRIPT), "start"]
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            pytest.skip("runuser is missing, so the non-root path cannot be tried as root")
        command = ["runuser", "-u", "nobody", "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == NOT_ROOT_EXIT, result.stderr
    assert "must run as root" in result.stderr
    usage = subprocess.run(["bash", str(CLUSTER_SCRIPT), "restart"], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "usage" in usage.stderr


# --- the cluster ------------------------------------------------------------------------

@dataclasses.dataclass
class Cluster:
    env: dict[str, str]
    state: Path
    pids: dict[str, int]

    def run(self, *command: str) -> str:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=30, check=True).stdout


def slurm_cluster_jobs(env: dict[str, str]) -> list[str]:
    """Ids of the jobs still pending or running."""
    return subprocess.run(["squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING", "-o", "%i"], env=env,
                          capture_output=True, text=True, timeout=30).stdout.split()


def _cluster_script(action: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER_SCRIPT), action], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("SLURM cluster tests need root: scripts/slurm-cluster.sh installs slurmctld/slurmd/munge "
                    "and starts the daemons; run pytest as root to include them")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and there is no apt-get to install it; install slurmctld slurmd slurm-client munge")
    already_running = _cluster_script("status", 30).returncode == 0
    started = time.monotonic()
    result = _cluster_script("start", START_TIMEOUT_S)
    if result.returncode == INSTALL_FAILED_EXIT:
        pytest.skip(f"SLURM packages could not be installed: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, f"slurm-cluster.sh start failed ({result.returncode}):\n{result.stderr}"
    print(f"\n[measure] slurm-cluster.sh start: {time.monotonic() - started:.1f} s "
          f"({'already running' if already_running else 'fresh start'}); {result.stderr.strip()}", file=sys.stderr)
    conf = re.search(r"^export SLURM_CONF=(\S+)$", result.stdout, re.M).group(1)
    state = Path(conf).parent
    pids = {name: int(pid) for name, pid in (line.split() for line in (state / "pids").read_text().splitlines())}
    assert set(pids) == {"munged", "slurmctld", "slurmd"}
    assert all(process_alive(name, pid) for name, pid in pids.items())
    # start twice does not start twice
    again = _cluster_script("start", 60)
    assert again.returncode == 0 and "already running" in again.stderr
    assert (state / "pids").read_text().split() == [str(x) for item in pids.items() for x in item]

    env = {**os.environ, "SLURM_CONF": conf}
    yield Cluster(env=env, state=state, pids=pids)

    if already_running:  # someone else's cluster: leave it running
        return
    # jobs left behind by a failed test would outlive the daemons (they run under slurmstepd)
    leftover = slurm_cluster_jobs(env)
    if leftover:
        subprocess.run(["scancel", *leftover], env=env, timeout=30)
        deadline = time.monotonic() + 60
        while slurm_cluster_jobs(env) and time.monotonic() < deadline:
            time.sleep(1)
    stopped = _cluster_script("stop", STOP_TIMEOUT_S)
    assert stopped.returncode == 0, stopped.stderr
    assert not [name for name, pid in pids.items() if process_alive(name, pid)], "daemons still running after stop"
    assert _cluster_script("status", 30).returncode == 1


@pytest.fixture(scope="session")
def slurm_profile(slurm_cluster, tmp_path_factory) -> Path:
    """The repository's SLURM profile with its placeholders filled in for the test cluster
    and its sizes scaled down to the one small node; every other setting is kept."""
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    partition = slurm_cluster.run("sinfo", "-h", "-o", "%P").split()[0].rstrip("*")
    profile["default-resources"]["slurm_partition"] = partition
    del profile["default-resources"]["slurm_account"]
    profile["default-resources"]["mem_mb"] = 500
    for rule, resources in profile["set-resources"].items():
        resources["mem_mb"] = min(resources["mem_mb"], 1000)
    # one thread per job, as in the local run: torch's results depend on the thread count
    profile["set-threads"] = {rule: 1 for rule in profile["set-threads"]}
    folder = tmp_path_factory.mktemp("slurm-profile")
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


@pytest.fixture(scope="session")
def workflow_case(tmp_path_factory) -> WorkflowCase:
    return WORKFLOW_CASE(tmp_path_factory.mktemp("workflow"))


@dataclasses.dataclass
class LocalRun:
    files: dict[str, bytes]
    seconds: float
    jobs: int


@pytest.fixture(scope="session")
def local_run(workflow_case, tmp_path_factory, slurm_cluster) -> LocalRun:
    """Outputs of a local run (needs the cluster fixture only so that non-root skips first)."""
    workdir = tmp_path_factory.mktemp("local")
    configfile = workflow_case.prepare(workdir)
    started = time.monotonic()
    result = run_workflow(workdir, workflow_case.snakefile, configfile, ["--executor", "local", *workflow_case.extra_args])
    assert result.returncode == 0, explain(result)
    run = LocalRun(result_files(workdir, workflow_case.results), time.monotonic() - started,
                   len(re.findall(r"^localrule (\w+):$", result.stdout, re.M)))
    assert run.files, "the local run wrote no results"
    print(f"\n[measure] local run: {run.seconds:.1f} s for {run.jobs} jobs", file=sys.stderr)
    return run


def completed_on_slurm(cluster: Cluster, result: subprocess.CompletedProcess) -> dict[str, str]:
    """{SLURM job id: state} of the jobs of one snakemake run; all of its jobs were submitted to SLURM."""
    submitted = cluster_jobs(result.stdout)
    assert submitted and len(submitted) == len(scheduled_jobs(result.stdout)), explain(result)
    run_id = re.search(r"SLURM run ID: (\S+)", result.stdout).group(1)
    # squeue -t all still lists finished jobs (MinJobAge)
    listed = dict(line.split("|") for line in cluster.run(
        "squeue", "-t", "all", "-h", "-n", run_id, "-o", "%i|%T").split())
    assert set(listed) == set(submitted), explain(result)
    return listed


# One scenario, as a user meets it (one SLURM run is minutes of scheduler latency): a run whose
# last job fails, then the fixed rerun. Together they run every job on SLURM.
@pytest.mark.slurm
@pytest.mark.workflow
@pytest.mark.slow
def test_every_job_runs_on_slurm_a_failed_job_stops_the_run_and_a_rerun_completes_only_what_is_missing(
        slurm_cluster, slurm_profile, workflow_case, local_run, tmp_path):
    configfile = workflow_case.prepare(tmp_path)
    workflow_case.break_job(tmp_path)
    started = time.monotonic()
    failed = run_workflow(tmp_path, workflow_case.snakefile, configfile, ["--profile", str(slurm_profile), *workflow_case.extra_args],
                          env=slurm_cluster.env)
    assert failed.returncode != 0, explain(failed)
    error = re.search(r"^Error in rule (\w+):.*?^\s+log: (.+?)(?: \(check log file\(s\).*)?$", failed.stdout, re.M | re.S)
    assert error, explain(failed)
    rule_log, *cluster_logs = [tmp_path / path for path in error.group(2).split(", ")]
    assert rule_log.stat().st_size > 0, "the failed job's log is empty"
    # the SLURM log of the failed job is kept (those of successful jobs are deleted)
    failed_ids = re.findall(r"SLURM-job '(\d+)' failed", failed.stdout)
    assert failed_ids and [Path(cluster_jobs(failed.stdout)[job_id]) for job_id in failed_ids] == cluster_logs
    assert all(path.stat().st_size > 0 for path in cluster_logs)
    states = completed_on_slurm(slurm_cluster, failed)
    assert {job_id for job_id, state in states.items() if state != "COMPLETED"} == set(failed_ids), states

    before = mtimes(tmp_path, workflow_case.results)
    workflow_case.fix_job(tmp_path)
    rerun = run_workflow(tmp_path, workflow_case.snakefile, configfile, ["--profile", str(slurm_profile), *workflow_case.extra_args],
                         env=slurm_cluster.env)
    elapsed = time.monotonic() - started
    assert rerun.returncode == 0, explain(rerun)
    assert set(completed_on_slurm(slurm_cluster, rerun).values()) == {"COMPLETED"}
    rerun_outputs = [output for _, outputs in scheduled_jobs(rerun.stdout) for output in outputs]
    assert rerun_outputs, explain(rerun)
    root = f"{workflow_case.results}/"
    assert not [o for o in rerun_outputs if o.startswith(root) and o[len(root):] in before], \
        "the rerun redid jobs whose outputs were complete"
    assert {k: v for k, v in mtimes(tmp_path, workflow_case.results).items() if k in before} == before
    assert result_files(tmp_path, workflow_case.results) == local_run.files
    n_jobs = len(states) + len(cluster_jobs(rerun.stdout))
    print(f"\n[measure] SLURM runs: {elapsed:.1f} s for {n_jobs} SLURM jobs; overhead against the "
          f"local run: {(elapsed - local_run.seconds) / n_jobs:.1f} s per job", file=sys.stderr)
