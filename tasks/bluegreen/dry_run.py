"""The dry run's reads: what the plan needs beyond preflight (the Service for the exact patch, the preview
Service, the Lease), all reads — no Lease taken, no annotation, no event. The plan itself is pure
(tasks/bluegreen/strategy.py: the list of steps the run executes, described).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prefect_greenlight.tasks.bluegreen.preflight import BlueGreenPreflight
from prefect_greenlight.tasks.bluegreen.restore import Rollback
from prefect_greenlight.tasks.bluegreen.rollback_strategy import rollback_plan
from prefect_greenlight.tasks.bluegreen.strategy import blue_green_plan
from prefect_greenlight.tasks.decisions.autoscaling import autoscalers_of
from prefect_greenlight.tasks.decisions.describe_hooks import planned_hooks
from prefect_greenlight.tasks.decisions.describe_rollback import RollbackFacts
from prefect_greenlight.tasks.decisions.plan import Plan
from prefect_greenlight.tasks.kube.client import Kube, list_objects, read
from prefect_greenlight.tasks.kube.lease import plan_facts
from prefect_greenlight.tasks.prefect_adapter.release_policy import policy_summary
from prefect_greenlight.tasks.record.plan_render import plan_text, publish_plan
from prefect_greenlight.tasks.record.report import Timeline, say


def release_result(release: BlueGreenPreflight, timeline: Timeline, outcome: str, live: str, **extra: Any) -> dict:
    """The flow's result (the CLI, the worker and the pipeline read it)."""
    return {"outcome": outcome, "service": release.colors.service, "namespace": release.namespace,
            "release_id": release.release_id, "live_deployment": live, "blue": release.colors.blue,
            "green": release.colors.green, "steps": timeline.rows(), **extra}


def dry_run_result(kube: Kube, release: BlueGreenPreflight, timeline: Timeline) -> dict:
    """The plan instead of the release: printed, a markdown artifact of the run, and the result's `plan`."""
    plan = dry_run_blue_green(kube, release)
    say(f"dry run: would release {release.colors.green} and switch Service {release.colors.service}; "
        "nothing changed")
    publish_plan(plan, release.release_id)
    return release_result(release, timeline, "dry-run", release.colors.blue, plan=plan.as_dict(),
                          plan_text=plan_text(plan), summary=release.summary())


def dry_run_blue_green(kube: Kube, plan: BlueGreenPreflight) -> Plan:
    ns, c = plan.namespace, plan.colors
    service = read(kube, "Service", ns, c.service) or {"metadata": {"name": c.service}}
    preview = read(kube, "Service", ns, plan.spec.preview_service) if plan.spec.preview_service else None
    hooks = planned_hooks(plan.spec, "blue-green", service, plan.release_id, plan.green_images)
    facts = replace(plan_facts(kube, ns, c.service, plan.permissions, plan.autoscalers, plan.warnings),
                    hooks=hooks.facts(), policy=policy_summary(ns, c.service))
    return blue_green_plan(plan, service, preview, facts, hooks)


def dry_run_rollback(kube: Kube, rb: Rollback) -> Plan:
    """`greenlight rollback --dry-run`: the record as the rollback's choice reads it (`--to` may go elsewhere),
    both Deployments, the Lease and the HPAs."""
    record = rb.chosen
    facts = RollbackFacts(service=rb.svc, record=record,
                          target=read(kube, "Deployment", rb.namespace, record.previous_deployment),
                          live=read(kube, "Deployment", rb.namespace, record.live_deployment),
                          replicas_wanted=rb.replicas_wanted, release_id=rb.release_id, route=rb.route)
    hpas = list_objects(kube, "HorizontalPodAutoscaler", rb.namespace)
    asked = ("(the rollback asks for no permission review before it starts)",)
    found = plan_facts(kube, rb.namespace, rb.service, asked, tuple(sorted(h["metadata"]["name"] for h in hpas)), ())
    has_hpa = bool(autoscalers_of(hpas, record.previous_deployment))
    return rollback_plan(facts, rb.cleanup, rb.deadlines, has_hpa, found)


def rollback_result(rb: Rollback, timeline: Timeline, outcome: str, live: str, **extra: Any) -> dict:
    """The rollback flow's result."""
    return {"outcome": outcome, "service": rb.service, "namespace": rb.namespace, "live_deployment": live,
            "release_id": rb.release_id, **extra, "steps": timeline.rows()}


def rollback_dry_run_result(kube: Kube, rb: Rollback, timeline: Timeline) -> dict:
    """The plan instead of the rollback: nothing taken, nothing changed."""
    plan = dry_run_rollback(kube, rb)
    publish_plan(plan, rb.release_id)
    return rollback_result(rb, timeline, "dry-run", rb.choice.from_deployment, previous_deployment=rb.choice.target,
                           plan=plan.as_dict(), plan_text=plan_text(plan))
