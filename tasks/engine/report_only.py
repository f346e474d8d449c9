"""Lists of steps that are themselves the undo (`greenlight rollback`, `greenlight abort`): a failure undoes nothing
of theirs. Every step reports (OnFailure.REPORT) and the run records "failed"; the step's own error goes on
unchanged (the CLI prints it, exit 1), as these commands always did. A cancel (Prefect's TerminationSignal) is
not a failure: nothing is recorded or undone, as before.

A stand-in for an engine option (a list whose failures are recorded, then re-raised as they are): the executor
raises what `Ending.report` returns `from` the failure, which would make the error its own cause and drop the
cause it had (a Kubernetes API error under a PermanentError); `execute_reporting` puts that cause back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from prefect_greenlight.tasks.decisions.plan import PlanStep
from prefect_greenlight.tasks.engine.executor import Ending, execute
from prefect_greenlight.tasks.engine.steps import OnFailure, Step
from prefect_greenlight.tasks.errors import ReleaseFailed
from prefect_greenlight.tasks.record.report import say


class Reporting(Protocol):
    """A running list (an engine Release) that knows how its failure is recorded."""

    def record_failed(self, reason: str) -> None: ...


def reporting(name: str, run: Callable[[Any], str], describe: Callable[[Any], PlanStep], *,
              changes: bool = False) -> Step:
    """A step whose failure is reported, nothing undone (`changes`: the Lease is checked before it)."""
    return Step(name, run, describe, on_failure=OnFailure.REPORT, changes=changes)


def said(detail: str) -> str:
    """Say a step's detail line as well as putting it in the timeline."""
    say(detail)
    return detail


def execute_reporting(steps: Sequence[Step], release: Reporting, what: str) -> None:
    """Run `steps` with the engine; a failure is recorded (`release.record_failed`) and raised as it was."""
    def report(exc: Exception) -> Exception:
        release.record_failed(str(exc))
        return exc  # the executor raises it as it was

    def record(outcome: str, failure: ReleaseFailed, phase: str) -> None:  # only a failure before the first step
        release.record_failed(failure.reason)

    ending = Ending(what, lambda phase, reason, cancelled, changes: f"{what} failed during {phase}: {reason}",
                    record, report)
    execute(steps, release, ending)
