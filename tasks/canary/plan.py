"""The canary's dry run: the plan (tasks/decisions/plan_canary.py) from what preflight read plus the Lease as
read now; nothing taken, nothing changed."""

from __future__ import annotations

from prefect_greenlight.tasks.canary.preflight import CanaryPlan
from prefect_greenlight.tasks.decisions.plan import Plan
from prefect_greenlight.tasks.decisions.plan_canary import canary_plan
from prefect_greenlight.tasks.kube.client import Kube
from prefect_greenlight.tasks.kube.lease import plan_facts


def plan_canary(kube: Kube, plan: CanaryPlan) -> Plan:
    return canary_plan(plan, plan_facts(kube, plan.namespace, plan.service, plan.permissions, plan.autoscalers,
                                        plan.warnings))
