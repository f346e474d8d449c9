"""The canary's dry run: the plan (tasks/canary/strategy.py: the run's own list of steps, described) from what
preflight read plus the Lease and the Service (its hooks record) as read now; nothing taken, nothing changed."""

from __future__ import annotations

from dataclasses import replace

from prefect_greenlight.tasks.canary.preflight import CanaryPreflight
from prefect_greenlight.tasks.canary.progress import CanaryProgress
from prefect_greenlight.tasks.canary.strategy import canary_plan
from prefect_greenlight.tasks.decisions.describe_hooks import planned_hooks
from prefect_greenlight.tasks.decisions.plan import Plan
from prefect_greenlight.tasks.kube.client import Kube, read
from prefect_greenlight.tasks.kube.lease import plan_facts
from prefect_greenlight.tasks.prefect_adapter.release_policy import policy_summary
from prefect_greenlight.tasks.record.plan_render import plan_text, publish_plan
from prefect_greenlight.tasks.record.report import Timeline


def dry_run_canary(kube: Kube, plan: CanaryPreflight) -> Plan:
    service = read(kube, "Service", plan.namespace, plan.service) or {"metadata": {"name": plan.service}}
    hooks = planned_hooks(plan.spec, "canary", service, plan.release_id, plan.canary_images)
    facts = plan_facts(kube, plan.namespace, plan.service, plan.permissions, plan.autoscalers, plan.warnings)
    return canary_plan(plan, replace(facts, hooks=hooks.facts(), policy=policy_summary(plan.namespace, plan.service)),
                       hooks)


def dry_run_result(kube: Kube, plan: CanaryPreflight, progress: CanaryProgress, timeline: Timeline,
                   hook_rows: list[dict]) -> dict:
    """The plan instead of the release: printed, a markdown artifact of the run, and the result's `plan`."""
    planned = dry_run_canary(kube, plan)
    publish_plan(planned, plan.release_id)
    return {**progress.result("dry-run", timeline, hook_rows), "plan": planned.as_dict(),
            "plan_text": plan_text(planned), "steps_planned": [s.describe() for s in plan.steps]}
