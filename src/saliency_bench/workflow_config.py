"""From the typed workflow config (`config.Config`) to the list of mask sets, method configurations and shards.

The Snakefile stays thin: it asks this module what to build. Ids are stable, because
they name files and table rows; each method defines its own (`methods/`: mask sets and RISE
configurations in `methods/rise.py`, `abscam-init-layer3` in `methods/abscam.py`, `random`
and `centre` in `methods/chance.py`).
"""
from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .config import SCHEMA_PATH, Config, read_schema
from .errors import UserError, require
from .formats.image_table import ImageRecord
from .methods import MethodConfig, get_method, load_plugins
from .methods import methods as registered_methods
from .methods.registry import PLUGINS_VARIABLE
from .methods.rise import MaskConfig, mask_configs  # noqa: F401  (the Snakefile asks this module)

DEMO_ROOT = "results/demo"
DEMO_CONFIG = "config/config.yaml"  # the demo's settings, beside the Snakefile (and in a deployment's working directory)


def method_configs(config: Config) -> list[MethodConfig]:
    """Every registered method's configurations for this config, in registry order (chance last)."""
    load_method_plugins(config)
    methods = [method for spec in registered_methods() for method in spec.configurations(config)]
    ids = [m.method_id for m in methods]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    require(not duplicates, f"duplicate method ids {duplicates}; remove repeated p values or layers from the config")
    readers = [m.method_id for m in methods if reads_evidence(m)]
    if readers and not evidence_root(config):
        raise UserError(f"{readers[0]} needs evidence masks: set data.evidence_root, or baselines.evidence: false")
    return methods


def load_method_plugins(config: Config) -> None:
    """Import the config's method plugins here and, through the environment, in every job."""
    plugins = list(config.method_plugins)
    if plugins:
        load_plugins(plugins)
        os.environ[PLUGINS_VARIABLE] = ",".join(plugins)


def reads_evidence(method: MethodConfig) -> bool:
    """Whether a configuration's maps are made of the evidence masks (a changed mask reruns its jobs)."""
    return get_method(method.method).reads_evidence


def sanity_method_names(config: Config) -> list[str]:
    """The methods the randomisation check runs: the configured ones that are not chance baselines."""
    return sorted({m.method for m in method_configs(config) if not get_method(m.method).is_chance})


def named_sources(values: Mapping) -> tuple[bool, bool]:
    """(names data, names a model) of a config as a plain dict: the typed one, or what the command
    line gave before any defaults (a section of the wrong type names nothing; validation says so)."""
    data, model = (values.get(section) for section in ("data", "model"))
    data, model = (part if isinstance(part, Mapping) else {} for part in (data, model))
    return bool(data.get("root") or data.get("file_list")), bool(model.get("checkpoint") or model.get("weights"))


def typed_command_line(values: Mapping, schema: dict | str | Path = SCHEMA_PATH) -> dict:
    """`--config` values with their text read as YAML where the schema wants a number, a boolean or
    null: Snakemake reads a nested value as text (`--config data='{limit: 20}'` gives "20"), a
    top-level one typed (`images_per_job=4` gives 4). Text the schema takes as it is stays text."""
    import yaml

    schema = schema if isinstance(schema, dict) else read_schema(schema)

    def typed(value, rule: dict):
        if isinstance(value, dict):
            return {key: typed(item, rule.get("properties", {}).get(key, {})) for key, item in value.items()}
        if isinstance(value, list):
            return [typed(item, rule.get("items", {})) for item in value]
        if not isinstance(value, str):
            return value
        branches = rule.get("oneOf", [rule])
        null = value in ("null", "~") and any("null" in _types(branch) for branch in branches)
        if not null and any("string" in _types(b) and value in b.get("enum", [value]) for b in branches):
            return value
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return parsed if parsed is None or isinstance(parsed, (bool, int, float)) else value

    return typed(dict(values), schema)


def _types(rule: dict) -> list[str]:
    kind = rule.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def uses_demo_settings(command_line: Mapping) -> bool:
    """Whether the demo's settings (config/config.yaml) are the base of this run: only when the
    config given on the command line names neither data nor a model. A run on the user's own data
    starts from the schema's defaults, the study's protocol, never from the demo's (its 4 images per
    class, 112 px, 250 masks)."""
    return not any(named_sources(command_line))


def demo_config_file(workflow_dir: str | Path) -> str:
    """The demo's settings: the working directory's config/config.yaml (a copy of the workflow's that
    you may edit), else the workflow's own, so that the demo runs from any working directory."""
    local = Path(DEMO_CONFIG)
    return str(local if local.is_file() else Path(workflow_dir) / DEMO_CONFIG)


def uses_demo(config: Config) -> bool:
    """The demo runs when the config names neither data nor a model of the user's."""
    return not any(named_sources(config.to_dict()))


def check_data_and_model(config: Config) -> None:
    """One source of images and one of weights, or neither (the demo)."""
    has_data, has_model = named_sources(config.to_dict())
    require(has_data == has_model, "the config names " + ("data but no model" if has_data else "a model but no data")
            + "; set both data.root (or data.file_list) and model.checkpoint (or model.weights), or neither for the demo")
    require(not (config.data.root and config.data.file_list),
            "the config names both data.root and data.file_list; keep one: an ImageFolder tree or a list of image files")
    require(not (config.data.list_root and not config.data.file_list),
            "data.list_root applies to data.file_list only (the folder its relative lines are read from); drop it")
    require(not (config.model.checkpoint and config.model.weights),
            "the config names both model.checkpoint and model.weights; keep one: your checkpoint or torchvision's weights")


def check_device(config: Config) -> None:
    """An explicit CPU must run the precision asked for. `auto` and `cuda` are left to the jobs: the
    main process may sit on a login node without the GPU that the jobs get."""
    from .runtime.forward import check_precision

    if config.device == "cpu":
        try:
            check_precision("cpu", config.precision)
        except UserError as error:
            raise UserError(f"device is cpu, but {error}") from None


def check_metrics(config: Config) -> None:
    """The deletion/insertion step fits the run's images: the evaluate jobs refused it, after the maps."""
    from .metrics.causal import check_step

    height, width = config.preprocess.size
    try:
        check_step(config.metrics.step_rows * width, height, width)
    except UserError as error:
        raise UserError(f"metrics.step_rows is {config.metrics.step_rows}: {error}") from None


def check_evidence(config: Config) -> None:
    """The evidence row needs a mask for every image of the run: one missing stopped its explain job,
    after the masks. The demo draws one for each of its images."""
    if not config.baselines.evidence or uses_demo(config) or not config.data.evidence_root:
        return  # no row, or method_configs has said what is missing
    from .formats.evidence import evidence_paths

    records = listed_images(config)
    chosen = [records[i].image_id for i in selected_indices(config, [r.label for r in records])]
    try:
        evidence_paths(config.data.evidence_root, chosen, f"of the run's {len(chosen)} images")
    except UserError as error:
        raise UserError(f"baselines.evidence: {error}") from None


def check_demo(config: Config) -> None:
    """With demo.train false the shipped model explains the demo: the data must be generated and
    split as when it was trained, or the explained "validation" images could be training images."""
    if not uses_demo(config) or config.demo.train:
        return
    from .demo.shipped import shipped_settings

    differing = [f"{section}.{key} is {getattr(getattr(config, section), key)}, the shipped model's is {value}"
                 for section, values in shipped_settings().items() for key, value in values.items()
                 if getattr(getattr(config, section), key) != value]
    require(not differing, f"demo.train is false, so the shipped demo model is used, but {'; '.join(differing)}; "
            "restore the default or set demo.train: true to train a model on these settings")


def class_names(config: Config) -> list[str]:
    from .data import discover_images

    if config.data.class_names:
        return list(config.data.class_names)
    if uses_demo(config):
        from .demo import CLASSES

        return list(CLASSES)
    if config.model.weights:
        return []  # torchvision's 1000 ImageNet classes
    root = config.data.root
    require(bool(root), "data.class_names is required with data.file_list (the checkpoint's classes, in order)")
    return discover_images(root)[1]


def num_classes(config: Config) -> int:
    if config.model.num_classes:
        return int(config.model.num_classes)
    if config.model.weights:
        return 1000
    return len(class_names(config))


def image_labels(config: Config) -> list[int]:
    """The class index of every image the data source lists, in discovery order (-1: unknown).

    Known before any job runs: the demo's tree is fixed by its config (classes sorted, as
    ImageFolder sorts them, `demo.per_class` images each), the user's tree is listed.
    """
    if uses_demo(config):
        from .demo import CLASSES

        return [label for label in range(len(CLASSES)) for _ in range(config.demo.per_class)]
    return [record.label for record in listed_images(config)]


def listed_images(config: Config) -> list[ImageRecord]:
    """Every image the user's data source lists (ImageFolder tree or file list), in discovery order."""
    from .data import discover_images, records_from_file_list

    data = config.data
    if data.root:
        return discover_images(data.root, data.class_names)[0]
    return records_from_file_list(data.file_list, data.list_root)


def data_fingerprint(config: Config) -> str:
    """What the images job's table depends on in the user's data: every listed image's id, class, size
    and modification time. A param of that job, so that an image added, removed, renamed or replaced
    reruns it (the files are no rule's input); "" for the demo, whose data folder is an input."""
    if uses_demo(config):
        return ""
    return files_fingerprint((f"{record.image_id}\0{record.label}", record.path) for record in listed_images(config))


def evidence_root(config: Config) -> str | None:
    """The folder of the run's evidence masks: the demo's own, else data.evidence_root (None: no masks)."""
    return f"{DEMO_ROOT}/data/evidence" if uses_demo(config) else config.data.evidence_root


def evidence_fingerprint(config: Config) -> str:
    """The same for the evidence masks (data.evidence_root), a param of the jobs that read them."""
    root = config.data.evidence_root
    if uses_demo(config) or not root or not os.path.isdir(root):
        return ""
    files = sorted(path for path in Path(root).rglob("*") if path.is_file())
    return files_fingerprint((path.relative_to(root).as_posix(), path) for path in files)


def files_fingerprint(entries: Iterable[tuple[str, str | os.PathLike]]) -> str:
    """A short hash of (name, the file's size and modification time) for each (name, path). A file that
    cannot be read (a broken link) counts as such: the job that reads it names it in one line."""
    digest = hashlib.sha256()
    for name, path in entries:
        try:
            stat = os.stat(path)
            state = f"{stat.st_size}\0{stat.st_mtime_ns}"
        except OSError as error:
            state = f"unreadable {error.errno}"
        digest.update(f"{name}\0{state}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


def selection(config: Config) -> dict:
    """The data keys that choose the run's images, as `data.select_images` and `data.selected_count` take them."""
    data = config.data
    return {"split": data.split, "fraction": data.val_fraction, "seed": data.split_seed, "limit": data.limit,
            "per_class_limit": data.per_class_limit}


def selected_indices(config: Config, labels: Sequence[int]) -> list[int]:
    """The images the workflow explains, as indices into the listed images with these labels."""
    from .data import select_images

    return select_images(labels, **selection(config))


def selected_image_count(config: Config) -> int:
    """How many images the workflow explains; known before any job runs, so shards are too. Without a
    per-class limit it needs no permutation, so a cluster job's parse does not import torch."""
    from .data import selected_count

    count = selected_count(image_labels(config), **selection(config))
    require(count >= 1, "no images selected; check data.split, data.val_fraction and data.limit")
    return count


def shard_count(config: Config) -> int:
    return len(shard_sizes(config))


def shard_sizes(config: Config) -> list[int]:
    """Images per shard: images_per_job each, the last one what data.limit leaves of it. A job reads
    its shard from the split's table, cut to its size, so raising the limit reruns only the last
    shard's jobs and runs the new ones."""
    count, per_job = selected_image_count(config), config.images_per_job
    return [min(per_job, count - start) for start in range(0, count, per_job)]


def check_model(config: Config) -> None:
    """Before any job runs: the architecture, the checkpoint (read with weights_only=True, its keys and
    shapes against the model's), the Abs-CAM layer names, and one image of the run's size through the
    model, each Abs-CAM layer giving a (B, C, h, w) feature map. Every model job checks the same, but
    only after the masks, or a cluster queue."""
    from .abscam import probe_layers
    from .runtime.models import build_model, load_checkpoint

    classes = max(num_classes(config), 1)
    model = build_model(config.model.arch, classes)  # never model.weights here: nothing is downloaded
    layers = config.abscam.layers if config.abscam.variants else []
    check_layer_names(model, layers, config.model.arch)
    if config.model.checkpoint:
        load_checkpoint(model, config.model.checkpoint)
    probe_layers(model.eval(), config.preprocess.size, config.model.arch, classes, layers)


def check_layer_names(model, layers: Sequence[str], arch: str) -> None:
    """Every Abs-CAM layer is a module of the model; else one line naming the config key."""
    names = {name for name, _ in model.named_modules() if name}
    unknown = [layer for layer in layers if layer not in names]
    if unknown:
        top = [name for name, _ in model.named_children()]
        raise UserError(f"abscam.layers: unknown layer(s) {unknown} for {arch}; "
                        f"valid top-level names: {', '.join(top)}")


def expose_cli(conda: bool, source_dir: str | Path) -> None:
    """Let rules run the CLI as `python -m saliency_bench` without activating anything.

    Normally `python` must be the interpreter that runs Snakemake (the project's .venv): its
    folder goes first on PATH. With --sdm conda the rule's conda env supplies `python` and
    the dependencies, and the package comes from the checkout's src/ via PYTHONPATH.
    """
    if conda:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source_dir), os.environ.get("PYTHONPATH")]))
    else:
        os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
