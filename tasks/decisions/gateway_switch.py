"""Pure decisions of a blue-green through an HTTPRoute (`traffic: gateway` on the blue-green spec). No I/O;
table-tested in tests/unit/test_gateway_switch.py.

At rest the chosen rule's only backendRef is the spec's Service, whose selector selects the live color. A release
moves that backendRef to green's Service (the route switch: what the gateway's clients see), moves the Service's
selector to green (the release record, as the selector blue-green does; no gateway client sees it), then moves the
backendRef back to the Service (both select green: nothing changes for anyone). Each move is the same pure change:
`switched_rules` renames the one backendRef, keeping its group, kind, namespace, port and weight.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass

from prefect_greenlight.tasks.decisions.gateway import canary_service_manifest, refers_to, route_problems
from prefect_greenlight.tasks.decisions.plan import PlanStep, StepKind
from prefect_greenlight.tasks.spec.canary import TRACK_LABEL

GREEN_SERVICE_OF = "greenlight.io/green-service-of"
SWITCH_ROUTE = "greenlight.io/switch-route"  # on the Service: the route a `traffic: gateway` release switched (JSON)


@dataclass(frozen=True)
class RouteSwitch:
    """The route, its rule, the spec's Service and green's Service (`create`: its manifest, when missing).
    `on_green_service`: preflight found the rule on green's Service (a run killed between route-switch and
    route-back)."""

    route: str
    rule: int
    service: str
    green_service: str
    create: dict | None = None
    on_green_service: bool = False


def route_annotation(rs: RouteSwitch) -> str:
    """The release record's note of the route (written with the selector switch), for `greenlight rollback`."""
    return json.dumps({"route": rs.route, "rule": rs.rule, "green_service": rs.green_service}, sort_keys=True,
                      separators=(",", ":"))


def recorded_route(service: dict, target_selector: dict[str, str]) -> RouteSwitch | None:
    """The route a rollback goes through: the one recorded on the Service, its temporary Service selecting the
    rollback's target. None when none is recorded (or the note is unreadable)."""
    raw = ((service.get("metadata") or {}).get("annotations") or {}).get(SWITCH_ROUTE)
    try:
        note = json.loads(raw) if raw else None
        route, rule, green = str(note["route"]), int(note["rule"]), str(note["green_service"])
    except (ValueError, TypeError, KeyError):
        return None
    name = service["metadata"]["name"]
    return RouteSwitch(route, rule, name, green, green_service_manifest(service, green, target_selector))


def routed_service(rules: Sequence[dict], index: int, namespace: str, candidates: Sequence[str]) -> str | None:
    """Which of `candidates` the rule's backendRefs name (the first found), or None."""
    if index >= len(rules):
        return None
    refs = rules[index].get("backendRefs") or []
    return next((c for c in candidates if any(refers_to(r, namespace, c, namespace) for r in refs)), None)


def switched_rules(rules: Sequence[dict], index: int, namespace: str, from_service: str, to_service: str) -> list[dict]:
    """The rules with the rule's backendRef to `from_service` renamed `to_service`; as read when it already names
    `to_service` (a re-run repeats nothing). ValueError when the rule is missing or names neither."""
    out = copy.deepcopy(list(rules))
    if index >= len(out):
        raise ValueError(f"the route has {len(out)} rule(s); rule {index} does not exist")
    refs = out[index].get("backendRefs") or []
    if any(refers_to(r, namespace, to_service, namespace) for r in refs) and \
            not any(refers_to(r, namespace, from_service, namespace) for r in refs):
        return out
    found = [r for r in refs if refers_to(r, namespace, from_service, namespace)]
    if not found:
        raise ValueError(f"rule {index} has no backendRef to Service {from_service!r} nor {to_service!r} "
                         f"(backendRefs: {[r.get('name') for r in refs]})")
    for ref in found:
        ref["name"] = to_service
    return out


def switch_route_problems(route: dict, index: int, service: str, green_service: str,
                          grants: dict[str, list[dict]]) -> list[str]:
    """What preflight refuses: the canary's route problems (rule missing, not sending to one backend alone, not
    Accepted, a cross-namespace backendRef without a ReferenceGrant), where the one backend may be `service` or,
    on a re-run after a kill mid-switch, `green_service`."""
    namespace = (route.get("metadata") or {}).get("namespace", "")
    rules = (route.get("spec") or {}).get("rules") or []
    current = routed_service(rules, index, namespace, (service, green_service)) or service
    problems = route_problems(route, index, current, "", grants)
    return [p.replace(f"the stable Service {current!r}", f"the Service {service!r}").replace(
        "greenlight weighs a rule", "greenlight switches a rule") for p in problems]


def green_service_manifest(service: dict, name: str, green_selector: dict[str, str]) -> dict:
    """green's Service: the Service's ports (as the canary Service has them), green's selector, labelled as
    greenlight's and annotated with the Service it stands in for."""
    out = canary_service_manifest(service, name)
    out["metadata"]["labels"].pop(TRACK_LABEL, None)
    out["metadata"]["annotations"] = {GREEN_SERVICE_OF: service["metadata"]["name"]}
    out["spec"]["selector"] = dict(green_selector)
    return out


def green_service_problems(existing: dict | None, service: str, route_on_it: bool,
                           green_selector: dict[str, str]) -> list[str]:
    """green's Service, when it exists, must be greenlight's for this Service; and when the route already sends to
    it (a re-run), it must select green."""
    if existing is None:
        return []
    meta = existing.get("metadata") or {}
    if (meta.get("annotations") or {}).get(GREEN_SERVICE_OF) != service:
        return [f"Service {meta.get('name')!r} exists and is not greenlight's green Service of {service!r} "
                f"(annotation {GREEN_SERVICE_OF}); name another with gateway.green_service"]
    selector = (existing.get("spec") or {}).get("selector") or {}
    if route_on_it and selector != green_selector:
        return [f"the route sends to Service {meta.get('name')!r}, which selects {selector}, not green's "
                f"{green_selector}: run `greenlight rollback` or point the route back at {service!r}"]
    return []


def describe_route_switch(rs: RouteSwitch, green: str, pods: int) -> PlanStep:
    """The dry run of the switch through the route (before the selector switch)."""
    return PlanStep("route-switch", StepKind.CHANGE, f"HTTPRoute {rs.route}, Service {rs.green_service}",
                    f"Service {rs.green_service} (selector {rs.create['spec']['selector']}; created if missing) "
                    f"holds {green}'s {pods} ready pod(s); then HTTPRoute {rs.route} rule {rs.rule}: backendRef "
                    f"{rs.service} -> {rs.green_service} (server-side apply, guarded by resourceVersion)",
                    gate=f"every parent Gateway reports the route Accepted and ResolvedRefs at its new generation; "
                         f"EndpointSlices of {rs.green_service}: only {green}'s pods, {pods} ready",
                    undo=f"HTTPRoute {rs.route} back to Service {rs.service} (after it selects blue again), "
                         f"verified; Service {rs.green_service} deleted")


def describe_route_back(rs: RouteSwitch, green: str) -> PlanStep:
    """The dry run of the route's return to the Service, once the Service selects green too."""
    return PlanStep("route-back", StepKind.CHANGE, f"HTTPRoute {rs.route}, Service {rs.green_service}",
                    f"HTTPRoute {rs.route} rule {rs.rule}: backendRef {rs.green_service} -> {rs.service} (both "
                    f"select {green}: no client changes version); then delete Service {rs.green_service}",
                    gate="every parent Gateway reports the route Accepted and ResolvedRefs at its new generation",
                    undo=f"HTTPRoute {rs.route} back on Service {rs.green_service} (re-created, {green}'s pods "
                         "verified)")


def describe_route_home(rs: RouteSwitch, blue: str) -> PlanStep:
    """The dry run of a re-run that finds the route on green's Service while the Service still selects blue."""
    return PlanStep("route-home", StepKind.CHANGE, f"HTTPRoute {rs.route}, Service {rs.green_service}",
                    f"a previous run stopped mid-switch: HTTPRoute {rs.route} rule {rs.rule} back from "
                    f"{rs.green_service} to {rs.service} (which selects {blue}), then delete {rs.green_service}; "
                    "the release then runs from the start",
                    gate="every parent Gateway reports the route Accepted and ResolvedRefs at its new generation",
                    undo="not undone (the route is where the Service's selector is)")
