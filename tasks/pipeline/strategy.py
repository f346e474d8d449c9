"""A promotion pipeline as a list of steps (the release engine, tasks/engine/), built from the resolved,
pre-flighted targets:

  stage-<first> -> gate-<first> -> stage-<second> -> gate-<second> -> ... -> stage-<last>

`stage-<name>` releases the stage's targets (those not released before by this pipeline) in parallel up to
max_parallel, each a child flow run; a failed target stops the stage from starting another. `gate-<name>` is the
stage's gate before the next: automatic, the one pause (a person answers) or a soak. The failure policy is the
undo: each stage pushes "roll back my released targets" as it starts, and a failed stage (or soak) unwinds them
newest stage first, each as far as the failed stage's policy says (tasks/decisions/pipeline.py to_roll_back),
each rollback a verified child flow run. A rejected gate rolls nothing back (what is released stays: the
promotion stops); a cancel (the UI's Cancel: abort) rolls back every target this pipeline released, newest first.
A re-run resumes at a stage (or the gate before it); the stages it passes over push their undo first. The dry run
describes this same list.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from prefect_greenlight.tasks.decisions.describe_pipeline import describe_gate, describe_stage
from prefect_greenlight.tasks.decisions.pause import AUTOMATIC, Decision, PauseKind
from prefect_greenlight.tasks.decisions.pipeline import ResumePoint, TargetOutcome, stage_table, to_roll_back
from prefect_greenlight.tasks.decisions.plan import Plan, PlanFacts
from prefect_greenlight.tasks.engine.executor import Ending, Release
from prefect_greenlight.tasks.engine.steps import Step, plan_of
from prefect_greenlight.tasks.errors import PermanentError, PipelineFailed, Rejected, ReleaseFailed
from prefect_greenlight.tasks.pipeline.board import PipelineBoard
from prefect_greenlight.tasks.pipeline.targets import PipelineTarget, SoakFailed, soak
from prefect_greenlight.tasks.prefect_adapter.pause import pause_run
from prefect_greenlight.tasks.prefect_adapter.release_policy import wait_until_allowed
from prefect_greenlight.tasks.record.events import PipelineEvent, emit_pipeline
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec.pipeline import FailurePolicy, GateMode, PipelineSpec


class Children(Protocol):
    """Starts a target's child flow runs (tasks/pipeline/children.py; a fake in the unit tests)."""

    def release(self, t: PipelineTarget, dry_run: bool = False) -> dict: ...

    def roll_back(self, t: PipelineTarget) -> dict: ...


class StageFailed(PermanentError):
    """Stage `stage` failed: `targets` failed their release (or, `soaked`, the soak after it)."""

    def __init__(self, stage: int, name: str, targets: list[str], why: str, soaked: bool = False):
        self.stage, self.name, self.targets, self.why, self.soaked = stage, name, targets, why, soaked
        super().__init__(f"stage {name} failed ({why})")


class GateRejected(Rejected):
    """The gate before stage `next_stage` said no (a person, or no answer in time)."""

    def __init__(self, next_stage: str, decision: Decision):
        self.next_stage, self.decision = next_stage, decision
        super().__init__(f"promotion to stage {next_stage} {decision.note()}")


def board_of(release: Release) -> PipelineBoard:
    return release.handed_on["board"]


def stopped(board: PipelineBoard, exc: Exception) -> Exception:
    """Note what stopped the pipeline (the undo and the ending read it); returns `exc` to raise."""
    board.stop = exc
    return exc


# -- stage-<name>
def release_stage(targets: list[PipelineTarget], max_parallel: int, children: Children,
                  board: PipelineBoard) -> list[PipelineTarget]:
    """Release the targets (up to max_parallel at once; none starts after one failed). Returns the failed ones."""
    stop = threading.Event()

    def one(t: PipelineTarget) -> None:
        if stop.is_set():
            return
        t0 = time.monotonic()
        try:
            result = children.release(t)
            board.row(t).update(outcome=TargetOutcome.RELEASED.value, release=result.get("outcome"))
        except Exception as exc:  # noqa: BLE001 - the release rolled itself back; the policy decides the rest
            stop.set()
            board.row(t).update(outcome=TargetOutcome.FAILED.value, reason=str(exc)[:500])
        board.row(t)["seconds"] = round(time.monotonic() - t0, 1)

    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(targets))),
                            thread_name_prefix="greenlight-target") as pool:
        # each child flow needs the pipeline's flow-run context: one copy of it per target, taken here in the
        # pipeline's thread (a copy taken in the worker thread would be the worker's empty context)
        for future in [pool.submit(contextvars.copy_context().run, one, t) for t in targets]:
            future.result()
    return [t for t in targets if board.outcome_is(t, TargetOutcome.FAILED)]


def _stage_keys(board: PipelineBoard, i: int, cancelled: bool) -> tuple[list[tuple[int, str]], str]:
    """Stage `i`'s targets to roll back, newest first, and why: all it released for a cancel (abort), else those
    the failed stage's policy says; none after a rejected gate."""
    failure = board.stop
    if cancelled:
        return [(i, name) for name in reversed(board.released()[i])], "cancelled"
    if not isinstance(failure, StageFailed):
        return [], "no stage failed"
    policy = board.spec.stages[failure.stage].on_failure
    if policy is FailurePolicy.TARGET and failure.soaked and i == failure.stage:
        return [(i, name) for name in reversed(failure.targets)], f"policy {policy.value}"  # released, then soaked
    return [k for k in to_roll_back(policy.value, board.released(), failure.stage) if k[0] == i], \
        f"policy {policy.value}"


def roll_back_stage(board: PipelineBoard, i: int, children: Children, cancelled: bool = False) -> str:
    """The undo of stage `i`: its released targets that a cancel or the failed stage's policy rolls back, newest
    first, each a verified rollback."""
    keys, why = _stage_keys(board, i, cancelled)
    if not keys and why == "no stage failed":
        return "nothing: no stage failed"
    by_name = {t.name: t for t in board.stages[i]}
    done, failed = [], []
    for _, name in keys:
        t = by_name[name]
        say(f"pipeline {board.pipeline_id}: rolling back {t.name} ({t.where}), {why}")
        try:
            result = children.roll_back(t)
            board.row(t).update(outcome=TargetOutcome.ROLLED_BACK.value, rollback=result.get("outcome"))
            done.append(t.name)
        except Exception as exc:  # noqa: BLE001 - the next rollback still runs; the report names this one
            board.row(t).update(outcome=TargetOutcome.ROLLBACK_FAILED.value, reason=str(exc)[:500])
            failed.append(f"{t.name}: {str(exc)[:200]}")
    board.rolled_back += done
    if failed:
        raise RuntimeError(f"rollback failed: {'; '.join(failed)}")
    return f"rolled back {', '.join(done)}" if done else f"nothing to roll back ({why})"


def _stage(spec: PipelineSpec, i: int, targets: list[PipelineTarget], children: Children) -> Step:
    stage = spec.stages[i]

    def run(release: Release) -> str:
        board = board_of(release)
        todo = [t for t in targets if board.outcome_is(t, TargetOutcome.NOT_STARTED)]
        if failed := release_stage(todo, stage.max_parallel, children, board):
            names = [t.name for t in failed]
            raise stopped(board, StageFailed(i, stage.name, names,
                                             f"{', '.join(names)}; each failed release rolled itself back"))
        emit_pipeline(PipelineEvent.STAGE_PASSED, board.pipeline_id, stage=stage.name,
                      targets=[t.name for t in targets])
        say(f"pipeline {board.pipeline_id}: stage {stage.name} passed ({len(targets)} target(s))")
        return f"{len(todo)} released, {len(targets) - len(todo)} released before"
    return Step(f"stage-{stage.name}", run, lambda f: describe_stage(spec, i), changes=True,
                undo=lambda release: roll_back_stage(board_of(release), i, children, release.cancelled),
                undo_name=f"failure policy: stage {stage.name}")


# -- gate-<stage>
def _ask(board: PipelineBoard, i: int) -> Decision:
    """The gate after stage `i`: automatic, a soak, or the one pause (a person answers; no answer within its
    timeout is a rejection)."""
    stage, nxt = board.spec.stages[i], board.spec.stages[i + 1].name
    if stage.gate.mode is GateMode.SOAK:
        try:
            soak(board.stages[i], stage.gate.soak_s, stage.gate.interval_s, say)
        except SoakFailed as exc:
            for name in exc.targets:
                board.rows[(i, name)]["reason"] = str(exc)[:500]
            raise stopped(board, StageFailed(i, stage.name, exc.targets, f"soak: {exc}", soaked=True)) from None
        return Decision(True, f"soaked {stage.gate.soak_s:.0f} s", "greenlight", "auto")
    if stage.gate.mode is GateMode.AUTO:
        return AUTOMATIC
    emit_pipeline(PipelineEvent.PAUSED, board.pipeline_id, stage=stage.name, next_stage=nxt)
    summary = "\n\n".join([f"### Promote pipeline `{board.pipeline_id}` to stage `{nxt}`?",
                           f"Stage `{stage.name}` passed:", stage_table(board.table(upto=i)),
                           ("Tick **approve** to start the next stage; leave it unticked to stop the "
                            "pipeline (what is released stays).")])
    decision = pause_run(PauseKind.GATE, stage.gate.timeout_s, summary)
    say(f"pipeline {board.pipeline_id}: promotion to {nxt} {decision.note()}")
    return decision


def _gate(spec: PipelineSpec, i: int) -> Step:
    stage, nxt = spec.stages[i], spec.stages[i + 1].name

    def run(release: Release) -> str:
        board = board_of(release)
        decision = board.answered(stage.name, nxt, _ask(board, i))
        if not decision.approved:
            raise stopped(board, GateRejected(nxt, decision))
        if stage.gate.wait_for_window_s > 0:
            targets = [(t.target.namespace, t.target.service) for t in board.stages[i + 1]]
            return f"{decision.note()}; {wait_until_allowed(targets, stage.gate.wait_for_window_s)}"
        return decision.note()
    return Step(f"gate-{stage.name}", run, lambda f: describe_gate(spec, i))


def pipeline_steps(spec: PipelineSpec, stages: list[list[PipelineTarget]], children: Children) -> list[Step]:
    """Every stage, and the gate between two stages, in order."""
    steps = []
    for i, targets in enumerate(stages):
        steps += [*([_gate(spec, i - 1)] if i else []), _stage(spec, i, targets, children)]
    return steps


def pipeline_plan(spec: PipelineSpec, pipeline_id: str, steps: Sequence[Step], warnings: Sequence[str]) -> Plan:
    """The dry run: the very list `pipeline_steps` gives the run, each step described."""
    count = sum(len(s.targets) for s in spec.stages)
    summary = (f"{spec.image or 'each target’s version'} through {' -> '.join(s.name for s in spec.stages)} "
               f"({count} target(s))")
    return plan_of("pipeline", "", pipeline_id, summary, steps, spec, PlanFacts(warnings=tuple(warnings)))


# -- resume
def start_at(steps: Sequence[Step], spec: PipelineSpec, point: ResumePoint) -> int:
    """The index of the first step a run takes: the resume point's stage, or the gate before it."""
    if point.stage_index >= len(spec.stages):
        return len(steps)
    at = [s.name for s in steps].index(f"stage-{spec.stages[point.stage_index].name}")
    return at - 1 if point.ask_gate else at


def passed_over(steps: Sequence[Step], at: int) -> Callable[[Release], None]:
    """The executor's `begin` for a run that starts at `steps[at]`: the undo of every stage it passes over
    (released by an earlier run of this pipeline) is pushed first, so a failure policy reaches them too."""
    def begin(release: Release) -> None:
        for s in steps[:at]:
            if s.undo is not None:
                release.undo.push(s.undo_name, lambda undo=s.undo: undo(release))
    return begin


# -- the end of a stopped pipeline
def pipeline_ending(board: PipelineBoard) -> Ending:
    """A failed stage (after its policy's rollbacks) or a rejected gate: the result, the `failed` event, and
    PipelineFailed carrying the result. A cancel is not recorded here (Prefect ends the run Cancelled)."""
    def announce(phase: str, reason: str, cancelled: bool, changes: int) -> str:
        return f"pipeline {board.pipeline_id}: {'cancelled' if cancelled else 'stopped'} during {phase}: {reason}"

    def record(outcome: str, failure: ReleaseFailed, phase: str) -> None:
        stop = board.stop
        if failure.cancelled:
            return
        if isinstance(stop, GateRejected):
            result = board.result("rejected", str(stop))
            emit_pipeline(PipelineEvent.FAILED, board.pipeline_id, stage=stop.next_stage, reason=result["message"],
                          decision=stop.decision.as_dict())
        elif isinstance(stop, StageFailed):
            policy = board.spec.stages[stop.stage].on_failure.value
            message = f"{stop}; policy {policy} rolled back {', '.join(board.rolled_back) or 'nothing else'}"
            result = board.result("failed", message)
            emit_pipeline(PipelineEvent.FAILED, board.pipeline_id, stage=stop.name, failed=stop.targets,
                          rolled_back=board.rolled_back, reason=message)
        else:
            return
        board.failure = PipelineFailed(result["message"], result)

    return Ending("failure-policy", announce, record, outcome_of_success="failed",
                  raised=lambda failure, exc: board.failure or exc)
