"""A model of the user's own, not a torchvision one, for tests/test_models.py and tests/test_workflow.py.

The config names it as `model.arch: small_cnn:small_cnn` (module:function); the function takes
num_classes and returns the nn.Module, whose state dict is the checkpoint.
"""
from torch import nn


def block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.MaxPool2d(2))


def small_cnn(num_classes: int = 10) -> nn.Module:
    model = nn.Sequential()
    model.add_module("stem", block(3, 8))
    model.add_module("stage1", block(8, 16))
    model.add_module("stage2", block(16, 32))
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flatten", nn.Flatten())
    model.add_module("head", nn.Linear(32, num_classes))
    return model


def takes_no_classes() -> nn.Module:
    return small_cnn()


def not_a_module(num_classes: int):
    return [num_classes]
