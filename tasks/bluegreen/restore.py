"""The reads and changes of `greenlight rollback` (flows/rollback.py; the list of steps is
tasks/bluegreen/rollback_strategy.py): where it goes, from the release record on the Service
(tasks/decisions/rollback.py), then bring that Deployment back, switch to it, verify, its autoscaler, and take the
rolled-back-from Deployment out of service.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect_greenlight.tasks.bluegreen.autoscaler import retire_autoscaler
from prefect_greenlight.tasks.bluegreen.cleanup import record_manifest
from prefect_greenlight.tasks.bluegreen.deploy import take_out_of_service
from prefect_greenlight.tasks.bluegreen.gateway import rollback_route
from prefect_greenlight.tasks.bluegreen.switch import PREVIOUS_REPLICAS, move_selector, now_utc, verify_only
from prefect_greenlight.tasks.decisions.annotations import ReleaseRecord, read_record
from prefect_greenlight.tasks.decisions.autoscaling import target_of
from prefect_greenlight.tasks.decisions.colors import live_deployments, pod_labels, selector_matches
from prefect_greenlight.tasks.decisions.describe_rollback import chosen_record, replicas_of, rollback_annotations
from prefect_greenlight.tasks.decisions.endpoints import covering_selector
from prefect_greenlight.tasks.decisions.gateway_switch import RouteSwitch
from prefect_greenlight.tasks.decisions.rollback import RollbackChoice, choose_rollback
from prefect_greenlight.tasks.errors import BadInput, PermanentError
from prefect_greenlight.tasks.kube.autoscaling import apply_hpa, hpa_of, release_hold
from prefect_greenlight.tasks.kube.client import Kube, apply_deployment, list_objects, read, scale
from prefect_greenlight.tasks.kube.waiting import EndpointWatch
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import Cleanup, CleanupMode, Deadlines


@dataclass(frozen=True)
class Rollback:
    """What the first step (read-record) found, which every later step acts on."""

    namespace: str
    service: str
    svc: dict  # the Service as read
    choice: RollbackChoice
    release_id: str
    cleanup: Cleanup = field(default_factory=Cleanup)
    deadlines: Deadlines = field(default_factory=Deadlines)
    sleep: Callable[[float], None] = time.sleep
    route: RouteSwitch | None = None  # the HTTPRoute the last release switched through (traffic: gateway)

    @property
    def record(self) -> ReleaseRecord:
        return read_record(self.svc)

    @property
    def chosen(self) -> ReleaseRecord:
        """The record as this rollback's choice reads it (`--to` may go elsewhere than the recorded previous)."""
        return chosen_record(self.record, self.choice)

    @property
    def current_selector(self) -> dict:
        return self.svc["spec"].get("selector") or {}

    @property
    def replicas_wanted(self) -> int:
        """greenlight.io/previous-replicas: how many the target had when it was taken out of service (0: unknown)."""
        return int((self.svc["metadata"].get("annotations") or {}).get(PREVIOUS_REPLICAS) or 0)


def read_rollback(kube: Kube, namespace: str, service: str, to: str | None, release_id: str, cleanup: Cleanup,
                  deadlines: Deadlines, sleep: Callable[[float], None] = time.sleep) -> Rollback:
    """Step 1: the Service, and where the rollback goes (tasks/decisions/rollback.py)."""
    svc = read(kube, "Service", namespace, service)
    if svc is None:
        raise BadInput(f"Service {service!r} not found in namespace {namespace!r}")
    current_selector = svc["spec"].get("selector") or {}
    serving = live_deployments(current_selector, list_objects(kube, "Deployment", namespace))
    to_dep = read(kube, "Deployment", namespace, to) if to else None
    choice = choose_rollback(service, read_record(svc), current_selector, serving, to,
                             pod_labels(to_dep) if to_dep else None)
    route = rollback_route(kube, svc, choice.target_selector) if choice.target_selector else None
    return Rollback(namespace, service, svc, choice, release_id, cleanup, deadlines, sleep, route)


def restore_target(kube: Kube, rb: Rollback) -> str:
    """Bring the target back: recreate it from the recorded manifest, or scale it up from 0."""
    target, live, record = rb.choice.target, rb.choice.from_deployment, rb.record
    dep = read(kube, "Deployment", rb.namespace, target)
    if dep is None:
        if not (rb.choice.use_recorded_manifest and record.previous_manifest):
            raise PermanentError(f"Deployment {target} was deleted and no manifest was recorded")
        apply_deployment(kube, rb.namespace, record.previous_manifest)
        return f"recreated {target} from the recorded manifest"
    if int(dep["spec"].get("replicas", 0)) == 0:
        live_dep = read(kube, "Deployment", rb.namespace, live) or {}
        count = rb.replicas_wanted or int(live_dep.get("spec", {}).get("replicas", 1))
        scale(kube, rb.namespace, target, count)
        return f"scaled {target} to {count}"
    return f"{target} still has {dep['spec']['replicas']} replicas"


def rollback_endpoints(kube: Kube, rb: Rollback) -> EndpointWatch:
    """The rollback's informer on the Service's endpoints (the live and the target Deployment's pods), started
    before the selector PATCH, so the verification lists nothing after it: inside a rollback window the whole
    rollback is then the PATCH and the wait for the EndpointSlices (BENCHMARKS.md P2)."""
    return EndpointWatch(kube, rb.namespace, rb.service,
                         covering_selector(rb.current_selector, rb.choice.target_selector))


def switch_to_target(kube: Kube, rb: Rollback, watch: EndpointWatch | None = None,
                     handed: dict | None = None) -> str:
    """The guarded selector patch, the record updated in the same patch; only if the target's pods match the
    selector it gets. `watch` is started first; `handed` (the release's handed_on) gets the target's replica count
    and when the patch was sent, for the verification."""
    c = rb.choice
    if watch is not None:
        watch.start()
    dep = read(kube, "Deployment", rb.namespace, c.target)
    if not selector_matches(c.target_selector, pod_labels(dep)):
        raise PermanentError(f"selector {c.target_selector} does not select {c.target}'s pods")
    live_replicas = replicas_of(read(kube, "Deployment", rb.namespace, c.from_deployment))
    annotations = rollback_annotations(rb.chosen, rb.current_selector, rb.release_id, now_utc(), live_replicas)
    svc = read(kube, "Service", rb.namespace, rb.service)  # the guarded patch is built from it (test ops)
    if handed is not None:
        handed["target_replicas"], handed["patch_at"] = int(dep["spec"]["replicas"]), time.monotonic()
    return move_selector(kube, rb.namespace, rb.service, rb.current_selector, c.target_selector, annotations, svc)


def verify_target(kube: Kube, rb: Rollback, watch: EndpointWatch | None = None, handed: dict | None = None) -> str:
    """EndpointSlices hold only the target's ready pods, as many as it has replicas (known from the switch when
    `handed` has them). Records in `handed` how long after the selector patch was sent this was verified."""
    target, handed = rb.choice.target, handed if handed is not None else {}
    desired = handed.get("target_replicas")
    if desired is None:
        dep = read(kube, "Deployment", rb.namespace, target)
        if dep is None:
            raise PermanentError(f"Deployment {target} disappeared after the switch")
        desired = int(dep["spec"]["replicas"])
    msg = verify_only(kube, rb.namespace, rb.service, target, desired, rb.deadlines.endpoints_s, watch)
    if "patch_at" in handed:
        handed["patch_to_verified_s"] = round(time.monotonic() - handed["patch_at"], 4)
        msg = f"{msg} ({handed['patch_to_verified_s'] * 1000:.0f} ms after the selector PATCH was sent)"
    return msg


def restore_autoscaler(kube: Kube, rb: Rollback) -> str:
    """The HPA recorded when the target was taken out of service, re-created exactly (if none scales it now)."""
    recorded, target = rb.record.previous_hpa, rb.choice.target
    if hpa_of(kube, rb.namespace, target) is not None:
        held = release_hold(kube, rb.namespace, target)  # held while it was kept warm (a rollback window)
        return f"{target} already has a HorizontalPodAutoscaler" + (f"; {held}" if held else "")
    if not recorded or target_of(recorded) != target:
        return f"no HorizontalPodAutoscaler recorded for {target}"
    apply_hpa(kube, rb.namespace, recorded)
    return f"re-created HorizontalPodAutoscaler {recorded['metadata']['name']} for {target} as recorded"


def retire_rolled_back(kube: Kube, rb: Rollback) -> str:
    """The rolled-back-from Deployment after the scale-down delay: kept, scaled to 0 or deleted (its manifest
    and its HPA recorded on the Service first)."""
    live, cleanup = rb.choice.from_deployment, rb.cleanup
    old = read(kube, "Deployment", rb.namespace, live)
    if cleanup.mode is CleanupMode.KEEP or old is None:
        return f"kept {live}"
    if cleanup.delay_s:
        say(f"waiting {cleanup.delay_s:.0f} s before taking {live} out of service")
        rb.sleep(cleanup.delay_s)
    if cleanup.mode is CleanupMode.DELETE:
        record_manifest(kube, rb.namespace, rb.service, rb.choice.target_selector, old)
    retired = retire_autoscaler(kube, rb.namespace, rb.service, live)
    msg = take_out_of_service(kube, rb.namespace, rb.service, live, cleanup.mode.value, 0)
    return f"{retired}; {msg}" if retired else msg


def images_of(kube: Kube, namespace: str, name: str) -> list[str]:
    dep = read(kube, "Deployment", namespace, name) or {}
    return [c.get("image", "") for c in dep.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])]
