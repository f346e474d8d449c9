"""The release engine (tasks/engine/): the executor on lists of fake steps (roll back or report, go_to, steps added
by a step, resume_at, cancel = rollback, the Lease check), and the two strategies' real lists run on a fake cluster
(their I/O functions replaced): the run executes exactly the plan's steps, and a failure at any step undoes, newest
first, exactly the steps that pushed an undo."""

from __future__ import annotations

import dataclasses
import signal
from types import SimpleNamespace

import pytest
from prefect.exceptions import TerminationSignal

from prefect_greenlight.tasks.bluegreen import strategy as bluegreen
from prefect_greenlight.tasks.canary import analysis
from prefect_greenlight.tasks.canary import progress as canary_progress
from prefect_greenlight.tasks.canary import strategy as canary
from prefect_greenlight.tasks.canary.analysis import AnalysisResult, Outcome
from prefect_greenlight.tasks.canary.preflight import CanaryPreflight
from prefect_greenlight.tasks.decisions.canary import SplitVerdict, step_plan
from prefect_greenlight.tasks.decisions.describe_hooks import HookPlan
from prefect_greenlight.tasks.decisions.hooks import HookRecord
from prefect_greenlight.tasks.decisions.pause import Decision
from prefect_greenlight.tasks.decisions.plan import PlanFacts, PlanStep, StepKind, deployment_changes
from prefect_greenlight.tasks.engine.executor import Ending, Release, execute
from prefect_greenlight.tasks.engine.steps import OnFailure, Step
from prefect_greenlight.tasks.errors import PermanentError, Rejected, ReleaseFailed
from prefect_greenlight.tasks.prefect_adapter import cancellation
from prefect_greenlight.tasks.record.report import Timeline
from prefect_greenlight.tasks.spec import Hook
from prefect_greenlight.tasks.spec.canary import CanarySpec
from tests.unit.builders import container, deployment, manifest, service
from tests.unit.test_plan import _release


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


class LostLock(Lock):
    """The Lease another release took over while this one's worker was frozen."""

    def __init__(self, lost_after: int):
        super().__init__()
        self.lost_after = lost_after

    def lost(self) -> str:
        return "lease greenlight-web was taken or deleted (HTTP 409)" if self.checks >= self.lost_after else ""


def test_a_failure_after_the_lease_was_taken_over_undoes_and_records_nothing():
    ran, recorded, r = [], [], release()
    r.lock = LostLock(lost_after=1)
    steps = [step("a", ran, undo=True, changes=True), step("approval", ran, fail=PermanentError("run Crashed"))]
    with pytest.raises(ReleaseFailed, match="taken or deleted") as failed:
        execute(steps, r, ending(recorded))
    assert ran == ["a", "approval"] and recorded == [], "no undo, no record: the Service is another release's"
    assert failed.value.undo == [] and names(r) == ["a", "approval"]


def test_a_failure_with_the_lease_still_held_rolls_back_as_before():
    ran, recorded, r = [], [], release()
    r.lock = LostLock(lost_after=99)
    with pytest.raises(ReleaseFailed):
        execute([step("a", ran, undo=True, changes=True), step("b", ran, fail=PermanentError("x"))], r,
                ending(recorded))
    assert ran == ["a", "b", "undo a"] and recorded == [("aborted", "b", ["undo a"])]


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


def test_an_ending_may_say_what_the_failed_run_raises_after_its_undo():
    ran, recorded = [], []
    end = dataclasses.replace(ending(recorded), raised=lambda failure, exc: ValueError(f"{len(failure.undo)} undone"))
    with pytest.raises(ValueError, match="1 undone") as raised:
        execute([step("a", ran, undo=True), step("b", ran, fail=PermanentError("x"))], release(), end)
    assert ran == ["a", "b", "undo a"] and isinstance(raised.value.__cause__, PermanentError)
    cause = PermanentError("as it was")
    with pytest.raises(PermanentError, match="as it was"):
        execute([step("c", [], fail=cause)], release(), dataclasses.replace(end, raised=lambda failure, exc: exc))


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


def test_a_step_may_add_steps_to_run_next():
    ran, r = [], release()
    extra = step("x", ran)
    execute([step("a", ran, then=lambda rel: rel.next_steps.append(extra)), step("b", ran)], r, ending([]))
    assert names(r) == ["a", "x", "b"]


def test_added_steps_run_before_the_step_go_to_names():
    ran, r = [], release()

    def detour(rel: Release) -> None:
        rel.next_steps, rel.go_to = [step("x", ran), step("y", ran)], "d"
    execute([step("a", ran, then=detour), step("b", ran), step("c", ran), step("d", ran)], r, ending([]))
    assert names(r) == ["a", "x", "y", "d"]


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


# -- the strategies' lists on a fake cluster ------------------------------------------------------------------
def failing_at(steps: list[Step], k: int) -> list[Step]:
    def fail(r: Release) -> str:
        raise PermanentError(f"{steps[k].name} failed")
    return [*steps[:k], dataclasses.replace(steps[k], run=fail), *steps[k + 1:]]


def assert_undo_over_exactly_the_steps_that_pushed_one(steps: list[Step], run_release, fake_ending) -> None:
    """For every k: a failure at step k undoes, newest first, the undo of every step up to k that has one (a step
    past the point of no return: nothing)."""
    for k, failing in enumerate(steps):
        recorded: list = []
        with pytest.raises((ReleaseFailed, RuntimeError)):
            execute(failing_at(steps, k), run_release(), fake_ending(recorded))
        if failing.on_failure is OnFailure.REPORT:
            assert recorded == [], failing.name
        else:
            assert recorded[0][2] == [s.undo_name for s in steps[:k + 1] if s.undo][::-1], failing.name


# -- canary
CANARY_HOOKS = tuple(Hook.model_validate({"name": n, "at": at, "webhook": {"url": "http://a"}}) for n, at in (
    ("pre", "pre-release"), ("first", "before-first-step"), ("gate", "between-steps"), ("last", "after-last-step"),
    ("rb", "on-rollback")))


def canary_plan_of(resume_index: int = 0, **spec) -> CanaryPreflight:
    spec_ = CanarySpec(**{"service": "my-app-service", "stable": "my-app-v1", "image": "my-app:2",
                          "hooks": [h.model_dump() for h in CANARY_HOOKS], "steps": [10, 30, 100],
                          "analysis": {"prometheus": [{"url": "http://p", "query": "q", "threshold": 1}], "count": 1},
                          **spec})
    canary_ = manifest("my-app-v1-canary", {"app": "my-app", "greenlight.io/track": "canary"}, replicas=1,
                       containers=[container(image="my-app:2")])
    return CanaryPreflight(spec=spec_, release_id="c1", canary="my-app-v1-canary", canary_manifest=canary_,
                      canary_existed=False, total=10, steps=tuple(step_plan(10, spec_.weights)), stable_image="app:1",
                      service_ports=({"port": 80, "targetPort": 80},),
                      canary_changes=deployment_changes(deployment("my-app-v1", {"app": "my-app"}), canary_),
                      resume_index=resume_index, resume_message="resuming" if resume_index else "",
                      found_replicas=(3, 7) if resume_index else (0, 0))


@pytest.fixture
def fake_canary(monkeypatch):
    """The canary's I/O replaced: moves succeed at the asked split, analyses say `outcomes[percent]`
    (Successful by default), pauses answer `answers[percent]` (approved by default); records kept."""
    seen = SimpleNamespace(records=[], restored=0, outcomes={}, answers={}, moves=[])

    def move(kube, ns, svc, stable, manifest_, current, want, first, deadlines, baseline_manifest=None):
        seen.moves.append((want.canary, want.baseline, want.stable))
        return SplitVerdict(True, f"{want.canary}/{want.stable}", want.canary, want.stable)

    def analyse(providers, ctx):
        return [AnalysisResult("prometheus", seen.outcomes.get(ctx.percent, Outcome.SUCCESSFUL), "q")]

    def pause(kind, timeout_s, form):
        return seen.answers.get(kind, Decision(True, "", "tester", "human", full=False))

    def restore(*args) -> str:
        seen.restored += 1
        return "stable back"

    monkeypatch.setattr(canary, "move_traffic", move)
    monkeypatch.setattr(analysis, "run_providers", analyse)
    monkeypatch.setattr(canary, "pause_for_decision", pause)
    monkeypatch.setattr(canary, "restore_stable", restore)
    monkeypatch.setattr(canary, "remove_old_stable", lambda *a: "deleted")
    monkeypatch.setattr(canary, "endpoint_counts", lambda *a: None)
    monkeypatch.setattr(canary_progress, "record_progress",
                        lambda kube, ns, svc, **f: seen.records.append((f["step"], f["state"], str(f["percent"]))))
    return seen


def run_canary(plan: CanaryPreflight, steps: list[Step] | None = None) -> tuple[Release, list]:
    progress = canary_progress.CanaryProgress.start(plan, "run-1")
    r, recorded = release(canary=progress), []
    ending_ = canary.canary_ending(None, plan, r.journal, r.hooks, progress)
    execute(canary.canary_steps(plan) if steps is None else steps, r, ending_, begin=canary.start_record)
    return r, recorded


def planned_names(plan: CanaryPreflight) -> list[str]:
    return canary.canary_plan(plan, PlanFacts(), HookPlan(CANARY_HOOKS, HookRecord("fp", "c1"))).step_names()[1:]


def test_the_canary_runs_exactly_its_planned_steps_and_records_its_progress(fake_canary):
    plan = canary_plan_of(approve_steps=[30], pause_s=5)
    r, _ = run_canary(plan)
    assert names(r) == planned_names(plan) == [
        "hook-pre", "hook-first", "step-10", "analysis-10", "pause-10", "hook-gate-10", "step-30", "analysis-30",
        "pause-30", "hook-gate-30", "step-100", "analysis-100", "hook-last", "cleanup"]
    assert ("gate", 10, 30) in r.hooks.ran and ("gate", 30, 100) in r.hooks.ran
    assert fake_canary.records == [
        ("0/3", "progressing", "0"), ("1/3", "progressing", "10"), ("1/3", "paused-timed", "10"),
        ("1/3", "passed", "10"), ("2/3", "progressing", "30"), ("2/3", "paused-approval", "30"),
        ("2/3", "passed", "30"), ("3/3", "progressing", "100"), ("3/3", "passed", "100"), ("3/3", "promoted", "100")]
    assert fake_canary.restored == 0 and r.lock.checks == 4, "each move and the clean-up after a Lease check"


def test_a_canary_failure_at_any_step_aborts_once(fake_canary):
    plan = canary_plan_of(approve_steps=[30])
    steps = canary.canary_steps(plan)
    assert [s.undo_name for s in steps if s.undo] == ["abort: my-app-v1 back to 10, then my-app-v1-canary to 0"]
    assert steps[0].name == "hook-pre", "the abort is pushed as the run starts"
    assert_undo_over_exactly_the_steps_that_pushed_one(
        steps, lambda: release(canary=canary_progress.CanaryProgress.start(plan, "r")), ending)
    r = release(canary=canary_progress.CanaryProgress.start(plan, "r"))
    with pytest.raises(ReleaseFailed, match="during steps"):
        execute(failing_at(steps, 5), r, canary.canary_ending(None, plan, r.journal, r.hooks, r.handed_on["canary"]))
    assert names(r)[-1] == "abort" and fake_canary.records[-1] == ("0/3", "aborted", "0")
    assert r.journal.events[-1] == ("finish", "aborted") and r.hooks.ran[-1] == ("finish", "aborted")


def test_promote_full_at_a_pause_jumps_to_the_last_step(fake_canary):
    fake_canary.answers["approval"] = Decision(True, "", "tester", "human", full=True)
    r, _ = run_canary(canary_plan_of(approve_steps=[10, 30, 100]))
    assert names(r) == ["hook-pre", "hook-first", "step-10", "analysis-10", "pause-10", "hook-gate-10", "step-100",
                        "hook-last", "cleanup"]
    assert ("gate", 10, 100) in r.hooks.ran, "the gate hears the increase it gates: 10 -> 100 %"
    assert [rec for rec in fake_canary.records if rec[0] != "1/3"] == [
        ("0/3", "progressing", "0"), ("3/3", "progressing", "100"), ("3/3", "promoted", "100")]


def test_promote_full_at_the_last_step_just_goes_on(fake_canary):
    fake_canary.answers["approval"] = Decision(True, "", "tester", "human", full=True)
    r, _ = run_canary(canary_plan_of(approve_steps=[100]))
    assert names(r)[-4:] == ["analysis-100", "pause-100", "hook-last", "cleanup"]
    assert fake_canary.records[-2:] == [("3/3", "passed", "100"), ("3/3", "promoted", "100")]


def test_promote_full_at_an_inconclusive_pause_goes_straight_to_100(fake_canary):
    fake_canary.outcomes[10] = Outcome.INCONCLUSIVE
    fake_canary.answers["inconclusive"] = Decision(True, "", "tester", "human", full=True)
    r, _ = run_canary(canary_plan_of(pause_s=5))
    assert names(r) == ["hook-pre", "hook-first", "step-10", "analysis-10", "pause-10", "hook-gate-10", "step-100",
                        "hook-last", "cleanup"]
    assert ("1/3", "paused-inconclusive", "10") in fake_canary.records


def test_an_inconclusive_analysis_adds_its_pause_before_the_configured_one(fake_canary):
    fake_canary.outcomes[30] = Outcome.INCONCLUSIVE
    r, _ = run_canary(canary_plan_of(approve_steps=[30]))
    at = names(r).index("step-30")
    assert names(r)[at:at + 5] == ["step-30", "analysis-30", "pause-30", "pause-30", "hook-gate-30"]
    at_30 = [rec for rec in fake_canary.records if rec[0] == "2/3"]
    assert [s for _, s, _ in at_30] == ["progressing", "paused-inconclusive", "paused-approval", "passed"]


def test_a_resumed_canary_starts_its_traffic_steps_where_it_resumes(fake_canary):
    plan = canary_plan_of(resume_index=1)
    r, _ = run_canary(plan)
    assert names(r) == planned_names(plan) == ["hook-pre", "hook-first", "hook-gate-10", "step-30", "analysis-30",
                                               "hook-gate-30", "step-100", "analysis-100", "hook-last", "cleanup"]
    assert fake_canary.records[0] == ("1/3", "passed", "10")
    steps = canary.canary_steps(plan)
    assert steps[0].undo is not None, "a resumed run moved traffic before: the abort is pushed first"


def test_a_written_step_list_runs_in_its_order_each_pause_its_kind(fake_canary):
    written = [{"set_weight": 10}, {"pause": {"duration_s": 30}}, {"set_weight": 30}, {"analysis": {}},
               {"pause": {"duration_s": 5}}, {"pause": {}}, {"set_weight": 100}]
    plan = canary_plan_of(steps=written)
    r, _ = run_canary(plan)
    assert names(r) == planned_names(plan) == [
        "hook-pre", "hook-first", "step-10", "pause-10", "hook-gate-10", "step-30", "analysis-30", "pause-30",
        "pause-30-2", "hook-gate-30", "step-100", "hook-last", "cleanup"]
    assert [s for n, s, _ in fake_canary.records if n == "2/3"] == [
        "progressing", "paused-timed", "paused-approval", "passed"], "passed only after the last of the step's gates"
    plan_json = canary.canary_plan(plan, PlanFacts()).as_dict()
    assert "set_weight 10; pause 30 s; set_weight 30; analysis, 1 round; pause 5 s; pause until approved; " \
        "set_weight 100" in plan_json["steps"][0]["details"][0]


# -- blue-green
@pytest.fixture
def fake_blue_green(monkeypatch):
    for name in ("apply_green", "remove_green", "wait_green_ready", "point_preview", "undo_preview",
                 "post_switch_verify", "switch_traffic", "switch_back", "verify_endpoints", "carry_autoscaler",
                 "remove_green_autoscaler", "cleanup_blue"):
        monkeypatch.setattr(bluegreen, name, lambda *a, _n=name: f"{_n} done")
    monkeypatch.setattr(bluegreen, "smoke_test", lambda *a: [{"pod": "p", "path": "/", "status": 200,
                                                               "latency_ms": 1, "ok": True}])
    monkeypatch.setattr(bluegreen, "request_approval", lambda *a: Decision(True, "auto", "", "auto"))


def test_blue_green_runs_exactly_its_planned_steps_and_undoes_the_right_ones(fake_blue_green):
    plan = _release({"preview_service": "staging-svc"}, hpa={"metadata": {"name": "blue-hpa"}})
    steps = bluegreen.blue_green_steps(plan)
    r = release()
    execute(steps, r, ending([]))
    planned = bluegreen.blue_green_plan(plan, service("production-svc", {"target": "blue-dep"}), None, PlanFacts())
    assert ["preflight", *names(r)] == planned.step_names()
    assert [s.undo_name for s in steps if s.undo] == [
        "remove green-dep", "restore preview Service staging-svc",
        "remove the HorizontalPodAutoscaler of green-dep", "switch Service production-svc back to blue-dep"]
    assert_undo_over_exactly_the_steps_that_pushed_one(steps, release, ending)
