# Config loading, validation and helpers. All real logic lives in the saliency_bench package.
import functools
import json
import os
import re
import shlex
from pathlib import Path

from snakemake.utils import min_version, update_config

from saliency_bench import workflow_config as wc
from saliency_bench.config import SCHEMA_PATH, load_config
from saliency_bench.errors import UserError
from saliency_bench.report.names import PAGES, split_stem
from saliency_bench.runtime.factories import factory_source
from saliency_bench.fingerprint import stage_fingerprint
from saliency_bench.plan import BENCHMARK_ROOT, ESTIMATED_KINDS, EVALUATE_BENCHMARK, EXPLAIN_BENCHMARK, \
    MASK_BENCHMARK, SANITY_BENCHMARK, TRAIN_DEMO_BENCHMARK

min_version("9.0")

CONDA_ENV = "../../envs/saliency-bench.yaml"


def uses_conda():
    from snakemake.settings.types import DeploymentMethod

    return DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method


# Rules run the CLI as `python -m saliency_bench`; this makes `python` the right interpreter.
wc.expose_cli(conda=uses_conda(), source_dir=Path(workflow.basedir) / "src")


def fail(message):
    """Stop before any job runs, with one line that names the key and the fix."""
    raise WorkflowError(f"config error: {message}")


try:
    update_config(config, wc.typed_command_line(workflow.config_settings.config))  # --config data='{limit: 20}'
    CONFIG = load_config(config, SCHEMA_PATH)  # validated, the schema's defaults filled in: every rule reads it
    config.update(CONFIG.to_dict())  # the raw dict complete too: the report's template reads it
    if workflow.is_main_process:  # cluster jobs re-read this file; the main process has checked already
        wc.check_data_and_model(CONFIG)
        wc.check_device(CONFIG)
        wc.check_demo(CONFIG)
        wc.check_evidence(CONFIG)
        wc.check_metrics(CONFIG)
        wc.check_model(CONFIG)  # builds the model: seconds per job if every job did it
    SHARD_SIZES = wc.shard_sizes(CONFIG)  # images per shard; the last one cut by data.limit
    N_CLASSES = wc.num_classes(CONFIG)  # once: every model rule passes it, and it may list the data tree
    MODEL_SOURCE = factory_source(CONFIG.model.arch)  # None for a torchvision classifier
    MASKS = {m.mask_id: m for m in wc.mask_configs(CONFIG)}
    METHODS = {m.method_id: m for m in wc.method_configs(CONFIG)}  # imports the config's method plugins
except UserError as error:
    fail(str(error))

SHARDS = list(range(len(SHARD_SIZES)))
DEMO = wc.uses_demo(CONFIG)
DEMO_DIR = wc.DEMO_ROOT
GPU = 1 if CONFIG.device.startswith("cuda") else 0
EVIDENCE_ROOT = wc.evidence_root(CONFIG)


# Fingerprints of your images and evidence masks (size and modification time of every file): params of
# the jobs that read them, so that a file added or replaced reruns them. Computed once per process, when
# a job needs one: a cluster job of another rule does not stat every image again.
@functools.cache
def data_files():
    return wc.data_fingerprint(CONFIG)


@functools.cache
def evidence_masks():
    return wc.evidence_fingerprint(CONFIG)


# The split's images (data.limit not applied), checked and sharded: the explain and evaluate jobs read
# their shard from it, so that a new limit leaves the shards before the last one up to date.
SPLIT_TABLE = "results/split.csv"
IMAGE_TABLE = "results/images.csv"  # the run's images: the split's first data.limit
FORWARD_SETTINGS = "results/model/forward_settings.json"
MASK_FILE = "results/masks/{mask_id}.h5"
SALIENCY_FILE = "results/saliency/{method_id}/shard-{shard}.h5"
RECORDS_FILE = "results/metrics/{method_id}/shard-{shard}.csv"
CURVES_FILE = "results/metrics/{method_id}/shard-{shard}.curves.h5"
TABLES = expand("results/tables/{name}", name=["per_image.csv", "summary.csv", "summary.md"])


def bench_file(name):
    """A job's benchmark file; the estimated jobs' names are the plan's patterns, so timing finds them."""
    return f"{BENCHMARK_ROOT}/{name}"


def single_job_benchmarks(wildcards=None):
    """The benchmark files (names under BENCHMARK_ROOT) of this run's jobs that the plan does not
    estimate: the rules without wildcards whose outputs the run's targets reach, directly or through
    such a rule's inputs. Any other rule's file is an earlier config's (the demo's after switching to
    your data, sanity's after turning it off): timing and the report leave it out. A function: it
    reads every rule, so it runs once all are defined."""
    reached = {str(path) for path in all_targets()} | {PLAN_JSON}
    # "step", not "rule": snakemake --lint takes `for rule in ...` for a rule in a file of functions
    pending = [step for step in workflow.rules if not step.has_wildcards()]
    names, grew = [], True
    while grew:
        ready = [step for step in pending if reached.intersection(map(str, step.output))]
        for step in ready:
            pending.remove(step)
            reached.update(str(path) for path in step.input if isinstance(path, str))
            if step.benchmark:
                names.append(os.path.relpath(str(step.benchmark), BENCHMARK_ROOT))
        grew = bool(ready)
    return sorted(name for name in names if name.split("/")[0] not in ESTIMATED_KINDS)  # not train_demo, sanity


wildcard_constraints:
    shard=r"\d+",
    mask_id="|".join(map(re.escape, MASKS)) or "no-masks",  # ids are names, not patterns: rise-binary-p0.5
    method_id="|".join(map(re.escape, METHODS)),


def checkpoint_path():
    return f"{DEMO_DIR}/model.pt" if DEMO else CONFIG.model.checkpoint


def model_files():
    """The checkpoint and the file of a model factory's module (model.arch module:function), inputs
    of every model job, so that a new checkpoint or edited model code reruns what used them."""
    return [path for path in (checkpoint_path(), MODEL_SOURCE) if path]


def tunes_forward():
    """Whether memory format or batch size is left to measurement (auto) on the machine that runs."""
    return "auto" in (CONFIG.memory_format, CONFIG.batch_size, CONFIG.precision)


def forward_settings_input():
    return [FORWARD_SETTINGS] if tunes_forward() else []


def forward_args():
    if tunes_forward():
        return f"--forward-settings {FORWARD_SETTINGS}"
    return f"--batch-size {CONFIG.batch_size} --memory-format {CONFIG.memory_format}"


def model_source_args():
    """Which model: architecture, classes, device and where its weights come from."""
    model = CONFIG.model
    args = ["--arch", model.arch, "--num-classes", str(N_CLASSES), "--device", CONFIG.device]
    if checkpoint_path():
        args += ["--checkpoint", checkpoint_path()]
    if model.weights:
        args += ["--weights", model.weights]
    return shlex.join(args)


def class_names_args(wildcards=None):
    """Every class name of the model (folders, data.class_names or the demo's), for figure titles: an
    explained class need not be the label of any image shown. None known (model.weights): none given."""
    names = wc.class_names(CONFIG)
    return f"--class-names {shlex.join(names)}" if names else ""


def q(value):
    return shlex.quote(str(value))


def preprocess_args():
    pre = CONFIG.preprocess
    return " ".join(["--size", *map(str, pre.size), "--mean", *map(str, pre.mean), "--std", *map(str, pre.std)])


def model_args():
    """The model as the methods and metrics run it: source, batch size, precision, memory format."""
    fold = "" if CONFIG.fold_bn else " --no-fold-bn"
    return f"{model_source_args()} --precision {CONFIG.precision}{fold} {forward_args()}"


def method_input(wildcards):
    mask_id = METHODS[wildcards.method_id].mask_id
    return {"masks": MASK_FILE.format(mask_id=mask_id)} if mask_id else {}


def evidence_args(wildcards):
    """The evidence root for an explain job whose maps are made of the masks (the evidence row)."""
    return f"--evidence-root {q(EVIDENCE_ROOT)}" if wc.reads_evidence(METHODS[wildcards.method_id]) else ""


def evidence_files(wildcards):
    """The masks' fingerprint for the same jobs: a mask added or replaced reruns them."""
    return evidence_masks() if wc.reads_evidence(METHODS[wildcards.method_id]) else ""


def shard_rows(wildcards):
    """The images of one shard, a param: it changes only for the shard that a new data.limit cuts."""
    return SHARD_SIZES[int(wildcards.shard)]


def per_shard(pattern):
    return expand(pattern, method_id=list(METHODS), shard=SHARDS)


def images_source():
    if DEMO:
        return f"--root {DEMO_DIR}/data/images"
    data = CONFIG.data
    if data.root:
        names = f" --class-names {shlex.join(data.class_names)}" if data.class_names else ""
        return f"--root {q(data.root)}{names}"
    root = f" --list-root {q(data.list_root)}" if data.list_root else ""
    return f"--file-list {q(data.file_list)}{root}"


FIGURES = "results/figures"
FIGURE_DIRS = ["masks", "overview", "abscam-init-vs-final", "abscam-layers", "curves", "mean-curves"]


def figure_targets():
    return [f"{FIGURES}/{name}" for name in FIGURE_DIRS] + [f"{FIGURES}/summary.png"]


REPORT_PAGES = "results/report"  # the report's HTML tables and introduction (rule report_pages)


def report_targets():
    return [f"{REPORT_PAGES}/{page}" for page in PAGES]


def sanity_targets():
    return ["results/sanity/sanity.csv", "results/figures/sanity.png"]


def all_targets():
    # Intermediate results are targets too, so that deleting one rebuilds it and what depends
    # on it (Snakemake does not otherwise regenerate a missing intermediate file).
    intermediates = [SPLIT_TABLE, IMAGE_TABLE, *forward_settings_input(), *expand(MASK_FILE, mask_id=list(MASKS))]
    intermediates += per_shard(SALIENCY_FILE) + per_shard(RECORDS_FILE) + per_shard(CURVES_FILE)
    targets = intermediates + TABLES + figure_targets() + report_targets()
    if DEMO:
        targets.append(f"{DEMO_DIR}/model_card.json")
    if CONFIG.sanity.enabled:
        targets += sanity_targets()
    return targets


# ---- the plan (rule plan) and the estimate beside the measured time (rule timing) ----
PLAN = "results/plan.md"
PLAN_JSON = "results/plan.json"
TIMING = "results/tables/timing.md"


# ---- the report's lists and introduction ----
REPORT_SUMMARY = "Comparison"  # the report's Summary category: tables and chart first, the CSV files after


def method_figure(name):
    """'<image>-<method_id>' of a per-image figure -> (image, method_id), for the report's lists."""
    return split_stem(name, list(METHODS))


def layer_figure(name):
    return split_stem(name, CONFIG.abscam.layers)


def demo_model_description():
    if CONFIG.demo.train:
        return "trained by the workflow on the demo data (demo.train: true)"
    return "the shipped demo model (see src/saliency_bench/demo/weights/MODEL_CARD.md)"


def report_run():
    """What the report's introduction says was run (the config's values)."""
    keys = ("device", "precision", "memory_format", "batch_size", "threads")
    weights = demo_model_description() if DEMO else (checkpoint_path() or CONFIG.model.weights)
    values = CONFIG.to_dict()
    return {"model": CONFIG.model.arch, "classes": N_CLASSES, "weights": weights,
            "size": values["preprocess"]["size"], "rise": values["rise"], "abscam": values["abscam"],
            "alpha": CONFIG.stats.alpha, **{key: values[key] for key in keys}}
