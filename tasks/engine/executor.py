"""The one executor: runs any list of steps (tasks/engine/steps.py) for a release, and owns what every strategy
used to repeat by hand:
- the timeline (one row per step, the progress artifact counts them) and the phase a failure is reported in;
- the Lease check before every step that changes something;
- the undo stack: a step's undo is pushed when it starts; a failure before the point of no return unwinds it,
  newest first, under deferred SIGTERMs, then the on-rollback hooks run and the outcome is recorded;
- a failure after the point of no return (OnFailure.REPORT) is reported and nothing is undone;
- cancel = rollback: Prefect's TerminationSignal that is a cancel unwinds the same stack, then the run ends
  Cancelled (tasks/prefect_adapter/cancellation.py); a shutdown or reschedule is left alone (the Lease lets a re-run
  converge);
- a re-run's resume from the recorded point (`resume_at`: the index of the first step to run);
- where to go on after a step: the next one, or a later step it names (`release.go_to`; the steps between do not
  run and leave no row in the timeline); the steps it added (`release.next_steps`) run first. An Inconclusive
  canary analysis adds its pause; `promote --full` adds the moves to 100 % and goes on after the last step.
What a strategy records at its end (the journal's fields, the report's details) and what its failed run raises it
gives as an `Ending`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prefect_greenlight.tasks.engine.steps import OnFailure, Step
from prefect_greenlight.tasks.engine.undo import UndoStack
from prefect_greenlight.tasks.errors import BadInput, CancelRequested, Rejected, ReleaseFailed
from prefect_greenlight.tasks.prefect_adapter.cancellation import await_cancel, cancel_requested, sigterm_deferred
from prefect_greenlight.tasks.record.report import Timeline, say


@dataclass
class Release:
    """One running release, as its steps see it. `handed_on` carries what one step gives a later one (the
    approval's answer for the switch's record, the smoke rows for the approval form)."""

    kube: Any
    timeline: Timeline
    undo: UndoStack = field(default_factory=UndoStack)
    lock: Any = None  # the Service's Lease (tasks/kube/lease.py); None for a run that changes nothing
    hooks: Any = None  # the release's HookRunner (tasks/hooks/runner.py)
    journal: Any = None  # the release's Journal (tasks/record/journal.py): events, approvals
    handed_on: dict[str, Any] = field(default_factory=dict)
    phase: str = ""
    done: list[str] = field(default_factory=list)  # names of the steps that ended well, in order
    go_to: str = ""  # set by a step's run: go on at the later step of this name
    next_steps: list[Step] = field(default_factory=list)  # set by a step's run: run these next
    cancelled: bool = False  # set as a cancel's rollback starts: an undo may do more for a cancel (a pipeline's)


@dataclass(frozen=True)
class Ending:
    """How a strategy ends a failed run: the undo's timeline name, its say-line, what it records."""

    undo_step: str  # "rollback" (blue-green), "abort" (canary)
    announce: Callable[[str, str, bool, int], str]  # (phase, reason, cancelled, changes) -> the line said first
    record: Callable[[str, ReleaseFailed, str], None]  # (outcome, failure, phase) -> journal, hooks record
    report: Callable[[Exception], Exception] | None = None  # a failure after the point of no return -> raise this
    outcome_of_success: str = "aborted"  # a verified undo that was not a cancel nor a rejection: rolled-back/aborted
    raised: Callable[[ReleaseFailed, Exception], Exception] | None = None  # (failure, cause) -> what the failed run
    # raises after its undo (default the ReleaseFailed; the cause itself is raised as it was): a pipeline's result


def outcome(exc: Exception, failure: ReleaseFailed, undone: str) -> str:
    """rollback-incomplete, cancelled, rejected, or `undone` (rolled-back / aborted)."""
    if not failure.rolled_back:
        return "rollback-incomplete"
    if failure.cancelled:
        return "cancelled"
    return "rejected" if isinstance(exc, Rejected) else undone


def run_step(step: Step, release: Release) -> str:
    """One step: the Lease check before a change, its undo pushed as it starts, its timeline row."""
    release.phase = step.failure_phase
    if step.changes and release.lock is not None:
        release.lock.check()
    if step.undo is not None:
        undo = step.undo
        release.undo.push(step.undo_name or f"undo {step.name}", lambda: undo(release))
    with release.timeline.step(step.name) as row:
        row["detail"] = step.run(release) or ""
    release.done.append(step.name)
    return row["detail"]


def lock_lost(release: Release) -> str:
    """Why the Service's Lease is no longer this release's; "" while it is (or for a run without one)."""
    lost = getattr(release.lock, "lost", None)
    return lost() if callable(lost) else ""


def roll_back(release: Release, ending: Ending, exc: Exception) -> ReleaseFailed:
    """Unwind every change, newest first; the on-rollback hooks; record the outcome. Returns the failure.
    A release whose Lease another release has taken over (its worker was frozen, its run Crashed and re-run)
    changes nothing: no undo, no hooks, no record; the Service is the other release's now."""
    phase, cancelled = release.phase, isinstance(exc, CancelRequested)
    release.cancelled = cancelled
    lost = lock_lost(release)
    if lost:
        say(f"not rolling back, recording nothing: {lost}; another release owns the Service now")
        return ReleaseFailed(reason=f"{exc}; {lost}", phase=phase, cancelled=cancelled)
    say(ending.announce(phase, str(exc), cancelled, len(release.undo)))
    with sigterm_deferred(), release.timeline.step(ending.undo_step):
        outcomes = release.undo.unwind()
    notes = release.hooks.on_rollback() if release.hooks is not None else []
    failure = ReleaseFailed(reason=str(exc), phase=phase, undo=outcomes, notes=notes, cancelled=cancelled)
    ending.record(outcome(exc, failure, ending.outcome_of_success), failure, phase)
    return failure


def next_index(queue: list[Step], at: int, release: Release) -> int:
    """Where to go on after `queue[at]` ran: at the step it named in `release.go_to` (a later one; those between
    are passed over), else at the next; the steps it added (`release.next_steps`) run first."""
    go_on, target = at + 1, release.go_to
    if target:
        later = [s.name for s in queue[at + 1:]]
        if target not in later:
            raise ValueError(f"step {queue[at].name} goes on at {target!r}, which is no later step")
        go_on += later.index(target)
    queue[go_on:go_on], release.next_steps, release.go_to = release.next_steps, [], ""
    return go_on


def execute(steps: Sequence[Step], release: Release, ending: Ending, resume_at: int = 0,
            begin: Callable[[Release], None] | None = None) -> None:
    """Run `steps[resume_at:]` in order (or where a step says to go on). `begin`: what the strategy does first,
    within the rollback's reach (the canary's first progress record). Bad input passes unchanged (nothing was
    changed); any other failure rolls back (or, past the point of no return, is reported); a cancel rolls back
    and the TerminationSignal goes on, so Prefect ends the run Cancelled."""
    current: list[Step] = []
    try:
        try:
            if begin is not None:
                begin(release)
            if release.hooks is not None:
                release.hooks.begin()  # adopt this release's hook record (a re-run after a kill) or start one
            queue, at = list(steps), resume_at
            while at < len(queue):
                current[:] = [queue[at]]
                run_step(queue[at], release)
                at = next_index(queue, at, release)
        except BadInput:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure after the first change is undone or reported
            if current and current[0].on_failure is OnFailure.REPORT and ending.report is not None:
                reported = ending.report(exc)
                if reported is exc:  # raised as it was, with the cause it had
                    raise
                raise reported from exc
            await_cancel()  # the failure may be a cancel arriving early: then it raises TerminationSignal
            failure = roll_back(release, ending, exc)
            raised = failure if ending.raised is None else ending.raised(failure, exc)
            if raised is exc:
                raise
            raise raised from exc
    except BaseException as exc:  # Prefect's TerminationSignal: a cancel rolls back, then ends Cancelled
        if current and current[0].on_failure is OnFailure.REPORT:
            raise
        cancel = cancel_requested(exc)
        if cancel is not None:
            with sigterm_deferred():
                say(str(roll_back(release, ending, cancel)))
        raise
