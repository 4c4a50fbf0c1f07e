"""The `saliency-bench` command line. Each subcommand lives in `saliency_bench.commands.<name>`.

Every module there defines `register(subparsers)`, which adds its parser and sets
`func`. Bad input raises `UserError`: printed as one line, exit status 2, no traceback
unless --debug.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands
from .errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saliency-bench",
        description="Benchmark saliency methods (RISE, Abs-CAM) with deletion/insertion metrics.",
    )
    parser.add_argument("--version", action="version", version=f"saliency-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except UserError as error:
        if args.debug:
            raise
        print(f"saliency-bench {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("saliency-bench: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
