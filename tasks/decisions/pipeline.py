"""Pure decisions of a promotion pipeline (flows/pipeline.py): which targets a re-run may skip, where it resumes,
what a failure rolls back and in which order, and the stages × targets table of the report.

A target is done when the newest entry of its Service's history (written by the release itself, in the cluster)
was released by this pipeline for this target: a re-run after a kill never releases it twice, and a target that
was rolled back since (by this pipeline's atomic rollback, or by hand) is released again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any


class TargetOutcome(str, Enum):
    RELEASED = "released"  # released by this run
    DONE_BEFORE = "done-before"  # released by an earlier run of the same pipeline (resumed)
    FAILED = "failed"  # its release failed (and rolled itself back)
    ROLLED_BACK = "rolled-back"  # released, then rolled back by the failure policy
    ROLLBACK_FAILED = "rollback-failed"
    NOT_STARTED = "not-started"
    PLANNED = "planned"  # dry run


RELEASED = (TargetOutcome.RELEASED, TargetOutcome.DONE_BEFORE)


def target_done(entries: Sequence[Any], pipeline_id: str, stage: str, target: str) -> bool:
    """True when the Service's newest history entry (tasks/decisions/history.py HistoryEntry, newest last) is this
    pipeline's release of this target."""
    if not entries:
        return False
    newest = entries[-1]
    return (newest.pipeline_id == pipeline_id and newest.pipeline_stage == stage
            and newest.pipeline_target == target and newest.outcome == "released"
            and newest.strategy in ("blue-green", "canary"))


@dataclass(frozen=True)
class ResumePoint:
    stage_index: int  # the first stage with a target left to release (len(stages): nothing left)
    ask_gate: bool  # whether the gate of the stage before it must be passed (again)

    def describe(self, stage_names: list[str]) -> str:
        if self.stage_index == 0:
            return "starting at the first stage"
        if self.stage_index >= len(stage_names):
            return "every stage already passed"
        passed = ", ".join(stage_names[:self.stage_index])
        return (f"resuming at stage {stage_names[self.stage_index]} (passed before: {passed}"
                f"{'; its gate is asked again' if self.ask_gate else ''})")


def resume_point(done: list[list[bool]]) -> ResumePoint:
    """Where a run starts given which targets of each stage are done. A stage is passed when all its targets are;
    the gate after the last passed stage is asked again unless the next stage already has a done target (which
    proves the gate was passed before the kill)."""
    first = next((i for i, stage in enumerate(done) if not all(stage)), len(done))
    ask = 0 < first < len(done) and not any(done[first])
    return ResumePoint(first, ask)


def to_roll_back(policy: str, released: list[list[str]], failed_stage: int) -> list[tuple[int, str]]:
    """(stage index, target) pairs to roll back after stage `failed_stage` failed, newest first: none for
    `target` (the failed release undid itself), the stage's released targets for `stage`, and every released
    target of this stage and the ones before for `atomic`."""
    if policy == "target":
        return []
    stages = [failed_stage] if policy == "stage" else list(range(failed_stage, -1, -1))
    return [(i, name) for i in stages for name in reversed(released[i])]


def stage_table(rows: list[dict]) -> str:
    """Markdown: one row per target (stage, target, cluster, Service, outcome, seconds, serving now)."""
    lines = ["| stage | target | context | Service | outcome | seconds | serving now |",
             "|---|---|---|---|---|---:|---|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['target']} | {r['context']} | {r['namespace']}/{r['service']} | "
                     f"{r['outcome']} | {r['seconds']:.1f} | {r.get('serving') or '-'} |")
    return "\n".join(lines)


def pipeline_outcome(rows: list[dict], stopped_at_gate: bool) -> str:
    """completed when every target released; rejected when a gate said no; failed otherwise."""
    if stopped_at_gate:
        return "rejected"
    if rows and all(r["outcome"] in (o.value for o in RELEASED) for r in rows):
        return "completed"
    return "failed"
