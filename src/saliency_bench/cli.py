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
from .console import show_messages
from .errors import UserError, check_outputs


def command_modules(argv: list[str]) -> list[str]:
    """Modules to import: only the requested command's (fast start-up), or all for the overview."""
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    requested = next((arg for arg in argv if not arg.startswith("-")), None)
    module = requested.replace("-", "_") if requested else None
    return [module] if module in names else names


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saliency-bench",
        description="Benchmark saliency methods (RISE, Abs-CAM) with deletion/insertion metrics.",
    )
    parser.add_argument("--version", action="version", version=f"saliency-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules(sys.argv[1:] if argv is None else argv):
        importlib.import_module(f"{commands.__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser(argv)  # asks the method registry, which imports the plugins
    except UserError as error:
        print(f"saliency-bench: error: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    show_messages()
    try:
        check_outputs(args)
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
