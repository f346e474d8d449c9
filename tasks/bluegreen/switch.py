"""Steps 6-7 and their undo: move the Service selector to green with a guarded patch that also writes the release
record, verify with EndpointSlices that only green's ready pods are behind it, and the reverse for rollback.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from datetime import datetime, timezone

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_greenlight.tasks.bluegreen.preflight import BlueGreenPreflight
from prefect_greenlight.tasks.decisions.annotations import PREFIX, switch_annotations
from prefect_greenlight.tasks.decisions.endpoints import covering_selector
from prefect_greenlight.tasks.decisions.gateway_switch import SWITCH_ROUTE, route_annotation
from prefect_greenlight.tasks.decisions.traffic import selector_patch
from prefect_greenlight.tasks.decisions.undo import may_switch_back
from prefect_greenlight.tasks.errors import GuardFailed, PermanentError
from prefect_greenlight.tasks.kube.client import Kube, json_patch, read
from prefect_greenlight.tasks.kube.waiting import EndpointWatch, wait_endpoints
from prefect_greenlight.tasks.record.report import say

PREVIOUS_REPLICAS = PREFIX + "previous-replicas"
APPROVAL = PREFIX + "approval"


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def move_selector(kube: Kube, namespace: str, service: str, from_selector: dict, to_selector: dict,
                  annotations: dict[str, str], svc: dict | None = None) -> str:
    """Guarded selector move. A no-op when the Service already selects `to_selector`; GuardFailed when it
    selects neither (someone else changed it). `svc`: the Service as just read (else it is read here)."""
    svc = svc if svc is not None else read(kube, "Service", namespace, service)
    if svc is None:
        raise PermanentError(f"Service {namespace}/{service} disappeared")
    ops = selector_patch(svc, from_selector, to_selector, annotations)
    if not ops:
        return f"Service {service} already selects {to_selector}"
    try:
        json_patch(kube, "Service", namespace, service, ops)
    except GuardFailed as exc:
        # Ambiguous or raced: re-read; if the selector is where we wanted it, the patch did land.
        now = read(kube, "Service", namespace, service)
        if now and (now.get("spec", {}).get("selector") or {}) == to_selector:
            return f"Service {service} already selects {to_selector}"
        raise GuardFailed(f"Service {service} selector is {(now or {}).get('spec', {}).get('selector')}, "
                          f"expected {from_selector}: {exc}") from exc
    return f"Service {service} selector {from_selector} -> {to_selector}"


def verify_only(kube: Kube, namespace: str, service: str, deployment: str, desired: int, timeout_s: float,
                watch: EndpointWatch | None = None) -> str:
    """`watch`: an informer started before the switch (then nothing is listed after the PATCH)."""
    if watch is not None:
        verdict = watch.wait(deployment, desired, timeout_s, progress=say)
    else:
        verdict = wait_endpoints(kube, namespace, service, deployment, desired, timeout_s, progress=say)
    if not verdict.ok:
        raise PermanentError(f"EndpointSlices of Service {service}: {verdict.message}")
    say(verdict.message)
    return verdict.message


def switch_back(kube: Kube, plan: BlueGreenPreflight, watch: EndpointWatch | None = None) -> str:
    """Undo of the switch: selector back to blue (only if blue can take the traffic), verified by EndpointSlices.
    `watch`: the release's informer (release_endpoints), already watching; else one of its own, started before
    the PATCH."""
    blue = read(kube, "Deployment", plan.namespace, plan.colors.blue)
    ok, why = may_switch_back(blue, plan.colors.blue)
    if not ok:
        raise PermanentError(f"not switching back: {why}")
    c = plan.colors
    annotations = switch_annotations(
        live_deployment=c.blue, live_color=c.blue_color, previous_deployment=c.green, previous_color=c.green_color,
        previous_selector=c.green_selector, release_id=plan.release_id, switched_at=now_utc(), kind="rollback")
    ready = int((blue.get("status") or {}).get("readyReplicas") or 0)
    own = watch is None or watch.closed  # the release's informer is gone (or was never given): one of our own
    with release_endpoints(kube, plan) if own else nullcontext(watch) as informer:
        informer.start()  # watching before the PATCH
        moved = move_selector(kube, plan.namespace, c.service, c.green_selector, c.blue_selector, annotations)
        verified = verify_only(kube, plan.namespace, c.service, c.blue, ready, plan.spec.deadlines.endpoints_s,
                               informer)
    return f"{moved}; {verified}"


@task(name="switch-traffic", cache_policy=NO_CACHE)
def switch_traffic(kube: Kube, plan: BlueGreenPreflight, approval_note: str = "", watch: EndpointWatch | None = None) -> str:
    """Patch the selector blue -> green (test ops guard on blue), release record in the same patch. `watch`
    (green's endpoints, for verify_endpoints) is started first, so it is watching when the PATCH goes out. Its undo:
    `switch_back`."""
    c = plan.colors
    annotations = switch_annotations(
        live_deployment=c.green, live_color=c.green_color, previous_deployment=c.blue, previous_color=c.blue_color,
        previous_selector=c.blue_selector, release_id=plan.release_id, switched_at=now_utc())
    annotations[PREVIOUS_REPLICAS] = str(plan.blue_replicas)
    if approval_note:
        annotations[APPROVAL] = approval_note
    if plan.route is not None:  # `greenlight rollback` goes back through the same route
        annotations[SWITCH_ROUTE] = route_annotation(plan.route)
    if watch is not None:
        watch.start()
    msg = move_selector(kube, plan.namespace, c.service, c.blue_selector, c.green_selector, annotations)
    say(msg)
    return msg


@task(name="verify-endpoints", cache_policy=NO_CACHE)
def verify_endpoints(kube: Kube, plan: BlueGreenPreflight, watch: EndpointWatch | None = None) -> str:
    """EndpointSlices hold only green's pods, all `replicas` of them ready, within the endpoints deadline."""
    return verify_only(kube, plan.namespace, plan.colors.service, plan.colors.green, plan.green_replicas,
                       plan.spec.deadlines.endpoints_s, watch)


def release_endpoints(kube: Kube, plan: BlueGreenPreflight) -> EndpointWatch:
    """The release's informer on its Service's endpoints, blue's and green's pods in one scope (a context
    manager; switch_traffic starts it): the verification and the switch back are watching before their PATCH."""
    c = plan.colors
    return EndpointWatch(kube, plan.namespace, c.service, covering_selector(c.blue_selector, c.green_selector))


def approval_annotation(approved_by: str, reason: str) -> str:
    return json.dumps({"by": approved_by, "reason": reason, "at": now_utc()}, sort_keys=True)
