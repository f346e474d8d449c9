"""A running pipeline's board: one row per target (outcome, seconds, reason, what its Service serves now), every
gate's answer, and the result and report artifact built from them. The steps (tasks/pipeline/strategy.py) write
the rows; nothing here changes a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prefect_greenlight.tasks.decisions.pause import Decision
from prefect_greenlight.tasks.decisions.pipeline import RELEASED, TargetOutcome, stage_table
from prefect_greenlight.tasks.pipeline.targets import PipelineTarget, serving_now
from prefect_greenlight.tasks.record.report import artifact_key, markdown_artifact
from prefect_greenlight.tasks.spec.pipeline import PipelineSpec


class PipelineBoard:
    """The rows of the report (one per target), the gates' answers, and how the run ended."""

    def __init__(self, spec: PipelineSpec, pipeline_id: str, stages: list[list[PipelineTarget]], t0: float,
                 serving: Callable[[PipelineTarget], str] = serving_now):
        self.spec, self.pipeline_id, self.stages, self.serving = spec, pipeline_id, stages, serving
        self.rows = {(t.stage_index, t.name): {
            "stage": t.stage.name, "target": t.name, "context": t.target.cluster,
            "namespace": t.target.namespace, "service": t.target.service, "strategy": t.target.strategy.value,
            "outcome": TargetOutcome.NOT_STARTED.value, "seconds": 0.0, "reason": ""} for row in stages for t in row}
        self.t0 = t0  # the run's start, before resolve and pre-flight
        self.gates: list[dict] = []  # every gate's answer: who, why, how
        self.resumed = ""  # where the run started (tasks/decisions/pipeline.py ResumePoint.describe)
        self.rolled_back: list[str] = []  # targets the failure policy rolled back, in order
        self.stop: Exception | None = None  # what stopped it: a failed stage or soak, a rejected gate
        self.failure: Exception | None = None  # what the stopped pipeline raises (PipelineFailed)

    def row(self, t: PipelineTarget) -> dict:
        return self.rows[(t.stage_index, t.name)]

    def targets(self) -> list[PipelineTarget]:
        return [t for row in self.stages for t in row]

    def outcome_is(self, t: PipelineTarget, *outcomes: TargetOutcome) -> bool:
        return self.row(t)["outcome"] in (o.value for o in outcomes)

    def released(self) -> list[list[str]]:
        """Per stage, the names of its targets released (by this run or an earlier one of this pipeline)."""
        return [[t.name for t in row if self.outcome_is(t, *RELEASED)] for row in self.stages]

    def answered(self, stage: str, next_stage: str, decision: Decision) -> Decision:
        self.gates.append({"stage": stage, "next_stage": next_stage, **decision.as_dict()})
        return decision

    def table(self, upto: int | None = None) -> list[dict]:
        """The rows of stages up to `upto` (all by default); for the whole table, what each Service serves now."""
        rows = [self.row(t) for row in self.stages[:None if upto is None else upto + 1] for t in row]
        for t in self.targets():
            self.row(t)["serving"] = self.serving(t) if upto is None else self.row(t).get("serving", "")
        return rows

    def result(self, outcome: str, message: str) -> dict:
        """The pipeline's result, and its report artifact `pipeline-<id>` (stages × targets)."""
        rows = self.table()
        md = "\n\n".join([f"## Pipeline `{self.pipeline_id}`: {outcome}", message, f"_{self.resumed}_",
                          stage_table(rows)])
        markdown_artifact(artifact_key("pipeline", self.pipeline_id), md, f"pipeline {outcome}")
        return {"pipeline_id": self.pipeline_id, "outcome": outcome, "message": message, "resumed": self.resumed,
                "seconds": round(time.monotonic() - self.t0, 1), "targets": rows, "table": stage_table(rows),
                "gates": self.gates}
