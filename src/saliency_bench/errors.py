"""User-facing errors and atomic output writing.

A `UserError` is bad input (config, images, checkpoint, layer name, ...). The CLI
prints its message as one line and exits non-zero, without a traceback unless
`--debug` is given. Outputs are written through `atomic_path`, so a failure never
leaves a half-written file behind.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


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
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
