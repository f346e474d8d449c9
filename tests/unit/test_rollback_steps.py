"""`greenlight rollback` and `greenlight abort` as lists of steps (tasks/bluegreen/rollback_strategy.py,
tasks/canary/abort_strategy.py), executed by the release engine on fakes: the run executes exactly the steps its
plan describes (the switch sends the very patch the plan shows), checks the Lease before each change, and a
failure undoes nothing, is recorded "failed" and goes on as the step raised it (a cancel records nothing)."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.bluegreen import restore, rollback_strategy
from prefect_greenlight.tasks.bluegreen.restore import Rollback, switch_to_target
from prefect_greenlight.tasks.bluegreen.rollback_strategy import RollbackRelease, rollback_plan, rollback_steps
from prefect_greenlight.tasks.canary import abort_strategy
from prefect_greenlight.tasks.canary.abort_strategy import AbortRelease, abort_plan, abort_steps
from prefect_greenlight.tasks.decisions.annotations import read_record
from prefect_greenlight.tasks.decisions.describe_abort import canary_abort
from prefect_greenlight.tasks.decisions.describe_rollback import RollbackFacts, chosen_record
from prefect_greenlight.tasks.decisions.plan import PlanFacts
from prefect_greenlight.tasks.decisions.rollback import choose_rollback
from prefect_greenlight.tasks.decisions.traffic import selector_patch
from prefect_greenlight.tasks.engine.report_only import execute_reporting
from prefect_greenlight.tasks.errors import BadInput, GuardFailed, PermanentError
from prefect_greenlight.tasks.record.report import Timeline
from prefect_greenlight.tasks.spec import Cleanup, Deadlines
from tests.unit.builders import deployment, record_annotations, service

BLUE_SEL, GREEN_SEL = {"target": "blue-dep"}, {"target": "green-dep"}
ROLLBACK_ACTIONS = ("restore_target", "require_ready", "switch_to_target", "verify_target", "restore_autoscaler",
                    "retire_rolled_back")


class FakeLock:
    def __init__(self) -> None:
        self.checks = 0

    def check(self) -> None:
        self.checks += 1


class FakeJournal:
    def __init__(self) -> None:
        self.finished: list[tuple[str, dict]] = []

        self.holding: list[bool] = []

    def finish(self, outcome: str, **fields) -> None:
        self.finished.append((outcome, fields))

    def hold_progress(self) -> None:
        self.holding.append(True)

    def send_held_progress(self) -> None:
        self.holding.append(False)


def _rollback() -> Rollback:
    svc = service("production-svc", GREEN_SEL, annotations=record_annotations("green-dep", "blue-dep", BLUE_SEL))
    choice = choose_rollback("production-svc", read_record(svc), GREEN_SEL, ["green-dep"])
    return Rollback("default", "production-svc", svc, choice, "rollback-r1", Cleanup(), Deadlines())


def _fake_rollback_actions(monkeypatch, calls: list[str], fail: str = "", error: BaseException | None = None):
    """Every action of the rollback's steps replaced: each records its name, `fail` raises `error`."""
    for name in ROLLBACK_ACTIONS:
        def action(*args, _name=name, **kwargs) -> str:
            calls.append(_name)
            if _name == fail:
                raise error
            return f"{_name} done"
        monkeypatch.setattr(rollback_strategy, name, action)
    monkeypatch.setattr(rollback_strategy, "endpoint_counts", lambda *a: None)


def _release(rb: Rollback) -> RollbackRelease:
    return RollbackRelease(None, Timeline(), lock=FakeLock(), journal=FakeJournal(), rb=rb)


def _execute(release: RollbackRelease) -> None:
    execute_reporting(rollback_steps(), release, "rollback")


def test_a_rollback_executes_the_steps_its_plan_describes(monkeypatch):
    rb, calls = _rollback(), []
    _fake_rollback_actions(monkeypatch, calls)
    release = _release(rb)
    _execute(release)
    facts = RollbackFacts(rb.svc, chosen_record(rb.record, rb.choice), deployment("blue-dep", BLUE_SEL, replicas=0),
                          deployment("green-dep", GREEN_SEL), rb.replicas_wanted, rb.release_id)
    plan = rollback_plan(facts, rb.cleanup, rb.deadlines, False, PlanFacts())
    executed = [row["step"] for row in release.timeline.rows()]
    assert ["read-record", *executed] == plan.step_names() == [
        "read-record", "restore", "wait-ready", "switch", "verify-endpoints", "autoscaler", "cleanup"]
    assert calls == list(ROLLBACK_ACTIONS) and release.done == executed
    assert release.lock.checks == 4, "the Lease is checked before restore, switch, autoscaler and cleanup"
    assert release.journal.finished == [], "the flow records the success itself"


def test_a_failed_rollback_step_is_recorded_failed_and_raised_as_it_was_with_nothing_undone(monkeypatch):
    calls: list[str] = []
    guard = GuardFailed("Service production-svc selector moved by someone else")
    _fake_rollback_actions(monkeypatch, calls, fail="switch_to_target", error=guard)
    release = _release(_rollback())
    with pytest.raises(GuardFailed) as raised:
        _execute(release)
    assert raised.value is guard
    assert calls == ["restore_target", "require_ready", "switch_to_target"], "nothing after the failed step"
    assert [(r["step"], r["ok"]) for r in release.timeline.rows()] == [
        ("restore", True), ("wait-ready", True), ("switch", False)], "no undo row: nothing is undone"
    assert len(release.undo) == 0
    assert release.journal.finished == [("failed", {"from_deployment": "green-dep", "to_deployment": "blue-dep",
                                                    "images": [], "after": None, "reason": str(guard)})]


def test_a_failure_goes_on_with_the_cause_it_had(monkeypatch):
    """The engine raises a reported failure `from` itself; the cause the step gave it (an API error) stays."""
    api_error = ConnectionError("apiserver unreachable")
    try:
        raise PermanentError("could not scale blue-dep") from api_error
    except PermanentError as exc:
        failure = exc
    _fake_rollback_actions(monkeypatch, [], fail="restore_target", error=failure)
    with pytest.raises(PermanentError) as raised:
        _execute(_release(_rollback()))
    assert raised.value is failure and raised.value.__cause__ is api_error


def test_a_cancelled_rollback_records_nothing_and_goes_on_cancelled(monkeypatch):
    calls: list[str] = []
    _fake_rollback_actions(monkeypatch, calls, fail="require_ready", error=KeyboardInterrupt())
    release = _release(_rollback())
    with pytest.raises(KeyboardInterrupt):
        _execute(release)
    assert release.journal.finished == [] and calls == ["restore_target", "require_ready"]


def test_the_switch_sends_the_patch_the_plan_shows(monkeypatch):
    rb, sent = _rollback(), []
    objects = {"blue-dep": deployment("blue-dep", BLUE_SEL), "green-dep": deployment("green-dep", GREEN_SEL),
               "production-svc": rb.svc}
    monkeypatch.setattr(restore, "read", lambda kube, kind, ns, name: objects[name])
    monkeypatch.setattr(restore, "now_utc", lambda: "<time of the switch>")
    monkeypatch.setattr(restore, "move_selector", lambda kube, ns, svc, frm, to, annotations, read_svc: sent.append(
        selector_patch(read_svc, frm, to, annotations)) or "moved")
    switch_to_target(None, rb)
    facts = RollbackFacts(rb.svc, rb.chosen, objects["blue-dep"], objects["green-dep"], 0, rb.release_id)
    planned = rollback_plan(facts, rb.cleanup, rb.deadlines, False, PlanFacts()).steps[3]
    assert planned.name == "switch" and sent == [list(planned.patch)]
    assert {"op": "add", "path": "/metadata/annotations/greenlight.io~1switch-kind", "value": "rollback"} in sent[0]


# -- abort ----------------------------------------------------------------------------------------------------
PROGRESS = {"stable": "my-app-v1", "deployment": "my-app-v1-canary", "total": "4", "step": "2/5",
            "release-id": "c1", "state": "paused"}


def _abort(monkeypatch, restore) -> tuple[AbortRelease, list[dict]]:
    """An abort whose restore is `restore`; the progress annotations it records."""
    a, progress = canary_abort("default", "my-app", PROGRESS, Deadlines()), []
    monkeypatch.setattr(abort_strategy, "restore_stable", restore)
    monkeypatch.setattr(abort_strategy, "record_progress", lambda kube, ns, svc, **fields: progress.append(fields))
    monkeypatch.setattr(abort_strategy, "endpoint_counts", lambda *a: None)
    return AbortRelease(None, Timeline(), lock=FakeLock(), journal=FakeJournal(), abort=a), progress


def _execute_abort(release: AbortRelease) -> None:
    execute_reporting(abort_steps(), release, "abort")


def test_an_abort_executes_the_step_its_plan_describes(monkeypatch):
    release, progress = _abort(monkeypatch, lambda *args: "my-app-v1 back to 4 ready pods")
    _execute_abort(release)
    assert [r["step"] for r in release.timeline.rows()] == abort_plan(release.abort).step_names() == [
        "restore-stable"]
    assert release.timeline.rows()[0]["detail"] == "my-app-v1 back to 4 ready pods"
    assert progress == [{"step": "0/5", "percent": 0, "weight": "0/4", "state": "aborted"}]
    assert release.lock.checks == 1 and release.journal.finished == []


def test_a_failed_abort_is_recorded_failed_and_raised_as_it_was(monkeypatch):
    gone = PermanentError("stable Deployment my-app-v1 no longer exists; refusing to scale the canary down")

    def restore(*args):
        raise gone

    release, progress = _abort(monkeypatch, restore)
    with pytest.raises(PermanentError) as raised:
        _execute_abort(release)
    assert raised.value is gone and progress == [], "the abort is not recorded on the Service"
    assert release.journal.finished == [("failed", {"from_deployment": "my-app-v1-canary",
                                                    "to_deployment": "my-app-v1", "images": [], "after": None,
                                                    "reason": str(gone)})]


def test_what_an_abort_acts_on_comes_from_the_services_canary_annotations():
    a = canary_abort("default", "my-app", PROGRESS, Deadlines())
    assert (a.stable, a.canary, a.total, a.aborted_step, a.abort_id) == (
        "my-app-v1", "my-app-v1-canary", 4, "0/5", "abort-c1")
    assert canary_abort("default", "my-app", {**PROGRESS, "release-id": "x" * 80}, Deadlines()).abort_id == \
        "abort-" + "x" * 57
    with pytest.raises(BadInput, match="records no canary release"):
        canary_abort("default", "my-app", {}, Deadlines())
    with pytest.raises(BadInput, match="already promoted"):
        canary_abort("default", "my-app", {**PROGRESS, "state": "promoted"}, Deadlines())
    with pytest.raises(BadInput, match=r"records no usable total \('0'\)"):
        canary_abort("default", "my-app", {**PROGRESS, "total": "0"}, Deadlines()).check_total()
