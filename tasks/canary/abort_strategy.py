"""`greenlight abort` (flows/canary_abort.py): what the Service records, a paused run to reject first, and then
the abort as a list of steps (the release engine, tasks/engine/):

  restore-stable    stable to its recorded total and READY first, then the canary to 0, verified by
                    EndpointSlices; the abort recorded on the Service

An abort is itself the undo: a failure is reported, nothing undone, the outcome recorded "failed"
(tasks/engine/report_only.py: execute_reporting).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prefect_greenlight.tasks.canary.pause import paused_state, resume_canary
from prefect_greenlight.tasks.canary.steps import read_progress, record_progress, restore_stable
from prefect_greenlight.tasks.decisions.describe_abort import CanaryAbort, canary_abort, describe_restore_stable
from prefect_greenlight.tasks.decisions.gateway import AT_REST
from prefect_greenlight.tasks.decisions.lease import RUN_ID_ANNOTATION, LockAction, decide
from prefect_greenlight.tasks.decisions.plan import Plan, PlanFacts
from prefect_greenlight.tasks.engine.executor import Release
from prefect_greenlight.tasks.engine.report_only import reporting
from prefect_greenlight.tasks.engine.steps import Step, plan_of
from prefect_greenlight.tasks.errors import BadInput, GreenlightError, LockHeld
from prefect_greenlight.tasks.kube.client import Kube, read
from prefect_greenlight.tasks.kube.gateway import read_route, set_route
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import Deadlines


@dataclass(kw_only=True)
class AbortRelease(Release):
    """The running abort, as its steps see it: the engine's Release and what the Service records."""

    abort: CanaryAbort

    def record_failed(self, reason: str) -> None:
        """A failed abort: recorded "failed", from the canary to the stable, no images."""
        a = self.abort
        self.journal.finish("failed", from_deployment=a.canary, to_deployment=a.stable, images=[],
                            after=endpoint_counts(self.kube, a.namespace, a.service), reason=reason)


def read_abort(kube: Kube, namespace: str, service: str, deadlines: Deadlines) -> CanaryAbort:
    """Step 1: what the Service's `greenlight.io/canary-*` annotations record (BadInput if nothing to abort)."""
    svc = read(kube, "Service", namespace, service)
    if svc is None:
        raise BadInput(f"Service {service!r} not found in namespace {namespace!r}")
    return canary_abort(namespace, service, read_progress(svc), deadlines)


def paused_holder(kube: Kube, a: CanaryAbort) -> str:
    """The flow run id of the paused canary run that holds the Service's Lease; "" when no release holds it.
    LockHeld when a run holds it and is not paused (it is scaling right now)."""
    lease = read(kube, "Lease", a.namespace, f"greenlight-{a.service}")
    held = decide(lease, "", time.time()) if lease else None
    if held is None or held.action is not LockAction.HELD:
        return ""
    run_id = ((lease.get("metadata") or {}).get("annotations") or {}).get(RUN_ID_ANNOTATION, "")
    state = paused_state(run_id) if run_id else ""
    if state != "Paused":
        raise LockHeld(a.service, f"{held.holder} (flow run {run_id or '?'} is {state or 'unknown'}, not paused)",
                       held.expires_in_s)
    return run_id


def _wait_lease_released(kube: Kube, namespace: str, service: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lease = read(kube, "Lease", namespace, f"greenlight-{service}")
        if lease is None or decide(lease, "", time.time()).action is not LockAction.HELD:
            return True
        time.sleep(0.5)
    return False


def reject_paused_run(kube: Kube, a: CanaryAbort, run_id: str, reason: str, approver: str, wait_s: float) -> bool:
    """Reject the paused run through Prefect and wait until it lets the Lease go. True when it aborted itself;
    False when its process was gone (its Lease expired unrenewed): then the abort is done here."""
    resume_canary(run_id, approve=False, reason=reason or "greenlight abort", approver=approver)
    say(f"rejected paused canary run {run_id}; waiting for it to restore {a.stable}")
    if not _wait_lease_released(kube, a.namespace, a.service, wait_s):
        raise GreenlightError(f"canary run {run_id} still holds the lock {wait_s:.0f} s after the abort")
    if read_progress(read(kube, "Service", a.namespace, a.service)).get("state") == "aborted":
        return True
    say(f"canary run {run_id} let its lock expire without aborting; restoring {a.stable} here")
    return False


def _restore_stable(release: AbortRelease) -> str:
    a, kube = release.abort, release.kube
    if a.route is not None:  # `traffic: gateway`: the route on stable, verified, before any canary pod goes
        name, rule, canary_service = a.route
        if read_route(kube, a.namespace, name) is not None:
            say("abort: " + set_route(kube, a.namespace, name, rule, a.service, canary_service, AT_REST,
                                      a.deadlines.endpoints_s, say))
    detail = restore_stable(kube, a.namespace, a.service, a.stable, a.canary, a.total, a.deadlines)
    record_progress(kube, a.namespace, a.service, step=a.aborted_step, percent=0, weight=f"0/{a.total}",
                    state="aborted")
    return detail


def abort_steps() -> list[Step]:
    return [reporting("restore-stable", _restore_stable, describe_restore_stable, changes=True)]


def abort_plan(a: CanaryAbort, found: PlanFacts | None = None) -> Plan:
    """What the abort would do: the very list `abort_steps` gives the run, described."""
    return plan_of("abort", a.namespace, a.service, f"{a.stable} back to {a.total}, {a.canary} to 0",
                   abort_steps(), a, found or PlanFacts())
