"""The release engine (tasks/engine/): the executor on lists of fake steps (roll back or report, go_to, steps added
by a step, resume_at, cancel = rollback, the Lease check)."""

from __future__ import annotations

import signal

import pytest
from prefect.exceptions import TerminationSignal

from prefect_greenlight.tasks.decisions.plan import PlanStep, StepKind
from prefect_greenlight.tasks.engine.executor import Ending, Release, execute
from prefect_greenlight.tasks.engine.steps import OnFailure, Step
from prefect_greenlight.tasks.errors import PermanentError, Rejected, ReleaseFailed
from prefect_greenlight.tasks.record import cancellation
from prefect_greenlight.tasks.record.report import Timeline


@pytest.fixture(autouse=True)
def no_prefect_run(monkeypatch):
    """Outside a flow run: no cancel intent, no run state (a failure is no cancel arriving early)."""
    monkeypatch.setattr(cancellation, "_intent", lambda: None)
    monkeypatch.setattr(cancellation, "_run_state", lambda: None)


class Lock:
    def __init__(self):
        self.checks = 0

    def check(self) -> None:
        self.checks += 1


class Journal:
    def __init__(self):
        self.events: list[tuple] = []

    def event(self, kind, **payload) -> None:
        self.events.append((kind.value, payload))

    def approval(self, note: str, approved: bool) -> None:
        self.events.append(("approval", note))

    def finish(self, outcome: str, **fields) -> None:
        self.events.append(("finish", outcome))


class Hooks:
    """A HookRunner's engine side: every hook succeeds and is recorded."""

    def __init__(self):
        self.ran: list[tuple] = []

    def begin(self) -> None:
        self.ran.append(("begin",))

    def run_one(self, hook, lock, percent, next_percent) -> str:
        self.ran.append((hook.name, percent, next_percent))
        return "ok"

    def on_rollback(self) -> list[str]:
        return []

    def finish(self, outcome: str) -> None:
        self.ran.append(("finish", outcome))

    def markdown(self) -> str:
        return ""


def ending(recorded: list) -> Ending:
    return Ending("undo", lambda phase, reason, cancelled, changes: f"undoing {changes}",
                  lambda outcome, failure, phase: recorded.append((outcome, phase, [u.step for u in failure.undo])),
                  report=lambda exc: RuntimeError(f"reported: {exc}"))


def release(**handed_on) -> Release:
    return Release(kube=None, timeline=Timeline(), lock=Lock(), hooks=Hooks(), journal=Journal(), handed_on=handed_on)


def step(name: str, ran: list, *, fail: BaseException | None = None, undo: bool = False, then=None,
         **fields) -> Step:
    def run(r: Release) -> str:
        ran.append(name)
        if then is not None:
            then(r)
        if fail is not None:
            raise fail
        return f"{name} done"
    return Step(name, run, lambda f: PlanStep(name, StepKind.CHECK, "", ""),
                undo=(lambda r: ran.append(f"undo {name}") or "undone") if undo else None, undo_name=f"undo {name}",
                **fields)


def names(r: Release) -> list[str]:
    return [row["step"] for row in r.timeline.rows()]


# -- the executor ---------------------------------------------------------------------------------------------
def test_a_failure_rolls_back_newest_first_over_the_steps_that_pushed_an_undo():
    ran, recorded, r = [], [], release()
    steps = [step("a", ran, undo=True), step("b", ran), step("c", ran, undo=True, changes=True),
             step("d", ran, fail=PermanentError("boom")), step("e", ran)]
    with pytest.raises(ReleaseFailed) as failed:
        execute(steps, r, ending(recorded))
    assert ran == ["a", "b", "c", "d", "undo c", "undo a"]
    assert names(r) == ["a", "b", "c", "d", "undo"] and not r.timeline.rows()[3]["ok"]
    assert recorded == [("aborted", "d", ["undo c", "undo a"])] and failed.value.rolled_back
    assert r.lock.checks == 1, "the Lease is checked before a change only"


def test_a_failure_past_the_point_of_no_return_is_reported_and_nothing_undone():
    ran, recorded = [], []
    steps = [step("a", ran, undo=True), step("cleanup", ran, fail=PermanentError("x"), on_failure=OnFailure.REPORT)]
    with pytest.raises(RuntimeError, match="reported: x"):
        execute(steps, release(), ending(recorded))
    assert ran == ["a", "cleanup"] and recorded == []


def test_a_rejection_is_recorded_as_rejected():
    recorded: list = []
    with pytest.raises(ReleaseFailed):
        execute([step("a", [], undo=True), step("gate", [], fail=Rejected("no"))], release(), ending(recorded))
    assert recorded == [("rejected", "gate", ["undo a"])]


def test_go_to_goes_on_at_a_later_step_and_the_steps_between_leave_no_row():
    ran, r = [], release()
    jump = step("b", ran, then=lambda rel: setattr(rel, "go_to", "e"))
    execute([step("a", ran), jump, step("c", ran, undo=True), step("d", ran), step("e", ran)], r, ending([]))
    assert ran == ["a", "b", "e"] and names(r) == ["a", "b", "e"] and len(r.undo) == 0


def test_go_to_an_earlier_or_unknown_step_is_a_failure():
    for target in ("a", "nope"):
        recorded: list = []
        steps = [step("a", [], undo=True), step("b", [], then=lambda rel, t=target: setattr(rel, "go_to", t)),
                 step("c", [])]
        with pytest.raises(ReleaseFailed, match="which is no later step"):
            execute(steps, release(), ending(recorded))
        assert recorded == [("aborted", "b", ["undo a"])]


def test_a_step_may_add_steps_to_run_right_after_it():
    ran, r = [], release()
    extra = step("x", ran)
    execute([step("a", ran, then=lambda rel: rel.next_steps.append(extra)), step("b", ran)], r, ending([]))
    assert names(r) == ["a", "x", "b"]


def test_resume_at_starts_at_that_step_and_begin_runs_first():
    ran, r = [], release()
    execute([step(n, ran) for n in "abcd"], r, ending([]), resume_at=2, begin=lambda rel: ran.append("begin"))
    assert ran == ["begin", "c", "d"] and r.hooks.ran == [("begin",)]


def test_a_failure_in_begin_rolls_back_too():
    recorded: list = []
    with pytest.raises(ReleaseFailed):
        execute([step("a", [])], release(), ending(recorded), begin=lambda rel: 1 / 0)
    assert recorded == [("aborted", "", [])]


def test_a_cancel_rolls_back_then_the_termination_goes_on(monkeypatch):
    monkeypatch.setattr(cancellation, "_intent", lambda: "cancel")
    ran, recorded = [], []
    steps = [step("a", ran, undo=True), step("pause", ran, fail=TerminationSignal(signal.SIGTERM)), step("b", ran)]
    with pytest.raises(TerminationSignal):
        execute(steps, release(), ending(recorded))
    assert ran == ["a", "pause", "undo a"] and recorded == [("cancelled", "pause", ["undo a"])]


def test_a_shutdown_that_is_no_cancel_undoes_nothing(monkeypatch):
    monkeypatch.setattr(cancellation, "_run_state", lambda: "RUNNING")
    ran, recorded = [], []
    with pytest.raises(TerminationSignal):
        execute([step("a", ran, undo=True), step("b", ran, fail=TerminationSignal(signal.SIGTERM))], release(),
                ending(recorded))
    assert ran == ["a", "b"] and recorded == []
