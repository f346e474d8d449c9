"""`greenlight abort --service S`: end a canary release, stable back to 100 %.

- A canary run holds the Service's Lease and is PAUSED (approval, timed or inconclusive pause): the run is
  rejected through Prefect (resumed with approve=False), so the run itself aborts and ends Failed; this command
  waits until it has (the Lease is released) and reports the recorded state.
- No release holds the Lease (the run crashed, or was killed; also when a "paused" run's process is gone and
  its Lease expires unrenewed after the rejection): abort here, from what the Service's
  `greenlight.io/canary-*` annotations recorded: stable to its recorded total and READY first, then the canary
  to 0, verified by EndpointSlices.
- A run holds the Lease and is not paused: refused (it is scaling right now; try again at its next pause).
"""

from __future__ import annotations

import time

from prefect import flow

from prefect_greenlight.tasks.canary.pause import paused_state, resume_canary
from prefect_greenlight.tasks.canary.steps import read_progress, record_progress, restore_stable
from prefect_greenlight.tasks.decisions.lease import RUN_ID_ANNOTATION, LockAction, decide
from prefect_greenlight.tasks.errors import BadInput, GreenlightError, LockHeld
from prefect_greenlight.tasks.kube.client import Kube, connect, read
from prefect_greenlight.tasks.kube.lease import ServiceLock
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.record.journal import Journal
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import Deadlines


def _wait_lease_released(kube: Kube, namespace: str, service: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lease = read(kube, "Lease", namespace, f"greenlight-{service}")
        if lease is None or decide(lease, "", time.time()).action is not LockAction.HELD:
            return True
        time.sleep(0.5)
    return False


def abort_canary_release(kube: Kube, namespace: str, service: str, deadlines: Deadlines, reason: str = "",
                         approver: str = "", wait_s: float = 300) -> dict:
    svc = read(kube, "Service", namespace, service)
    if svc is None:
        raise BadInput(f"Service {service!r} not found in namespace {namespace!r}")
    progress = read_progress(svc)
    if not progress.get("stable") or not progress.get("deployment"):
        raise BadInput(f"Service {service!r} records no canary release (no greenlight.io/canary-* annotations)")
    stable, canary, total = progress["stable"], progress["deployment"], int(progress.get("total") or 0)
    if progress.get("state") == "promoted":
        raise BadInput(f"the canary {canary} of Service {service!r} was already promoted; nothing to abort")
    lease = read(kube, "Lease", namespace, f"greenlight-{service}")
    held = decide(lease, "", time.time()) if lease else None
    how = ""
    if held is not None and held.action is LockAction.HELD:
        run_id = ((lease.get("metadata") or {}).get("annotations") or {}).get(RUN_ID_ANNOTATION, "")
        state = paused_state(run_id) if run_id else ""
        if state != "Paused":
            raise LockHeld(service, f"{held.holder} (flow run {run_id or '?'} is {state or 'unknown'}, "
                                    "not paused)", held.expires_in_s)
        resume_canary(run_id, approve=False, reason=reason or "greenlight abort", approver=approver)
        say(f"rejected paused canary run {run_id}; waiting for it to restore {stable}")
        if not _wait_lease_released(kube, namespace, service, wait_s):
            raise GreenlightError(f"canary run {run_id} still holds the lock {wait_s:.0f} s after the abort")
        if read_progress(read(kube, "Service", namespace, service)).get("state") == "aborted":
            return {"outcome": "aborted", "service": service, "namespace": namespace, "live_deployment": stable,
                    "how": f"rejected paused run {run_id}", "steps": []}
        # The run's process was gone (its Lease expired unrenewed): abort here instead.
        how = f"run {run_id} did not answer (its process is gone); "
        say(f"canary run {run_id} let its lock expire without aborting; restoring {stable} here")
    if total < 1:
        raise BadInput(f"Service {service!r} records no usable total ({progress.get('total')!r})")
    abort_id = f"abort-{progress.get('release-id', 'canary')}"[:63]
    journal = Journal(kube, namespace, service, abort_id, "abort", planned=1)
    with ServiceLock(kube, namespace, service, abort_id, taker="abort"):
        journal.started(endpoint_counts(kube, namespace, service), stable=stable, canary=canary)
        try:
            with journal.timeline.step("restore-stable") as s:
                s["detail"] = detail = restore_stable(kube, namespace, service, stable, canary, total, deadlines)
            record_progress(kube, namespace, service, step=f"0/{progress.get('step', '?/?').split('/')[-1]}",
                            percent=0, weight=f"0/{total}", state="aborted")
        except Exception as exc:
            journal.finish("failed", from_deployment=canary, to_deployment=stable, images=[],
                           after=endpoint_counts(kube, namespace, service), reason=str(exc))
            raise
        journal.approval(f"aborted by {approver or 'unknown'}: {reason or 'greenlight abort'}", False)
        journal.finish("aborted", from_deployment=canary, to_deployment=stable, images=[],
                       after=endpoint_counts(kube, namespace, service), reason=how + (reason or "greenlight abort"))
    say(f"aborted: {detail}")
    return {"outcome": "aborted", "service": service, "namespace": namespace, "live_deployment": stable,
            "how": how + detail, "steps": []}


@flow(name="canary-abort", log_prints=True)
def abort_canary(namespace: str, service: str, deadlines: Deadlines | None = None, reason: str = "",
                 approver: str = "", kubeconfig: str | None = None, context: str | None = None,
                 cluster_config: str | None = None) -> dict:
    """End the canary release of `service`: stable back to 100 % (see the module docstring).

    Args:
        cluster_config: Name of a Prefect KubernetesClusterConfig block (prefect-kubernetes) holding the cluster's
            kubeconfig, instead of `kubeconfig`; `context` picks another of its contexts.
    """
    return abort_canary_release(connect(kubeconfig, context, cluster_config), namespace, service,
                                deadlines or Deadlines(), reason, approver)
