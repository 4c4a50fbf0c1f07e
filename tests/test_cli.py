"""The console script, and bad input through the CLI: one line, non-zero exit, no traceback, no output file."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from saliency_bench import UserError, __version__, cli
from saliency_bench.errors import atomic_path
from saliency_bench.runtime.models import build_model
from cli_helpers import one_line_error

SCRIPT = Path(sys.executable).with_name("saliency-bench")


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def subcommand_names() -> list[str]:
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(action.choices)


# ---- the console script -------------------------------------------------------------------
def test_console_script_help_and_version():
    assert SCRIPT.is_file(), f"{SCRIPT} missing: reinstall with pip install -e ."
    shown = run_script("--help")
    assert shown.returncode == 0 and "usage: saliency-bench" in shown.stdout
    for name in ("images", "models", "check-model"):
        assert name in shown.stdout
    version = run_script("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"saliency-bench {__version__}"


def test_every_subcommand_has_help(capsys):
    names = subcommand_names()
    assert {"images", "models", "check-model"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as exited:
            cli.main([name, "--help"])
        assert exited.value.code == 0, name
        assert f"usage: saliency-bench {name}" in capsys.readouterr().out


def test_models_lists_classifiers(capsys):
    assert cli.main(["models"]) == 0
    names = capsys.readouterr().out.split()
    assert {"resnet18", "mobilenet_v3_small", "vgg16"} <= set(names) and "fasterrcnn_resnet50_fpn" not in names


# ---- check-model ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "resnet18-4.pt"
    torch.save(build_model("resnet18", 4).state_dict(), path)
    return path


def test_check_model_reports_shape_and_parameters(checkpoint, capsys):
    assert cli.main(["check-model", "--arch", "resnet18", "--num-classes", "4", "--checkpoint", str(checkpoint),
                     "--device", "cpu"]) == 0
    parameters = sum(p.numel() for p in build_model("resnet18", 4).parameters())
    out = capsys.readouterr().out
    assert "output shape (1, 4)" in out and f"{parameters} parameters" in out and "on cpu" in out
    assert cli.main(["check-model", "--arch", "mobilenet_v3_small", "--num-classes", "3", "--size", "64", "96"]) == 0
    assert "output shape (1, 3)" in capsys.readouterr().out


def test_check_model_shows_each_abscam_layers_feature_map_in_the_order_asked(checkpoint, capsys):
    assert cli.main(["check-model", "--num-classes", "4", "--checkpoint", str(checkpoint), "--size", "96", "64",
                     "--layers", "layer4", "layer1", "layer4.1.conv2"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines == ["  layer4: 512 channels of 3x2 (Abs-CAM Final: 513 forward passes per image)",
                     "  layer1: 64 channels of 24x16 (Abs-CAM Final: 65 forward passes per image)",
                     "  layer4.1.conv2: 512 channels of 3x2 (Abs-CAM Final: 513 forward passes per image)"]


@pytest.mark.parametrize("layers, message", [
    (["fc"], "layer 'fc' gives a (1, 4) output, not a (B, C, h, w) feature map; choose a layer that gives one; "
             "top-level layers that give one: conv1 (64x16x16), bn1 (64x16x16), relu (64x16x16), maxpool (64x8x8), "
             "layer1 (64x8x8), layer2 (128x4x4), layer3 (256x2x2) (abscam.variants: [] runs RISE"),
    (["layer9"], "unknown layer 'layer9'"),
])
def test_check_model_refuses_a_layer_abscam_cannot_use(layers, message, capsys):
    one_line_error(["check-model", "--num-classes", "4", "--size", "32", "32", "--layers", *layers], capsys, message)


# ---- errors: one line, exit 2, no traceback, no output ----------------------------------
def image(path: Path, size=(8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 60, 30)).save(path)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("cat", "dog"):
        for index in range(5):
            image(tmp_path / "data" / name / f"{index}.png")
    return tmp_path / "data"


def test_image_errors(tmp_path: Path, tree: Path, capsys):
    out = tmp_path / "out" / "images.csv"

    def fails(source: list[str], *fragments: str, split=("--split", "all")) -> None:
        one_line_error(["images", *source, *split, "--out", str(out)], capsys, *fragments)
        assert not out.parent.exists() or not any(out.parent.iterdir()), "a failed run wrote output"

    fails(["--root", str(tmp_path / "nowhere")], "data folder not found", "nowhere")
    (tree / "empty_class").mkdir()
    fails(["--root", str(tree)], "empty_class", "holds no images")
    (tree / "empty_class").rmdir()

    corrupt = tree / "dog" / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a JPEG")
    fails(["--root", str(tree)], "cannot be read", str(corrupt), "replace or remove")
    corrupt.unlink()

    unreadable = tree / "cat" / "link.png"
    unreadable.symlink_to(tree / "cat" / "gone.png")
    fails(["--root", str(tree)], "cannot be read", str(unreadable))
    unreadable.unlink()

    fails(["--file-list", str(tmp_path / "list.txt")], "file list not found", "list.txt")
    fails(["--root", str(tree)], "validation split of 10 images is empty", split=("--val-fraction", "0.05"))
    fails(["--root", str(tree)], "--images-per-job must be at least 1", split=("--images-per-job", "0"))

    assert cli.main(["images", "--root", str(tree), "--split", "all", "--out", str(out)]) == 0  # the tree is fine again
    assert out.is_file()


def test_a_failed_run_leaves_the_previous_output_untouched(tmp_path: Path, tree: Path, capsys):
    out = tmp_path / "images.csv"
    out.write_text("previous\n")
    (tree / "cat" / "bad.png").write_bytes(b"broken")
    one_line_error(["images", "--root", str(tree), "--split", "all", "--out", str(out)], capsys, "bad.png")
    assert out.read_text() == "previous\n" and sorted(p.name for p in tmp_path.iterdir()) == ["data", "images.csv"]


def test_output_paths_are_checked_before_any_work(tmp_path: Path, tree: Path, capsys):
    images = ["images", "--root", str(tree), "--split", "all", "--out"]
    (tmp_path / "folder.csv").mkdir()
    one_line_error([*images, str(tmp_path / "folder.csv")], capsys, "--out", "is a folder")
    (tmp_path / "a_file").write_text("x")
    one_line_error([*images, str(tmp_path / "a_file" / "images.csv")], capsys, "a_file is a file", "no folder can be made")
    same = tmp_path / "same"
    one_line_error(["demo-model", "--out", str(same), "--card", str(same)], capsys, "--out and --card both name")
    one_line_error(["demo-data", "--out", str(tmp_path / "a_file")], capsys, "a_file is a file; give a folder path")
    one_line_error([*images, ""], capsys, "--out is empty; give a path")
    one_line_error([*images, str(tmp_path / "new_folder") + "/"], capsys, "new_folder/ is a folder; give a file path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "data", "folder.csv"]  # nothing written


def test_a_failed_rename_is_a_user_error_and_leaves_no_temporary(tmp_path: Path):
    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)  # a non-empty folder: the final rename fails
    with pytest.raises(UserError, match=f"cannot write {target}"):
        with atomic_path(target) as tmp:
            tmp.write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_every_output_option_is_checked():
    """An output option that check_outputs does not know would fail only at its write, after the work."""
    from saliency_bench.errors import FILE_OUTPUTS, FOLDER_OUTPUTS

    def parsers(parser: argparse.ArgumentParser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    outputs = {a.dest for p in parsers(cli.build_parser()) for a in p._actions
               if a.dest.startswith("out") or "output" in (a.help or "").lower().split(" (")[0]}
    assert outputs and outputs <= set(FILE_OUTPUTS) | set(FOLDER_OUTPUTS), outputs - set(FILE_OUTPUTS + FOLDER_OUTPUTS)


@pytest.mark.parametrize("argv, message", [
    (["masks", "--seed", "-1"], "argument --seed: a seed must lie in 0 .. 2**63 - 1, got -1"),
    (["images", "--split-seed", str(2**64)], "argument --split-seed: a seed must lie in"),
    (["masks", "--kind", "gaussian", "--mean", "nan"], "argument --mean: must be a finite number, got nan"),
    (["masks", "--kind", "perlin", "--frequency", "inf"], "argument --frequency: must be a finite number"),
    (["explain", "--threads", "0"], "argument --threads: must be at least 1, got 0"),
    (["evaluate", "--std", "0.2", "0", "0.2"], "argument --std: must be above 0, got 0"),
    (["tune-forward", "--size", "-32", "32"], "argument --size: must be at least 1, got -32"),
    (["plan", "--cores", "0"], "argument --cores: must be at least 1, got 0"),
    (["explain", "--batch-size", "lots"], "argument --batch-size: 'lots' is not a whole number"),
    (["sanity", "--layers"], "argument --layers: expected at least one argument"),
    (["explain", "--method", "random", "--seed", "-1"], "argument --seed: a seed must lie in"),
    (["evaluate", "--rows", "0"], "argument --rows: must be at least 1, got 0"),
    (["images", "--limit", "0"], "argument --limit: must be at least 1, got 0"),
])
def test_bad_numbers_are_refused_when_parsed(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_model_errors(tmp_path: Path, checkpoint: Path, capsys):
    base = ["check-model", "--device", "cpu"]
    one_line_error([*base, "--num-classes", "4", "--checkpoint", str(tmp_path / "missing.pt")], capsys,
                   "checkpoint not found", "missing.pt")
    one_line_error([*base, "--num-classes", "10", "--checkpoint", str(checkpoint)], capsys,
                   "does not fit the model", "fc.weight (4, 512) vs model (10, 512)")
    one_line_error([*base, "--arch", "resnet34", "--num-classes", "4", "--checkpoint", str(checkpoint)], capsys,
                   "does not fit the model", "missing", "layer1.2.conv1.weight")
    one_line_error([*base, "--arch", "resnet1O", "--num-classes", "4"], capsys, "unknown architecture 'resnet1O'")
    one_line_error([*base, "--num-classes", "10", "--weights", "DEFAULT"], capsys, "1000 ImageNet classes", "num_classes")
    unsafe = tmp_path / "whole_model.pt"
    torch.save(nn.Sequential(nn.Linear(2, 2)), unsafe)
    one_line_error([*base, "--num-classes", "4", "--checkpoint", str(unsafe)], capsys,
                   "weights_only", "torch.save(model.state_dict(), path)")
    if not torch.cuda.is_available():
        one_line_error(["check-model", "--num-classes", "4", "--device", "cuda"], capsys, "CUDA is not available")


def test_an_image_too_small_for_the_architecture(tmp_path: Path, capsys):
    # squeezenet pools 16x16 px down to nothing: torch's RuntimeError becomes one line before any work
    one_line_error(["check-model", "--arch", "squeezenet1_1", "--num-classes", "4", "--size", "16", "16"], capsys,
                   "squeezenet1_1 cannot take 16x16 px images", "Output size is too small", "use a larger image size")
    out = tmp_path / "forward_settings.json"
    one_line_error(["tune-forward", "--arch", "squeezenet1_1", "--num-classes", "4", "--size", "16", "16",
                    "--device", "cpu", "--out", str(out)], capsys, "cannot take 16x16 px images")
    assert not out.exists()
    assert cli.main(["check-model", "--arch", "squeezenet1_1", "--num-classes", "4", "--size", "32", "32"]) == 0


def test_console_script_errors_without_and_with_debug(tmp_path: Path, tree: Path):
    (tree / "dog" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "images.csv"
    plain = run_script("images", "--root", str(tree), "--split", "all", "--out", str(out))
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines() == [plain.stderr.strip()] and "broken.png" in plain.stderr
    debug = run_script("--debug", "images", "--root", str(tree), "--split", "all", "--out", str(out))
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "UserError" in debug.stderr
    assert not out.exists()
