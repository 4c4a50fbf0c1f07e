"""User-facing errors and atomic output writing.

A `UserError` is bad input (config, images, checkpoint, layer name, ...). The CLI
prints its message as one line and exits non-zero, without a traceback unless
`--debug` is given. Outputs are written through `atomic_path`, so a failure never
leaves a half-written file behind.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

# The command-line options that name outputs (argparse dests); a command whose --out is a folder
# says so with `parser.set_defaults(folder_outputs=("out",))`.
FILE_OUTPUTS = ("out", "out_json", "out_records", "out_curves", "card", "figure")
FOLDER_OUTPUTS = ("out_dir",)


class UserError(Exception):
    """Bad input. The message names the problem and the fix, on one line."""


def require(condition: bool, message: str) -> None:
    """Raise `UserError(message)` unless `condition` holds."""
    if not condition:
        raise UserError(message)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` on success.

    On any exception the temporary file is removed and `path` is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        try:
            os.replace(tmp, final)
        except OSError as error:
            raise UserError(f"cannot write {final} ({error.strerror}); remove it or choose another path") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def check_outputs(args: argparse.Namespace) -> None:
    """Before any work: every output path of the command can be written, and no two are the same.

    A run that would fail only at its last write (after minutes of forward passes) fails now, with
    nothing written."""
    folders = set(FOLDER_OUTPUTS) | set(getattr(args, "folder_outputs", ()))
    seen: dict[Path, str] = {}
    for dest in FILE_OUTPUTS + FOLDER_OUTPUTS:
        value, flag = getattr(args, dest, None), "--" + dest.replace("_", "-")
        if value is None:
            continue
        require(str(value).strip() != "", f"{flag} is empty; give a path")
        path = Path(value)
        key = path.resolve()
        require(key not in seen, f"{seen.get(key)} and {flag} both name {path}; give each output its own path")
        seen[key] = flag
        is_folder = dest in folders
        require(is_folder or not (path.is_dir() or str(value).endswith(os.sep)), f"{flag} {value} is a folder; give a file path")
        require(not is_folder or not path.exists() or path.is_dir(), f"{flag} {path} is a file; give a folder path")
        require_writable(path if is_folder else path.parent, f"{flag} {path}")


def require_writable(folder: Path, what: str) -> None:
    """`folder` (or, where it does not exist yet, its nearest existing parent) takes new files."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    require(existing.is_dir(), f"{what}: {existing} is a file, so no folder can be made below it; choose another path")
    try:  # a real write: permissions, read-only or immutable file systems all show up
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".saliency-bench-probe-"):
            pass
    except OSError as error:
        raise UserError(f"{what}: cannot write in {existing} ({error.strerror}); choose a writable path") from None
