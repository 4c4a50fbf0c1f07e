"""How the package talks to its user: library modules log through `logging` (their `__name__`
logger, under "saliency_bench"); the command line shows INFO and above on stderr, message only.
Used as a library, nothing is printed unless the caller configures logging."""
from __future__ import annotations

import logging
import sys

PACKAGE_LOGGER = "saliency_bench"


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is now, not the one at set-up, so that a redirected or
    captured stderr (a job's log file, pytest) receives the messages."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property decides
        pass


def show_messages(level: int = logging.INFO) -> None:
    """Print the package's log messages of `level` and above on stderr (idempotent)."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    if not any(isinstance(handler, _CurrentStderr) for handler in logger.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
