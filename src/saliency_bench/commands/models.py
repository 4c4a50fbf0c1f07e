"""`saliency-bench models`: list the torchvision classifiers usable as model.arch."""
from __future__ import annotations

from ..runtime.models import classifier_names


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the torchvision architectures that model.arch accepts")
    parser.set_defaults(func=run)


def run(args) -> int:
    print("\n".join(classifier_names()))
    return 0
