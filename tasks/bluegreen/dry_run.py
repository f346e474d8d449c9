"""The dry run's reads: what the plan needs beyond preflight (the Service for the exact patch, the preview
Service, the Lease), all reads — no Lease taken, no annotation, no event. The plan itself is pure
(tasks/bluegreen/strategy.py: the list of steps the run executes, described).
"""

from __future__ import annotations

from dataclasses import replace

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


def dry_run_blue_green(kube: Kube, plan: BlueGreenPreflight) -> Plan:
    ns, c = plan.namespace, plan.colors
    service = read(kube, "Service", ns, c.service) or {"metadata": {"name": c.service}}
    preview = read(kube, "Service", ns, plan.spec.preview_service) if plan.spec.preview_service else None
    hooks = planned_hooks(plan.spec, "blue-green", service, plan.release_id, plan.green_images)
    facts = replace(plan_facts(kube, ns, c.service, plan.permissions, plan.autoscalers, plan.warnings),
                    hooks=hooks.facts())
    return blue_green_plan(plan, service, preview, facts, hooks)


def dry_run_rollback(kube: Kube, rb: Rollback) -> Plan:
    """`greenlight rollback --dry-run`: the record as the rollback's choice reads it (`--to` may go elsewhere),
    both Deployments, the Lease and the HPAs."""
    record = rb.chosen
    facts = RollbackFacts(service=rb.svc, record=record,
                          target=read(kube, "Deployment", rb.namespace, record.previous_deployment),
                          live=read(kube, "Deployment", rb.namespace, record.live_deployment),
                          replicas_wanted=rb.replicas_wanted, release_id=rb.release_id)
    hpas = list_objects(kube, "HorizontalPodAutoscaler", rb.namespace)
    asked = ("(the rollback asks for no permission review before it starts)",)
    found = plan_facts(kube, rb.namespace, rb.service, asked, tuple(sorted(h["metadata"]["name"] for h in hpas)), ())
    has_hpa = bool(autoscalers_of(hpas, record.previous_deployment))
    return rollback_plan(facts, rb.cleanup, rb.deadlines, has_hpa, found)
