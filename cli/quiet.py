"""What the terminal shows of Prefect's logging: greenlight's failures without Prefect's tracebacks, and no
temporary-server chatter when no Prefect server is configured."""

from __future__ import annotations

import logging
import os

from prefect_greenlight.cli.no_server import hide_drain_lines, hide_server_lines
from prefect_greenlight.tasks.errors import GreenlightError


class _QuietFormatter(logging.Formatter):
    """Terminal output only: a greenlight failure (the reason and each undo step are printed last) is logged by
    Prefect with a full traceback; on the terminal keep the message and drop the traceback. The Prefect API
    handler has already received the full record by then."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, GreenlightError):
            return self.inner.format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved


def quiet_expected_tracebacks() -> None:
    import prefect.main  # noqa: F401 - sets up Prefect's logging (its console handler on the root logger)

    for handler in logging.getLogger().handlers:
        if type(handler).__name__ == "PrefectConsoleHandler" and not isinstance(handler.formatter, _QuietFormatter):
            handler.setFormatter(_QuietFormatter(handler.formatter))
    if not os.environ.get("PREFECT_API_URL"):
        hide_server_lines()
        hide_drain_lines()
