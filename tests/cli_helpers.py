"""What every bad-input test of the command line asserts, in one place."""
from __future__ import annotations

import pytest

from saliency_bench import UserError, cli


def one_line_error(argv: list[str], capsys, *fragments: str) -> str:
    """Run the CLI, expect a one-line UserError naming all `fragments`; with --debug it propagates."""
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"saliency-bench {argv[0]}: error: "), captured.err
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    with pytest.raises(UserError):
        cli.main(["--debug", *argv])
    capsys.readouterr()
    return lines[0]
