"""The promotion pipeline as a list of steps (tasks/pipeline/strategy.py) run by the one executor on fakes: child
flow runs that release or roll back a target by recording it. The run executes exactly the plan's steps; a failed
stage's policy is the undo (newest stage first, newest target first); a resumed run reaches the stages it passed
over; a rejected gate rolls nothing back and says who and why."""

from __future__ import annotations

import signal

import pytest
from prefect.exceptions import TerminationSignal

from prefect_greenlight.tasks.decisions.history import HistoryEntry
from prefect_greenlight.tasks.decisions.pause import Decision
from prefect_greenlight.tasks.engine.executor import Release, execute
from prefect_greenlight.tasks.errors import PipelineFailed
from prefect_greenlight.tasks.pipeline import run as pipeline_run
from prefect_greenlight.tasks.pipeline import strategy
from prefect_greenlight.tasks.pipeline.board import PipelineBoard
from prefect_greenlight.tasks.pipeline.targets import PipelineTarget, SoakFailed
from prefect_greenlight.tasks.prefect_adapter import cancellation
from prefect_greenlight.tasks.record.report import Timeline
from prefect_greenlight.tasks.spec.pipeline import PipelineSpec, release_spec, target_name

PID = "pl-1"


@pytest.fixture(autouse=True)
def no_prefect(monkeypatch):
    """Outside a flow run: no cancel intent, no run state; events kept in a list."""
    monkeypatch.setattr(cancellation, "_intent", lambda: None)
    monkeypatch.setattr(cancellation, "_run_state", lambda: None)
    events: list[tuple] = []

    def emit(kind, pipeline_id, **payload):
        events.append((kind.value, payload))
    monkeypatch.setattr(strategy, "emit_pipeline", emit)
    monkeypatch.setattr(pipeline_run, "emit_pipeline", emit)
    return events


class FakeChildren:
    """Child flow runs: a release or rollback is recorded; the targets in `failing` fail their release."""

    def __init__(self, *failing: str):
        self.failing, self.ran = set(failing), []

    def release(self, t: PipelineTarget, dry_run: bool = False) -> dict:
        self.ran.append(("release", t.name))
        if t.name in self.failing:
            raise RuntimeError(f"{t.name}: CrashLoopBackOff")
        return {"outcome": "released"}

    def roll_back(self, t: PipelineTarget) -> dict:
        self.ran.append(("rollback", t.name))
        return {"outcome": "rolled-back"}


def pipeline(policy: str = "atomic", gate: str = "auto") -> tuple[PipelineSpec, list[list[PipelineTarget]]]:
    spec = PipelineSpec.model_validate({"pipeline_id": PID, "image": "app:2", "stages": [
        {"name": "staging", "targets": [{"context": "staging", "service": "web"}], "gate": {"mode": gate}},
        {"name": "prod", "on_failure": policy,
         "targets": [{"context": "prod-a", "service": "web"}, {"context": "prod-b", "service": "web"}]}]})
    stages = [[PipelineTarget(i, s, t, target_name(s, t), None, release_spec(spec, s, t, PID)) for t in s.targets]
              for i, s in enumerate(spec.stages)]
    return spec, stages


def run(children: FakeChildren, policy: str = "atomic", gate: str = "auto", released_before=()) -> tuple:
    """The flow's steps 3-5 on fakes: resume (histories from `released_before`), execute, the end."""
    spec, stages = pipeline(policy, gate)
    board = PipelineBoard(spec, PID, stages, 0.0, serving=lambda t: "green-dep (app:2)")
    steps = strategy.pipeline_steps(spec, stages, children)

    def history(t: PipelineTarget) -> list[HistoryEntry]:
        return [HistoryEntry(release_id="r", strategy="blue-green", outcome="released", from_deployment="blue",
                             to_deployment="green", pipeline_id=PID,
                             pipeline_stage=t.stage.name, pipeline_target=t.name)] if t.name in released_before else []
    at = pipeline_run.resume(board, steps, history)
    release = Release(None, Timeline(), handed_on={"board": board})
    execute(steps, release, strategy.pipeline_ending(board), resume_at=at, begin=strategy.passed_over(steps, at))
    return board, release, pipeline_run.completed(board)


def names(release: Release) -> list[str]:
    return [row["step"] for row in release.timeline.rows()]


def test_the_pipeline_runs_exactly_its_planned_steps(no_prefect):
    spec, stages = pipeline()
    plan = strategy.pipeline_plan(spec, PID, strategy.pipeline_steps(spec, stages, FakeChildren()), ["w"])
    children = FakeChildren()
    board, release, result = run(children)
    assert names(release) == plan.step_names() == ["stage-staging", "gate-staging", "stage-prod"]
    assert children.ran == [("release", "staging"), ("release", "prod-a"), ("release", "prod-b")]
    assert result["outcome"] == "completed" and result["gates"][0]["how"] == "auto"
    assert [e for e, _ in no_prefect] == ["started", "stage-passed", "stage-passed", "completed"]
    assert plan.steps[2].kind.value == "change" and "prod-b: blue-green release" in plan.steps[2].details[1]


def test_a_failure_in_stage_two_rolls_back_stage_one_newest_first_under_atomic(no_prefect):
    children = FakeChildren("prod-b")
    with pytest.raises(PipelineFailed) as failed:
        run(children)
    result = failed.value.result
    assert children.ran == [("release", "staging"), ("release", "prod-a"), ("release", "prod-b"),
                            ("rollback", "prod-a"), ("rollback", "staging")]
    assert result["message"] == ("stage prod failed (prod-b; each failed release rolled itself back); policy "
                                 "atomic rolled back prod-a, staging")
    assert {r["target"]: r["outcome"] for r in result["targets"]} == {
        "staging": "rolled-back", "prod-a": "rolled-back", "prod-b": "failed"}
    assert no_prefect[-1] == ("failed", {"stage": "prod", "failed": ["prod-b"], "rolled_back": ["prod-a", "staging"],
                                         "reason": result["message"]})


def test_policy_target_rolls_back_nothing_else(no_prefect):
    children = FakeChildren("prod-b")
    with pytest.raises(PipelineFailed, match="policy target rolled back nothing else"):
        run(children, policy="target")
    assert [c for c in children.ran if c[0] == "rollback"] == []


def test_a_resumed_run_passes_over_released_stages_and_its_policy_still_reaches_them(no_prefect):
    children = FakeChildren("prod-b")
    with pytest.raises(PipelineFailed) as failed:
        run(children, released_before={"staging"})
    assert children.ran == [("release", "prod-a"), ("release", "prod-b"), ("rollback", "prod-a"),
                            ("rollback", "staging")]
    assert failed.value.result["resumed"] == "resuming at stage prod (passed before: staging; its gate is asked again)"


def test_a_rejected_gate_rolls_nothing_back_and_says_who_and_why(no_prefect, monkeypatch):
    monkeypatch.setattr(strategy, "pause_run", lambda kind, timeout_s, form: Decision(False, "budget spent", "ana",
                                                                                       "human"))
    children = FakeChildren()
    with pytest.raises(PipelineFailed) as failed:
        run(children, gate="manual")
    result = failed.value.result
    assert children.ran == [("release", "staging")]
    assert result["outcome"] == "rejected"
    assert result["message"] == "promotion to stage prod rejected by ana (human): budget spent"
    assert result["gates"] == [{"stage": "staging", "next_stage": "prod", "approved": False, "full": False,
                                "reason": "budget spent", "approver": "ana", "how": "human",
                                "note": "rejected by ana (human): budget spent"}]
    assert [e for e, _ in no_prefect] == ["started", "stage-passed", "paused", "failed"]
    assert no_prefect[-1][1]["decision"]["approver"] == "ana"


def test_a_failed_soak_rolls_back_the_soaked_target_under_policy_target(no_prefect, monkeypatch):
    def soak(targets, soak_s, interval_s, say):
        raise SoakFailed(3, {"staging": "staging:default/web: 0 of 1 checks passed"})
    monkeypatch.setattr(strategy, "soak", soak)
    children = FakeChildren()
    with pytest.raises(PipelineFailed) as failed:
        run(children, policy="target", gate="soak")
    rows = {r["target"]: r for r in failed.value.result["targets"]}
    assert children.ran == [("release", "staging"), ("rollback", "staging")]
    assert rows["staging"]["outcome"] == "rolled-back" and "soak round 3" in rows["staging"]["reason"]
    assert rows["prod-a"]["outcome"] == rows["prod-b"]["outcome"] == "not-started"


def test_the_dry_run_describes_the_same_list_and_plans_every_target(no_prefect):
    spec, stages = pipeline(gate="manual")
    board = PipelineBoard(spec, PID, stages, 0.0, serving=lambda t: "blue-dep (app:1)")
    steps = strategy.pipeline_steps(spec, stages, FakeChildren())
    result = pipeline_run.dry_run_result(board, steps, FakeChildren(), [])
    assert result["plan"]["step_names"] == [s.name for s in steps] == ["stage-staging", "gate-staging", "stage-prod"]
    assert [p["target"] for p in result["plans"]] == ["staging", "prod-a", "prod-b"]
    assert "2. gate-staging" in result["plan_text"] and result["outcome"] == "dry-run"


def test_a_cancel_at_the_gate_rolls_back_every_released_target_newest_first(no_prefect, monkeypatch):
    """The UI's Cancel is an abort, at a pipeline's gate too (a rejection there stops and keeps what is released)."""
    monkeypatch.setattr(cancellation, "_intent", lambda: "cancel")
    monkeypatch.setattr(strategy, "pause_run", lambda *a: (_ for _ in ()).throw(TerminationSignal(signal.SIGTERM)))
    children = FakeChildren()
    with pytest.raises(TerminationSignal):
        run(children, gate="manual")
    assert children.ran == [("release", "staging"), ("rollback", "staging")]
