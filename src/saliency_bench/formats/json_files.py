"""Small side files read as text or JSON (file lists, class names, the plan, forward settings, the
run facts): one place that turns a missing, binary or malformed file into a one-line UserError."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserError, require


def read_text(path: str | os.PathLike, what: str, fix: str) -> str:
    """The UTF-8 text of `path`; `what` names the file in errors (e.g. "plan"), `fix` says what to do."""
    require(not os.path.isdir(path), f"{what} {path} is a folder, not a file; {fix}")
    require(os.path.isfile(path), f"{what} {path} does not exist; {fix}")
    try:
        return Path(path).read_text(encoding="utf-8-sig")  # a leading BOM (Windows editors) is not text
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is not UTF-8 text (a binary file?); {fix}") from None
    except OSError as error:
        raise UserError(f"cannot read {what} {path} ({error.strerror}); {fix}") from None


def parse_json_object(text: str, what: str, fix: str) -> dict[str, Any]:
    """`text` parsed as one JSON object (not a list, number, ...)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{what} is not valid JSON ({error.msg}, line {error.lineno}); {fix}") from None
    require(isinstance(value, dict), f"{what} is not a JSON object (it holds a {type(value).__name__}); {fix}")
    return value


def read_json_object(path: str | os.PathLike, what: str, fix: str) -> dict[str, Any]:
    """The JSON object stored in `path`."""
    return parse_json_object(read_text(path, what, fix), f"{what} {path}", fix)
