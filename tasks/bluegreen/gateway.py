"""Blue-green through an HTTPRoute (`traffic: gateway`): its preflight and its two route moves, used by
tasks/bluegreen/preflight.py and tasks/bluegreen/strategy.py around the selector switch (the decisions are in
tasks/decisions/gateway_switch.py; the route I/O is the canary's, tasks/kube/gateway.py):

  route-switch: green's Service (created if missing, green's selector) holds green's ready pods; the route's
                backendRef moves from the Service to it, accepted by every parent Gateway. Undo: `route_home`.
  switch:       the Service's selector moves to green, release record in the same patch (no gateway client sees it).
  route-back:   the backendRef back to the Service (both select green), accepted; green's Service deleted.
                Undo: `route_to_green`.

A failure after the switch therefore rolls back as: route to green's Service, selector back to blue, route back to
the Service (now blue's) — the gateway's clients move by the route, verified, as they moved forward.
"""

from __future__ import annotations

from prefect_greenlight.tasks.decisions.gateway import cross_namespaces
from prefect_greenlight.tasks.decisions.gateway_switch import (
    RouteSwitch,
    green_service_manifest,
    green_service_problems,
    recorded_route,
    routed_service,
    switch_route_problems,
)
from prefect_greenlight.tasks.errors import BadInput, PermanentError
from prefect_greenlight.tasks.kube.client import Kube, json_patch, read
from prefect_greenlight.tasks.kube.gateway import (
    delete_service,
    ensure_service,
    list_grants,
    read_route,
    switch_route,
    verify_backends,
)
from prefect_greenlight.tasks.kube.permissions import REFERENCE_GRANTS, require
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import BlueGreenSpec


def route_preflight(kube: Kube, spec: BlueGreenSpec, service: dict, green_selector: dict[str, str]) -> RouteSwitch:
    """The route and green's Service, or BadInput naming every problem (nothing changed)."""
    ns, g, green = spec.namespace, spec.gateway, spec.green_service
    route = read_route(kube, ns, g.route)
    if route is None:
        raise BadInput(f"HTTPRoute {g.route!r} not found in namespace {ns!r}")
    for other in cross_namespaces(route):
        require(kube, other, REFERENCE_GRANTS)
    grants = {other: list_grants(kube, other) for other in cross_namespaces(route)}
    problems = switch_route_problems(route, g.rule, spec.service, green, grants)
    existing = read(kube, "Service", ns, green)
    rules = (route.get("spec") or {}).get("rules") or []
    on_green = routed_service(rules, g.rule, ns, (spec.service, green)) == green
    problems += green_service_problems(existing, spec.service, on_green, green_selector)
    if problems:
        raise BadInput(problems)
    return RouteSwitch(g.route, g.rule, spec.service, green, green_service_manifest(service, green, green_selector),
                       on_green_service=on_green)


def _ensure_green_service(kube: Kube, namespace: str, rs: RouteSwitch) -> str:
    """green's Service exists and selects green (a leftover of greenlight's is re-pointed)."""
    want = rs.create["spec"]["selector"]
    existing = read(kube, "Service", namespace, rs.green_service)
    if existing is None:
        return ensure_service(kube, namespace, rs.create)
    if ((existing.get("spec") or {}).get("selector") or {}) != want:
        json_patch(kube, "Service", namespace, rs.green_service,
                   [{"op": "replace", "path": "/spec/selector", "value": want}])
        return f"Service {rs.green_service} re-pointed at {want}"
    return f"Service {rs.green_service} selects {want}"


def route_to_green(kube: Kube, namespace: str, rs: RouteSwitch, green: str, pods: int, timeout_s: float) -> str:
    """green's Service holding green's `pods` ready pods, then the route's backendRef on it, verified."""
    if read_route(kube, namespace, rs.route) is None:
        raise PermanentError(f"HTTPRoute {namespace}/{rs.route} is gone; not switching")
    made = _ensure_green_service(kube, namespace, rs)
    say(made)
    backends = verify_backends(kube, namespace, [(rs.green_service, green, pods)], timeout_s, say)
    moved = switch_route(kube, namespace, rs.route, rs.rule, rs.service, rs.green_service, timeout_s, say)
    return f"{made}; {backends}; {moved}"


def route_home(kube: Kube, namespace: str, rs: RouteSwitch, live: str, pods: int, timeout_s: float) -> str:
    """The Service holding `live`'s ready pods, the route's backendRef back on it, verified; green's Service
    deleted."""
    backends = verify_backends(kube, namespace, [(rs.service, live, pods)], timeout_s, say)
    moved = "HTTPRoute gone"
    if read_route(kube, namespace, rs.route) is not None:
        moved = switch_route(kube, namespace, rs.route, rs.rule, rs.green_service, rs.service, timeout_s, say)
    gone = delete_service(kube, namespace, rs.green_service)
    say(gone)
    return f"{backends}; {moved}; {gone}"


def rollback_route(kube: Kube, service: dict, target_selector: dict[str, str]) -> RouteSwitch | None:
    """The route `greenlight rollback` goes back through: the one the release record names, if its rule still
    sends to the Service (or, mid-switch, the temporary Service); otherwise None (a selector switch only, said)."""
    rs = recorded_route(service, target_selector)
    if rs is None:
        return None
    namespace = service["metadata"].get("namespace", "")
    route = read_route(kube, namespace, rs.route)
    rules = ((route or {}).get("spec") or {}).get("rules") or []
    if route is None or routed_service(rules, rs.rule, namespace, (rs.service, rs.green_service)) is None:
        say(f"HTTPRoute {rs.route} (recorded on Service {rs.service}) is gone or its rule {rs.rule} no longer sends "
            f"to {rs.service}: the rollback switches the selector only")
        return None
    return rs
