"""The terminal shows a greenlight failure's message without Prefect's traceback; anything unexpected keeps it,
and the log record itself (which the Prefect API handler also sees) is left as it was."""

from __future__ import annotations

import logging
import sys

from prefect_greenlight.cli.quiet import _QuietFormatter
from prefect_greenlight.tasks.errors import PermanentError


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:  # noqa: BLE001
        info = sys.exc_info()
    return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, "Encountered exception", None, info)


def test_expected_failure_loses_its_traceback_on_the_terminal_only():
    record = _record(PermanentError("smoke test of green-dep: 3 of 3 checks failed"))
    text = _QuietFormatter(logging.Formatter("%(message)s")).format(record)
    assert text == "Encountered exception"
    assert record.exc_info and isinstance(record.exc_info[1], PermanentError), "the record is untouched"
    assert "Traceback" in logging.Formatter("%(message)s").format(record), "other handlers still get it"


def test_unexpected_errors_keep_their_traceback():
    text = _QuietFormatter(logging.Formatter("%(message)s")).format(_record(ValueError("bug")))
    assert "Traceback" in text and "ValueError: bug" in text
