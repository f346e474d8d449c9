"""A release's hooks as steps of the release engine (tasks/engine/): one step per hook at a point, named as the
timeline names it (`hook-<name>`, between canary steps `hook-<name>-<percent>`), run once per release by the
release's HookRunner, described by the plan's HookPlan (`facts.hooks`)."""

from __future__ import annotations

from collections.abc import Sequence

from prefect_greenlight.tasks.decisions.hooks import step_name
from prefect_greenlight.tasks.engine.steps import Step
from prefect_greenlight.tasks.spec import Hook, HookPoint


def hook_steps(hooks: Sequence[Hook], point: HookPoint, percent: int | None = None,
               next_percent: int | None = None) -> list[Step]:
    """The steps of the hooks at `point`, in the spec's order. A Job is a change (the Lease is checked first); a
    webhook is a gate. A failure is a failed step like any other (what it undoes: FAILURE_EFFECT)."""
    return [Step(name=step_name(hook, percent),
                 run=lambda r, h=hook: r.hooks.run_one(h, None, percent, next_percent),
                 describe=lambda facts, h=hook: facts.hooks.step(h, percent),
                 phase=f"{point.value} hook", changes=hook.job is not None)
            for hook in hooks if hook.at is point]
