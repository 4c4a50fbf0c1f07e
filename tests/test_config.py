"""The typed config: the schema is the one source of keys' defaults; `Config` names the same keys."""
from __future__ import annotations

import copy
import dataclasses
import typing

import pytest
import yaml
from snakemake.utils import validate

from saliency_bench.config import Config, build_config, load_config
from saliency_bench.errors import UserError
from saliency_bench.workflow_config import typed_command_line
from workflow_helpers import REPO, SCHEMA


def schema_keys(rule: dict, where: str = "") -> dict[str, dict]:
    """Dotted key -> schema rule, for every property of every object section."""
    found = {}
    for key, child in rule.get("properties", {}).items():
        found[f"{where}{key}"] = child
        found.update(schema_keys(child, f"{where}{key}."))
    return found


def config_keys(cls: type, where: str = "") -> set[str]:
    found = set()
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        found.add(f"{where}{field.name}")
        if dataclasses.is_dataclass(hints[field.name]):
            found |= config_keys(hints[field.name], f"{where}{field.name}.")
    return found


def test_the_typed_config_names_exactly_the_schemas_keys():
    assert config_keys(Config) == set(schema_keys(yaml.safe_load(SCHEMA.read_text())))


def test_every_leaf_key_has_its_default_in_the_schema_only():
    """`load_config({})` must be complete, so every default is the schema's (the classes have none)."""
    leaves = {key for key, rule in schema_keys(yaml.safe_load(SCHEMA.read_text())).items() if "properties" not in rule}
    assert all("default" in schema_keys(yaml.safe_load(SCHEMA.read_text()))[key] for key in leaves)
    assert all(field.default is dataclasses.MISSING for field in dataclasses.fields(Config))
    assert load_config({}, SCHEMA).rise.n_masks == 6000


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_the_defaults_filled_in_are_those_snakemake_fills_in(name):
    values = yaml.safe_load((REPO / "config" / name).read_text())
    expected = copy.deepcopy(values)
    validate(expected, str(SCHEMA), set_default=True)
    config = load_config(values, SCHEMA)
    assert config.to_dict() == expected
    assert values == yaml.safe_load((REPO / "config" / name).read_text())  # the input is left as it was


def test_the_config_is_typed_and_read_only():
    config = load_config({"rise": {"binary": {"p": [0.5]}}, "preprocess": {"size": [64, 48]}}, SCHEMA)
    assert config.rise.binary.p == (0.5,) and config.preprocess.size == (64, 48)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rise.n_masks = 3  # type: ignore[misc]


@pytest.mark.parametrize("values, message", [
    ({"rise": {"n_masks": 0}}, "config key rise.n_masks: 0 is less than the minimum of 1"),
    ({"rise": {"nmasks": 10}}, "config key rise: Additional properties"),
    ({"data": []}, "config key data: "),
])
def test_a_bad_config_is_one_line_naming_the_key(values, message):
    with pytest.raises(UserError, match=message) as error:
        load_config(values, SCHEMA)
    assert "\n" not in str(error.value) and "config/README.md" in str(error.value)


def test_an_unvalidated_dict_is_refused_by_name():
    with pytest.raises(UserError, match=r"config rise: missing keys \['s', 'seed'"):
        build_config({**load_config({}, SCHEMA).to_dict(), "rise": {"n_masks": 10}})


@pytest.mark.parametrize("command_line, demo_base", [
    ({}, True),
    ({"rise": {"n_masks": 50}}, True),  # the demo with fewer masks
    ({"data": {"root": "imgs"}, "model": {"checkpoint": "m.pt"}}, False),
    ({"data": {"file_list": "list.txt"}}, False),  # half a run of one's own: the check names the missing model
    ({"model": {"weights": "DEFAULT"}}, False),
    ({"data": {"root": None}, "model": {"checkpoint": None}}, True),
    ({"data": 5, "model": ["m.pt"]}, True),  # wrong types name nothing here; validation refuses them
])
def test_the_demo_settings_are_the_base_only_of_demo_runs(command_line, demo_base):
    from saliency_bench.workflow_config import uses_demo, uses_demo_settings

    assert uses_demo_settings(command_line) is demo_base
    if isinstance(command_line.get("data", {}), dict) and isinstance(command_line.get("model", {}), dict):
        assert uses_demo(load_config(command_line, SCHEMA)) is demo_base


def test_the_file_fingerprint_follows_names_sizes_and_times_and_takes_a_broken_link(tmp_path):
    """The images job's and the aggregation's data param (workflow_config.files_fingerprint): a file
    that cannot be read is no traceback in the main process; the images job names it."""
    import os

    from saliency_bench.workflow_config import files_fingerprint

    image = tmp_path / "a.png"
    image.write_bytes(b"1")
    first = files_fingerprint([("a.png", image)])
    assert files_fingerprint([("a.png", image)]) == first and files_fingerprint([("b.png", image)]) != first
    image.write_bytes(b"22")
    assert files_fingerprint([("a.png", image)]) != first
    os.symlink(tmp_path / "nowhere.png", tmp_path / "broken.png")
    assert files_fingerprint([("broken.png", tmp_path / "broken.png")]) != files_fingerprint([])


def test_command_line_text_is_read_as_the_schemas_type():
    """Snakemake gives a nested --config value as text (data='{limit: 20}' -> "20"): where the schema wants a
    number, a boolean or null it is read as YAML; text the schema takes (class names, "auto") stays text."""
    given = {"data": {"limit": "20", "root": "null", "split": "all", "class_names": ["1", "2"], "val_fraction": "0.25"},
             "batch_size": "32", "memory_format": "auto", "threads": 2,
             "rise": {"binary": {"p": ["0.3", "0.7"]}, "perlin": {"enabled": "false"}}, "preprocess": {"size": ["48", "64"]}}
    typed = typed_command_line(given)
    assert typed == {"data": {"limit": 20, "root": None, "split": "all", "class_names": ["1", "2"], "val_fraction": 0.25},
                     "batch_size": 32, "memory_format": "auto", "threads": 2,
                     "rise": {"binary": {"p": [0.3, 0.7]}, "perlin": {"enabled": False}}, "preprocess": {"size": [48, 64]}}
    config = load_config(typed)
    assert (config.data.limit, config.batch_size, config.rise.binary.p, config.preprocess.size) == (20, 32, (0.3, 0.7), (48, 64))
    assert typed_command_line({"batch_size": "auto"}) == {"batch_size": "auto"}
    # text that is no value of the key's type stays text, and the schema names the key
    with pytest.raises(UserError, match="config key data.limit: 'lots' is not of type"):
        load_config(typed_command_line({"data": {"limit": "lots"}}))


@pytest.mark.parametrize("data, model, message", [
    ({"root": "images"}, {}, "names data but no model"),
    ({}, {"checkpoint": "model.pt"}, "names a model but no data"),
    ({"root": "images", "file_list": "list.txt"}, {"checkpoint": "model.pt"}, "both data.root and data.file_list; keep one"),
    ({"root": "images"}, {"checkpoint": "model.pt", "weights": "DEFAULT"}, "both model.checkpoint and model.weights; keep one"),
    ({"root": "images", "list_root": "images"}, {"checkpoint": "model.pt"}, "data.list_root applies to data.file_list only"),
])
def test_one_source_of_images_and_one_of_weights(data, model, message):
    """A second source, or a list_root without a list, would be silently ignored (the images step takes
    data.root), or end in a misleading shape error (weights: DEFAULT means 1000 classes)."""
    from saliency_bench.workflow_config import check_data_and_model

    with pytest.raises(UserError, match=message):
        check_data_and_model(load_config({"data": data, "model": model}))
    check_data_and_model(load_config({"data": {"root": "images"}, "model": {"checkpoint": "model.pt"}}))


def test_fp16_on_an_explicit_cpu_stops_before_any_job():
    """It failed only in the tune_forward job, after the masks; `auto` and `cuda` stay with the jobs."""
    from saliency_bench.workflow_config import check_device

    with pytest.raises(UserError, match="device is cpu, but precision fp16 needs a CUDA device; use bf16"):
        check_device(load_config({"device": "cpu", "precision": "fp16"}))
    for device, precision in [("cpu", "bf16"), ("cpu", "fp32"), ("auto", "fp16"), ("cuda", "fp16")]:
        check_device(load_config({"device": device, "precision": precision}))


def test_a_step_of_the_whole_image_stops_before_any_job():
    """metrics.step_rows of the image's height or more gives curves of 2 points (the image and the
    substrate), which rank no map; the evaluate jobs refused it only after every map was computed."""
    from saliency_bench.workflow_config import check_metrics

    with pytest.raises(UserError, match=r"^metrics.step_rows is 64: a step of 4096 pixels replaces all 4096 pixels of a "
                                        r"64x64 image at once, .* take fewer \(the default: 8 rows, 512 pixels\)$"):
        check_metrics(load_config({"preprocess": {"size": [64, 64]}, "metrics": {"step_rows": 64}}))
    check_metrics(load_config({"preprocess": {"size": [64, 64]}, "metrics": {"step_rows": 63}}))
    check_metrics(load_config({}))


def test_the_evidence_row_is_asked_for_and_needs_evidence_masks():
    """baselines.evidence adds the ground-truth row where the run has masks (the demo's own, or
    data.evidence_root); on data without masks it stops at parse time with the two fixes."""
    from saliency_bench.workflow_config import evidence_root, method_configs, reads_evidence

    user = {"data": {"root": "images"}, "model": {"checkpoint": "model.pt"}}
    assert "evidence" not in [m.method_id for m in method_configs(load_config(user))]  # off by default
    with pytest.raises(UserError, match="evidence needs evidence masks: set data.evidence_root, or "
                                        "baselines.evidence: false"):
        method_configs(load_config({**user, "baselines": {"evidence": True}}))
    for values, root in [({**user, "data": {"root": "images", "evidence_root": "masks"}}, "masks"),
                         ({}, "results/demo/data/evidence")]:
        config = load_config({**values, "baselines": {"evidence": True}})
        assert [m.method_id for m in method_configs(config) if reads_evidence(m)] == ["evidence"]
        assert evidence_root(config) == root


def test_an_image_of_the_run_without_an_evidence_mask_stops_before_any_job(tmp_path):
    """It stopped the evidence row's explain job, after the masks were drawn. Images the run does not
    explain (data.limit) need no mask."""
    import numpy as np
    from PIL import Image

    from saliency_bench.workflow_config import check_evidence

    for index in range(3):
        for folder in ("images", "evidence"):
            (tmp_path / folder / "ants").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / folder / "ants" / f"{index}.png")
    (tmp_path / "evidence" / "ants" / "2.png").unlink()
    values = {"data": {"root": str(tmp_path / "images"), "split": "all", "evidence_root": str(tmp_path / "evidence")},
              "model": {"checkpoint": "model.pt"}, "baselines": {"evidence": True}}
    with pytest.raises(UserError, match=r"no evidence mask for 1 of the run's 3 images, e\.g\. ants/2\.png, under .*; "
                                        "add <evidence_root>/<image_id> .* or set baselines.evidence: false"):
        check_evidence(load_config(values))
    check_evidence(load_config({**values, "data": {**values["data"], "limit": 2}}))
    check_evidence(load_config({**values, "baselines": {"evidence": False}}))
