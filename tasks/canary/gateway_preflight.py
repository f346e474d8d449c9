"""Preflight of a canary by HTTPRoute weights (`traffic: gateway`), called by tasks/canary/preflight.py: refuse
(BadInput, nothing changed) a missing route, a rule not sending to the stable Service alone, a route no parent
Gateway accepted, a cross-namespace backendRef no ReferenceGrant allows, Services that select both versions,
a step that sends traffic to 0 pods, and missing permissions; otherwise decide the GatewayPlan."""

from __future__ import annotations

from prefect_greenlight.tasks.decisions.canary import StepCounts
from prefect_greenlight.tasks.decisions.describe_gateway import GatewayPlan
from prefect_greenlight.tasks.decisions.gateway import (
    canary_service_manifest,
    cross_namespaces,
    gateway_states,
    route_manifest,
    route_problems,
    service_problems,
)
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.kube.client import Kube, read
from prefect_greenlight.tasks.kube.gateway import list_grants, read_route
from prefect_greenlight.tasks.kube.permissions import (
    CREATE_ROUTE,
    CREATE_SERVICE,
    GATEWAY_ROUTE,
    REFERENCE_GRANTS,
    require,
)
from prefect_greenlight.tasks.spec.canary import CanarySpec


def gateway_preflight(kube: Kube, spec: CanarySpec, service: dict, stable: dict, canary: dict,
                      stable_replicas: int) -> GatewayPlan:
    """The route, the Services and the step states, or BadInput naming every problem."""
    ns, g = spec.namespace, spec.gateway
    existing = read(kube, "Service", ns, spec.canary_service)
    create = canary_service_manifest(service, spec.canary_service) if existing is None else None
    require(kube, ns, GATEWAY_ROUTE + (CREATE_SERVICE if create else []))
    route, create_route = read_route(kube, ns, g.route), None
    if route is None and g.create is None:
        raise BadInput(f"HTTPRoute {g.route!r} not found in namespace {ns!r} (give `gateway.create` to have "
                       "greenlight create it)")
    if route is None:
        require(kube, ns, CREATE_ROUTE)
        route = create_route = {**route_manifest(g.route, g.create, service), "status": {}}
        route["metadata"] = {**route["metadata"], "namespace": ns}
    for other in cross_namespaces(route):
        require(kube, other, REFERENCE_GRANTS)
    grants = {other: list_grants(kube, other) for other in cross_namespaces(route)}
    problems = route_problems(route, g.rule, spec.service, spec.canary_service, grants, created=bool(create_route))
    problems += service_problems(service, existing or create, stable, canary)
    try:
        states = gateway_states(spec.step_list(), stable_replicas)
    except ValueError as exc:
        problems.append(str(exc))
        states = ()
    if problems:
        raise BadInput(problems)
    if create_route:
        create_route = route_manifest(g.route, g.create, service)
    return GatewayPlan(g.route, g.rule, spec.service, spec.canary_service, stable_replicas, states, create,
                       create_route)


def weight_counts(spec: CanarySpec, plan: GatewayPlan) -> tuple[StepCounts, ...]:
    """The progress record's counts per weight step: its percent, the canary's pods right after it, stable's."""
    return tuple(StepCounts(state.weight, state.canary_pods, plan.stable_replicas)
                 for step, state in zip(spec.step_list(), plan.states) if step.set_weight is not None)
