"""Models: torchvision classifiers by name, safe checkpoint loading in every common layout, the device."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import saliency_bench
from saliency_bench import UserError
from saliency_bench.abscam import abscam_init
from saliency_bench.runtime.folding import conv_bn_pairs
from saliency_bench.runtime.forward import ModelRunner, exact_float32
from saliency_bench.runtime.models import build_model, load_checkpoint, load_model, read_state_dict, resolve_device

SOURCE = Path(saliency_bench.__file__).parent  # the package under test, wherever it is installed


class Opaque:
    """A custom class: pickling an instance makes a checkpoint that needs weights_only=False."""

    def __init__(self):
        self.value = 3


def seeded(arch: str, num_classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(arch, num_classes).eval()


@pytest.fixture(scope="module")
def reference() -> nn.Module:
    return seeded("resnet18", 5, seed=1)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch, num_classes", [("resnet18", 7), ("mobilenet_v3_small", 3), ("squeezenet1_0", 4)])
def test_any_torchvision_classifier_with_its_last_layer_resized(arch, num_classes, images):
    model = build_model(arch, num_classes).eval()
    with torch.no_grad():
        assert model(images).shape == (2, num_classes)


def test_unknown_architecture():
    with pytest.raises(UserError, match="unknown architecture 'resnet19'.*saliency-bench models"):
        build_model("resnet19", 10)
    with pytest.raises(UserError, match="unknown architecture"):
        build_model("fasterrcnn_resnet50_fpn", 10)  # a detector, not a classifier


PLUGINS = Path(__file__).parent / "data" / "plugins"


@pytest.fixture
def plugin_path(monkeypatch):
    """tests/data/plugins on the import path, as a user's PYTHONPATH puts their own module."""
    monkeypatch.syspath_prepend(str(PLUGINS))


def test_a_model_factory_of_the_users_own_builds_loads_and_explains(plugin_path, tmp_path, images):
    """`model.arch: module:function`: any nn.Module, not only torchvision's; its checkpoint, folding
    and Abs-CAM at its own layer names work as for a ResNet."""
    import small_cnn

    from saliency_bench.runtime.factories import factory_source

    torch.manual_seed(0)
    trained = small_cnn.small_cnn(num_classes=3).eval()
    torch.save(trained.state_dict(), tmp_path / "model.pt")
    model = load_model("small_cnn:small_cnn", 3, checkpoint=str(tmp_path / "model.pt"), input_size=(32, 32))
    runner = ModelRunner(model, batch_size=2)
    assert runner.fold_bn and conv_bn_pairs(model) == (("stem.0", "stem.1"), ("stage1.0", "stage1.1"), ("stage2.0", "stage2.1"))
    with torch.no_grad():
        assert torch.equal(model(images), trained(images))
        torch.testing.assert_close(runner.run(images), trained(images), rtol=1e-5, atol=1e-5)
    assert abscam_init(model, images, "stage1", torch.tensor([0, 2])).shape == (2, 32, 32)
    assert factory_source("small_cnn:small_cnn") == PLUGINS / "small_cnn.py"
    assert factory_source("resnet18") is None


@pytest.mark.parametrize("arch, message", [
    ("small_cnn:", "'small_cnn:' is no model factory; write module:function"),
    ("no_such_module:build", "module no_such_module cannot be imported .*; put its folder on PYTHONPATH"),
    ("small_cnn:no_such_function", "small_cnn has no function no_such_function"),
    ("small_cnn:takes_no_classes", "takes_no_classes does not take num_classes as a keyword"),
    ("small_cnn:not_a_module", r"not_a_module\(num_classes=3\) returned a list, not a torch.nn.Module"),
])
def test_a_bad_model_factory_is_one_line_naming_the_fix(plugin_path, arch, message):
    with pytest.raises(UserError, match=message):
        build_model(arch, 3)


def test_a_greyscale_model_is_told_how_to_take_rgb():
    """Microscope models are often trained on one channel: no image size would help, which the generic
    'use a larger image size' said."""
    from saliency_bench.runtime.models import probe_forward

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(UserError, match=r"takes 1-channel images, but the images are fed as RGB .* x.mean\(1, keepdim=True\)"):
        probe_forward(model, (32, 32), "my_models:grey", 2)


def test_a_model_that_returns_more_than_logits_is_told_to_return_them_alone():
    from saliency_bench.runtime.models import probe_forward

    class WithFeatures(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(4, 2)

        def forward(self, x):
            features = self.body(x)
            return self.head(features), features

    with pytest.raises(UserError, match=r"my_models:net returns a tuple for one image, not a \(1, 2\) tensor of class "
                                        r"scores; give it a forward that returns the logits alone"):
        probe_forward(WithFeatures().eval(), (16, 16), "my_models:net", 2)
    with pytest.raises(UserError, match=r"gives output \(1, 4\) for one image, not \(1, 2\)"):
        probe_forward(WithFeatures().body.eval(), (16, 16), "my_models:body", 2)


def test_a_model_factory_takes_no_torchvision_weights(plugin_path):
    with pytest.raises(UserError, match="model.weights names torchvision's weights, which model.arch small_cnn:small_cnn"):
        build_model("small_cnn:small_cnn", 1000, weights="DEFAULT")


def test_pretrained_weights_are_checked_before_any_download():
    with pytest.raises(UserError, match="1000 ImageNet classes, but num_classes is 10"):
        build_model("resnet18", 10, weights="DEFAULT")
    with pytest.raises(UserError, match="unknown weights 'IMAGENET9K'.*DEFAULT"):
        build_model("resnet18", 1000, weights="IMAGENET9K")
    with pytest.raises(UserError, match="either model.checkpoint or model.weights"):
        load_model("resnet18", 1000, checkpoint="x.pt", weights="DEFAULT")


def saved_as(model: nn.Module, layout: str) -> object:
    """The model's weights in one of the layouts training scripts commonly save."""
    state = model.state_dict()
    if layout == "plain":
        return state
    if layout == "state_dict":
        return {"state_dict": state, "epoch": 12, "arch": "resnet18"}
    if layout == "model_state_dict":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return {"model_state_dict": state, "optimizer_state_dict": optimizer.state_dict(), "loss": 0.25}
    if layout == "DataParallel":
        return nn.DataParallel(model).state_dict()
    if layout == "torch.compile":
        return torch.compile(model).state_dict()
    if layout == "lightning":  # a LightningModule holding the net as self.net, saved by its Trainer
        wrapper = nn.Module()
        wrapper.net, wrapper.loss = model, nn.CrossEntropyLoss()
        return {"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0", "state_dict": wrapper.state_dict(),
                "optimizer_states": [torch.optim.Adam(model.parameters()).state_dict()], "lr_schedulers": [],
                "hparams_name": "kwargs", "hyper_parameters": {"lr": 1e-3, "num_classes": 5}}
    assert layout == "half precision"
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


@pytest.mark.parametrize("layout", ["plain", "state_dict", "model_state_dict", "DataParallel", "torch.compile", "lightning"])
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, reference, images, layout):
    path = tmp_path / "model.pt"
    torch.save(saved_as(reference, layout), path)
    torch.manual_seed(2)  # load_model builds a differently initialised model, then loads the checkpoint into it
    loaded = load_model("resnet18", 5, checkpoint=str(path), device="cpu")
    with torch.no_grad():
        assert torch.equal(loaded(images), reference(images))  # the same weights, inputs and batch: exact
    assert not loaded.training and next(loaded.parameters()).device.type == "cpu"


def test_a_model_among_other_weights_names_the_prefix_to_keep(tmp_path, reference, images):
    """A wrapper with a weighted loss, or a teacher beside the student: the model's keys are there under
    one prefix, but which of several is the explained model only the user knows."""
    def wrapped(**children):
        wrapper = nn.Module()
        for name, child in children.items():
            setattr(wrapper, name, child)
        return wrapper.state_dict()

    path = tmp_path / "model.pt"
    torch.save(wrapped(net=reference, loss=nn.CrossEntropyLoss(weight=torch.ones(5))), path)
    with pytest.raises(UserError, match=r"keys under 'net.' fit the model, beside 1 other key\(s\) \(loss.weight\); keep the model's: "
                                        r"torch.save\(\{k\[4:\]: v for k, v in state_dict.items\(\) if k.startswith\('net.'\)\}, path\)"):
        load_model("resnet18", 5, checkpoint=str(path))
    torch.save(wrapped(student=reference, teacher=seeded("resnet18", 5, seed=3)), path)
    with pytest.raises(UserError, match="keys under 'student.' and 'teacher.' each fit the model; keep the one you explain"):
        load_model("resnet18", 5, checkpoint=str(path))
    # the re-save the message gives loads
    state = {k[4:]: v for k, v in wrapped(net=reference, loss=nn.CrossEntropyLoss(weight=torch.ones(5))).items()
             if k.startswith("net.")}
    torch.save(state, path)
    with torch.no_grad():
        assert torch.equal(load_model("resnet18", 5, checkpoint=str(path))(images), reference(images))


def test_a_fresh_model_differs_from_the_reference(reference, images):
    """So that identical outputs after loading prove the checkpoint was loaded."""
    with torch.no_grad():
        assert not torch.allclose(seeded("resnet18", 5, seed=2)(images), reference(images))


def test_half_precision_checkpoint_loads_into_float32(tmp_path, reference, images):
    path = tmp_path / "half.pt"
    torch.save(saved_as(reference, "half precision"), path)
    loaded = load_model("resnet18", 5, checkpoint=path, device="cpu")
    assert next(loaded.parameters()).dtype == torch.float32
    with torch.no_grad():
        assert torch.allclose(loaded(images), reference(images), rtol=1e-2, atol=1e-2)  # weights rounded to fp16


def test_checkpoint_with_another_class_count_names_the_shapes(tmp_path, reference):
    path = tmp_path / "five.pt"
    torch.save(reference.state_dict(), path)
    with pytest.raises(UserError, match=r"fc\.weight \(5, 512\) vs model \(3, 512\).*num_classes") as caught:
        load_model("resnet18", 3, checkpoint=path)
    assert "\n" not in str(caught.value)


def test_checkpoint_of_another_architecture_names_the_keys(tmp_path, reference):
    path = tmp_path / "resnet18.pt"
    torch.save(reference.state_dict(), path)
    with pytest.raises(UserError, match=r"missing \d+ keys: features\.0\.0\.weight.*unexpected \d+ keys: conv1\.weight.*model\.arch"):
        load_model("mobilenet_v3_small", 5, checkpoint=path)
    partial = {k: v for k, v in reference.state_dict().items() if not k.startswith("layer4")}
    torch.save(partial, path)
    with pytest.raises(UserError, match=r"missing \d+ keys: layer4\."):
        load_checkpoint(build_model("resnet18", 5), path)


@pytest.mark.parametrize("arch, head, attribute", [("resnet18", "fc", "model.fc"),
                                                   ("vgg11", "classifier.6", "model.classifier[6]")])
def test_a_head_wrapped_in_a_sequential_names_the_fix_that_loads_it(tmp_path, images, arch, head, attribute):
    """Fine-tuning code often writes `model.fc = nn.Sequential(nn.Dropout(0.5), nn.Linear(512, 4))`: the
    error names the re-save that makes the checkpoint fit, and that re-save loads to the same outputs."""
    trained = build_model(arch, 5).eval()
    parent_name, _, name = head.rpartition(".")
    parent = trained.get_submodule(parent_name)
    setattr(parent, name, nn.Sequential(nn.Dropout(0.5), getattr(parent, name)))
    path = tmp_path / "wrapped.pt"
    torch.save(trained.state_dict(), path)
    with pytest.raises(UserError, match=re.escape(f"with {attribute} = {attribute}[1];")) as caught:
        load_checkpoint(build_model(arch, 5), path)
    assert f"the checkpoint's {head} is an nn.Sequential" in str(caught.value) and "\n" not in str(caught.value)
    setattr(parent, name, getattr(parent, name)[1])  # the fix the message names
    torch.save(trained.state_dict(), path)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(build_model(arch, 5), path).eval()(images), trained(images))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found: .*nope.pt.*torch.save"):
        load_model("resnet18", 5, checkpoint=tmp_path / "nope.pt")


@pytest.mark.parametrize("payload", ["custom class", "nn.Module"])
def test_pickles_that_need_weights_only_false_are_refused(tmp_path, payload):
    path = tmp_path / "unsafe.pt"
    torch.save({"state_dict": {}, "extra": Opaque()} if payload == "custom class" else nn.Linear(3, 2), path)
    with pytest.raises(UserError) as caught:
        read_state_dict(path)
    message = str(caught.value)
    assert "weights_only" in message and "torch.save(model.state_dict(), path)" in message
    assert ("Opaque" if payload == "custom class" else "torch.nn.modules.linear.Linear") in message
    assert "\n" not in message and "\x1b" not in message


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"hello world\n", "KeyError"),
                                             (bytes(range(256)) * 4, "Unsupported operand")])
def test_files_that_are_not_checkpoints(tmp_path, content, reason):
    path = tmp_path / "not_a_checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=f"cannot read checkpoint .*{reason}.*torch.save") as caught:
        read_state_dict(path)
    assert "weights_only=False" not in str(caught.value) and "\n" not in str(caught.value)


def test_a_checkpoint_without_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(UserError, match="holds no state dict"):
        read_state_dict(path)


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def tf32_flags() -> tuple[bool, bool]:
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def allow_tf32(allowed: bool) -> None:
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed


@pytest.fixture
def tf32_allowed():
    """TF32 allowed (cuDNN's default in PyTorch) during the test; the flags restored afterwards."""
    before = tf32_flags()
    allow_tf32(True)
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_float32_on_cuda_means_float32_not_tf32(tf32_allowed):
    exact_float32(torch.device("cpu"))
    assert tf32_flags() == (True, True)  # other devices leave the flags alone
    exact_float32(torch.device("cuda:0"))
    assert tf32_flags() == (False, False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_way_the_package_puts_a_model_to_work_on_cuda_turns_tf32_off(tf32_allowed):
    model = build_model("resnet18", 4).eval().cuda()
    image = torch.zeros(1, 3, 32, 32, device="cuda")
    for start in (lambda: resolve_device("cuda"), lambda: ModelRunner(model, 2),
                  lambda: abscam_init(model, image, "layer2")):
        allow_tf32(True)
        start()
        assert tf32_flags() == (False, False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is missing")
def test_cuda_requested_without_cuda():
    for device in ("cuda", "cuda:1"):
        with pytest.raises(UserError, match=f"device {device} requested but CUDA is not available; use device: cpu or auto"):
            resolve_device(device)


def test_every_torch_load_in_the_package_uses_weights_only_true():
    """Never unpickle code: each torch.load call in the package passes weights_only=True literally."""
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                if not safe:
                    offenders.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    assert not offenders, f"torch.load without weights_only=True: {offenders}"
