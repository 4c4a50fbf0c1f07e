"""`saliency-bench models`: list the torchvision classifiers usable as model.arch by name."""
from __future__ import annotations

from ..runtime.models import classifier_names


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the torchvision architectures that model.arch accepts by name",
                                   description="List the torchvision classifiers that model.arch accepts by name. "
                                               "A model of your own code is model.arch: module:function (a function "
                                               "that takes num_classes and returns the nn.Module), not listed here.")
    parser.set_defaults(func=run)


def run(args) -> int:
    print("\n".join(classifier_names()))
    return 0
