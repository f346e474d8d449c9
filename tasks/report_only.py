"""Lists of steps that are themselves the undo (`greenlight rollback`, `greenlight abort`): a failure undoes nothing
of theirs. Every step reports (OnFailure.REPORT) and the run records "failed"; the step's own error goes on
unchanged (the CLI prints it, exit 1), as these commands always did. A cancel (Prefect's TerminationSignal) is
not a failure: nothing is recorded or undone, as before.

A stand-in for an engine option (a list whose failures are recorded and re-raised as they are); the executor's
`raise ending.report(exc) from exc` makes the error its own cause, which tracebacks print once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect_greenlight.tasks.decisions.plan import PlanStep
from prefect_greenlight.tasks.engine.executor import Ending
from prefect_greenlight.tasks.engine.steps import OnFailure, Step
from prefect_greenlight.tasks.errors import ReleaseFailed
from prefect_greenlight.tasks.record.report import say


def reporting(name: str, run: Callable[[Any], str], describe: Callable[[Any], PlanStep], *,
              changes: bool = False) -> Step:
    """A step whose failure is reported, nothing undone (`changes`: the Lease is checked before it)."""
    return Step(name, run, describe, on_failure=OnFailure.REPORT, changes=changes)


def said(detail: str) -> str:
    """Say a step's detail line as well as putting it in the timeline."""
    say(detail)
    return detail


def failed_ending(what: str, record_failed: Callable[[str], None]) -> Ending:
    """`record_failed(reason)` writes the "failed" record (journal, history); `what` names the command."""

    def report(exc: Exception) -> Exception:
        record_failed(str(exc))
        return exc

    def record(outcome: str, failure: ReleaseFailed, phase: str) -> None:  # only a failure before the first step
        record_failed(failure.reason)

    return Ending(what, lambda phase, reason, cancelled, changes: f"{what} failed during {phase}: {reason}",
                  record, report)
