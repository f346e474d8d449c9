"""The changing steps of a canary by HTTPRoute weights (`traffic: gateway`), used by tasks/canary/strategy.py in
place of the replica moves: every `set_weight`, `set_canary_scale` and `match` step brings the release to the state
preflight decided for it (tasks/decisions/gateway.py: weight, matches, canary pods), idempotently:

  the canary Service (created if greenlight owns it and it is missing); the canary Deployment applied at its pods
  and ready, BEFORE the route sends it more (or, when its pods fall, after the route sends it less); the route's
  rules applied and accepted by every parent Gateway; both Services' EndpointSlices holding their pods.

The abort: the route back to stable 100 % (match rule removed), verified, before any canary pod goes; then the
replica abort (stable at its count and ready, the canary to 0). The promotion (Flagger's): stable takes the
canary's pod template and is ready, the route back to stable 100 %, verified, the canary to 0.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from prefect_greenlight.tasks.canary.preflight import CanaryPreflight
from prefect_greenlight.tasks.canary.steps import restore_stable, wait_scaled_to_zero
from prefect_greenlight.tasks.decisions.canary import StepCounts
from prefect_greenlight.tasks.decisions.describe_gateway import describe_change, describe_promotion
from prefect_greenlight.tasks.decisions.gateway import AT_REST, GatewayState, scale_first
from prefect_greenlight.tasks.engine.executor import Release
from prefect_greenlight.tasks.engine.steps import Step
from prefect_greenlight.tasks.errors import PermanentError
from prefect_greenlight.tasks.kube.client import Kube, apply_deployment, json_patch, read
from prefect_greenlight.tasks.kube.gateway import ensure_route, ensure_service, read_route, set_route, verify_backends
from prefect_greenlight.tasks.kube.waiting import require_ready
from prefect_greenlight.tasks.record.report import say


def positions(p: CanaryPreflight) -> list[int]:
    """Where each weight's group starts in `spec.step_list()` (its gates follow it)."""
    return [i for i, s in enumerate(p.spec.step_list()) if s.set_weight is not None]


def state_at(p: CanaryPreflight, group: int, gate: int = -1) -> tuple[GatewayState, GatewayState]:
    """(the state before, the state after) the weight step of `group` (gate -1) or its gate number `gate`."""
    at = positions(p)[group] + gate + 1
    states = p.gateway.states
    return (states[at - 1] if at else AT_REST), states[at]


def _canary_at(kube: Kube, p: CanaryPreflight, pods: int) -> str:
    """Server-side apply the canary at `pods` and wait until they are ready (or gone, at 0)."""
    body = copy.deepcopy(p.canary_manifest)
    body["spec"]["replicas"] = pods
    apply_deployment(kube, p.namespace, body)
    if pods == 0:
        return wait_scaled_to_zero(kube, p.namespace, p.canary, p.spec.deadlines.ready_s)
    return f"{p.canary}: " + require_ready(kube, p.namespace, p.canary, p.spec.deadlines, f"canary {p.canary}", say)


def change(kube: Kube, p: CanaryPreflight, current_pods: int, want: GatewayState) -> str:
    """Bring the route and the canary's pods to `want` (pods first when they rise), then verify both Services."""
    g, d = p.gateway, p.spec.deadlines
    if g.create_service is not None:
        say(ensure_service(kube, p.namespace, g.create_service))
    if g.create_route is not None:
        say(ensure_route(kube, p.namespace, g.create_route))

    def route() -> str:
        return set_route(kube, p.namespace, g.route, g.rule, g.service, g.canary_service, want, d.endpoints_s, say)

    def pods() -> str:
        return _canary_at(kube, p, want.canary_pods)

    order = (pods, route) if scale_first(current_pods, want.canary_pods) else (route, pods)
    done = [f() for f in order]
    backends = verify_backends(kube, p.namespace, [(g.service, p.stable, g.stable_replicas),
                                                   (g.canary_service, p.canary, want.canary_pods)], d.endpoints_s, say)
    return f"{want.describe()}; {done[0]}; {done[1]}; {backends}"


def change_step(p: CanaryPreflight, name: str, group: int, gate: int,
                record: Callable[[Release, StepCounts], None], phase: str) -> Step:
    """A step that changes weights, matches or pods; `record(release, state)` notes the progress after it."""
    before, want = state_at(p, group, gate)

    def run(release: Release) -> str:
        detail = change(release.kube, p, release.handed_on["canary"].current.canary, want)
        record(release, StepCounts(want.weight, want.canary_pods, p.gateway.stable_replicas))
        return detail
    return Step(name, run, lambda f: describe_change(p.gateway, name, p.stable, p.canary, before, want,
                                                     p.spec.deadlines.endpoints_s), phase=phase, changes=True)


def route_to_stable(kube: Kube, p: CanaryPreflight) -> str:
    """The route back to stable 100 %, greenlight's match rule removed, verified (a route gone: nothing to do)."""
    g = p.gateway
    if read_route(kube, p.namespace, g.route) is None:
        return f"HTTPRoute {g.route} is gone"
    return set_route(kube, p.namespace, g.route, g.rule, g.service, g.canary_service, AT_REST,
                     p.spec.deadlines.endpoints_s, say)


def abort(kube: Kube, p: CanaryPreflight) -> str:
    """The route on stable first, verified; only then the replica abort (the canary to 0)."""
    first = route_to_stable(kube, p)
    say(f"abort: {first}")
    return first + "; " + restore_stable(kube, p.namespace, p.service, p.stable, p.canary, p.total,
                                         p.spec.deadlines)


def promote(kube: Kube, p: CanaryPreflight) -> str:
    """Stable takes the canary's pod template (its own labels kept) and is ready; the route back to stable,
    verified; the canary to 0."""
    canary = read(kube, "Deployment", p.namespace, p.canary)
    if canary is None:
        raise PermanentError(f"canary Deployment {p.canary} is gone; refusing to promote")
    template = canary["spec"]["template"].get("spec") or {}
    json_patch(kube, "Deployment", p.namespace, p.stable, [
        {"op": "replace", "path": "/spec/template/spec", "value": template}])
    ready = require_ready(kube, p.namespace, p.stable, p.spec.deadlines, f"promoted stable {p.stable}", say)
    say(f"promote: {p.stable} runs {p.canary}'s pod template: {ready}")
    route = route_to_stable(kube, p)
    gone = _canary_at(kube, p, 0)
    backends = verify_backends(kube, p.namespace, [(p.service, p.stable, p.gateway.stable_replicas)],
                               p.spec.deadlines.endpoints_s, say)
    return f"{p.stable} promoted ({ready}); {route}; {gone}; {backends}"


def promote_step(p: CanaryPreflight, record: Callable[[Release], None]) -> Step:
    def run(release: Release) -> str:
        detail = promote(release.kube, p)
        record(release)
        return detail
    return Step("cleanup", run, lambda f: describe_promotion(p.gateway, p.stable, p.canary), phase="cleanup",
                changes=True)
