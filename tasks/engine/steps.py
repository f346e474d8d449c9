"""What a step is, and the plan of a list of steps. Pure: building a list does no I/O; a step's `run` and `undo`
are called only by the executor (tasks/engine/executor.py) with the running release.

A step has:
- a `name`: the timeline's and the plan's (`apply`, `wait-ready`, `hook-migrate`, `step-30`);
- `run(release) -> str`: does it and returns the detail line of the timeline;
- `undo(release) -> str` (or None): pushed on the release's undo stack *when the step starts*, because a change that
  fails half-way may have changed something; every undo re-reads the cluster and decides for itself whether it is
  safe and needed (tasks/decisions/undo.py), so running one for a step that changed nothing is harmless;
- `describe(facts) -> PlanStep`: how the dry run shows it, from the facts the plan read (never called by a run);
- `phase`: what a failure during it is reported as ("release failed during smoke-test");
- `on_failure`: roll everything back (before the point of no return), or report and stop (after it: the new
  version serves, verified);
- `changes`: the Lease is checked before it (a change only while the Service's Lease is certainly ours).
A gate (approval, pause, analysis verdict) is a step whose `run` raises Rejected or PermanentError to stop the list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from prefect_greenlight.tasks.decisions.plan import Plan, PlanFacts, PlanStep


class OnFailure(str, Enum):
    ROLL_BACK = "roll-back"  # undo every change so far, newest first, verified; the run fails
    REPORT = "report"  # past the point of no return: nothing is undone, the failure is reported (exit 1)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Any], str]
    describe: Callable[[Any], PlanStep]
    undo: Callable[[Any], str] | None = None
    undo_name: str = ""
    phase: str = ""
    on_failure: OnFailure = OnFailure.ROLL_BACK
    changes: bool = False

    @property
    def failure_phase(self) -> str:
        return self.phase or self.name

    def planned(self, facts: Any) -> PlanStep:
        """The plan's line for this step, under the step's own name (so the plan and the timeline agree)."""
        return dataclasses.replace(self.describe(facts), name=self.name)


def insert_after(steps: Sequence[Step], anchor: str, extra: Sequence[Step]) -> list[Step]:
    """`extra` placed right after the step named `anchor` (hooks and added steps go in by position)."""
    names = [s.name for s in steps]
    at = names.index(anchor) + 1
    return [*steps[:at], *extra, *steps[at:]]


def plan_of(strategy: str, namespace: str, service: str, summary: str, steps: Sequence[Step], facts: Any,
            found: PlanFacts) -> Plan:
    """The dry run: the same list the run executes, each step described from `facts`."""
    return Plan(strategy, namespace, service, summary, tuple(s.planned(facts) for s in steps), found)
