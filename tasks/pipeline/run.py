"""A pipeline run around its list of steps (tasks/pipeline/strategy.py): where a re-run resumes, the dry run
(the same list described, and every target's own plan), and the end of a pipeline whose every stage passed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from prefect_greenlight.tasks.decisions.history import HistoryEntry
from prefect_greenlight.tasks.decisions.pipeline import TargetOutcome, pipeline_outcome, resume_point, target_done
from prefect_greenlight.tasks.engine.steps import Step
from prefect_greenlight.tasks.pipeline.board import PipelineBoard
from prefect_greenlight.tasks.pipeline.strategy import Children, pipeline_plan, start_at
from prefect_greenlight.tasks.pipeline.targets import PipelineTarget, history_of
from prefect_greenlight.tasks.record.events import PipelineEvent, emit_pipeline
from prefect_greenlight.tasks.record.plan_render import pipeline_plan_text
from prefect_greenlight.tasks.record.report import say


def new_pipeline_id() -> str:
    return "pl-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]


def resume(board: PipelineBoard, steps: Sequence[Step],
           history: Callable[[PipelineTarget], list[HistoryEntry]] = history_of) -> int:
    """Targets whose Service's newest history entry is this pipeline's release of them are done before; the
    index of the step the run starts at (tasks/decisions/pipeline.py resume_point). Says and emits `started`."""
    pid, spec = board.pipeline_id, board.spec
    done = [[target_done(history(t), pid, t.stage.name, t.name) for t in row] for row in board.stages]
    for t, d in zip(board.targets(), (d for row in done for d in row)):
        if d:
            board.row(t)["outcome"] = TargetOutcome.DONE_BEFORE.value
    point = resume_point(done)
    board.resumed = point.describe([s.name for s in spec.stages])
    say(f"pipeline {pid}: {len(board.stages)} stage(s), {len(board.targets())} target(s); {board.resumed}")
    emit_pipeline(PipelineEvent.STARTED, pid, stages=[s.name for s in spec.stages], resumed=board.resumed)
    return start_at(steps, spec, point)


def dry_run_result(board: PipelineBoard, steps: Sequence[Step], children: Children, warnings: Sequence[str]) -> dict:
    """The plan instead of the run: the pipeline's list of steps described, and each target's own plan (its
    release's dry run, a child flow run). Nothing changes in any cluster."""
    plan = pipeline_plan(board.spec, board.pipeline_id, steps, warnings)
    plans = []
    for t in board.targets():
        result = children.release(t, dry_run=True)
        board.row(t)["outcome"] = TargetOutcome.PLANNED.value
        plans.append({"stage": t.stage.name, "target": t.name, "where": t.where,
                      "plan_text": result.get("plan_text") or result.get("message", ""), "plan": result.get("plan")})
    board.resumed = "no resume in a dry run"
    out = board.result("dry-run", "dry run: nothing changed in any cluster")
    return {**out, "plans": plans, "plan": plan.as_dict(), "plan_text": pipeline_plan_text(plan)}


def completed(board: PipelineBoard) -> dict:
    """Every stage passed: the result (the report artifact) and the `completed` event."""
    result = board.result(pipeline_outcome(list(board.rows.values()), False), "every stage passed")
    emit_pipeline(PipelineEvent.COMPLETED, board.pipeline_id, seconds=result["seconds"])
    return result
