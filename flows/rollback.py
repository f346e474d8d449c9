"""Roll a Service back to the Deployment it served before the last greenlight switch, from the release record
on the Service itself (so it works after a lost Prefect database, or after the releasing process died):

  1. read-record        which Deployment was live before, with which selector (tasks/decisions/rollback.py);
                        already back on it (a repeated rollback): say so, change nothing
  2. restore            recreate it from the recorded manifest if it was deleted; scale it up if it is at 0
  3. wait-ready         same fail-fast wait as a release
  4. switch             guarded selector patch, record updated in the same patch
  5. verify-endpoints   EndpointSlices hold only its ready pods
  6. autoscaler         its HorizontalPodAutoscaler re-created exactly as recorded, if it had one
  7. cleanup            the rolled-back-from Deployment after the delay (scale to 0 by default)

Steps 2-7 are a list the release engine executes (tasks/bluegreen/rollback_strategy.py), the Lease checked before
each change; `--dry-run` describes the same list. A failure undoes nothing: it is recorded "failed" and raised.
Inside a rollback window (tasks/decisions/window.py) the target is warm: restore and wait-ready find it as it is,
and the switch is verified on an endpoint watch synced before it. Started by an alert (the alert-rollback trigger),
it rolls back only an allow-listed Service inside its window (tasks/bluegreen/alert.py); outside, nothing changes.
A rollback is never checked against the release policy (windows and freezes).
"""

from __future__ import annotations

import time

from prefect import flow

from prefect_greenlight.tasks.bluegreen.alert import alert_window
from prefect_greenlight.tasks.bluegreen.dry_run import rollback_dry_run_result, rollback_result
from prefect_greenlight.tasks.bluegreen.preflight import new_release_id
from prefect_greenlight.tasks.bluegreen.restore import images_of, read_rollback, rollback_endpoints
from prefect_greenlight.tasks.bluegreen.rollback_strategy import RollbackRelease, rollback_steps
from prefect_greenlight.tasks.decisions.describe_rollback import replicas_of
from prefect_greenlight.tasks.decisions.rollback import RollbackAction
from prefect_greenlight.tasks.engine.report_only import execute_reporting
from prefect_greenlight.tasks.kube.client import Kube, connect, read
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.prefect_adapter.lease import ServiceLock
from prefect_greenlight.tasks.record.journal import Journal
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import Cleanup, Deadlines


def run_rollback(kube: Kube, namespace: str, service: str, cleanup: Cleanup, deadlines: Deadlines,
                 sleep=time.sleep, to: str | None = None, dry_run: bool = False, asked_by: str = "") -> dict:
    release_id = "rollback-" + new_release_id()
    journal = Journal(kube, namespace, service, release_id, "rollback", planned=1 + len(rollback_steps()),
                      asked_by=asked_by)
    with journal.timeline.step("read-record") as s:                                               # 1
        rb = read_rollback(kube, namespace, service, to, release_id, cleanup, deadlines, sleep)
        s["detail"] = rb.choice.message
    steps = rollback_steps(route=rb.route is not None)  # through the route the last release switched
    journal.planned = 1 + len(steps)
    target, live = rb.choice.target, rb.choice.from_deployment
    if rb.choice.action is RollbackAction.ALREADY_SERVES:  # a repeated rollback: no Lease, no record, no history
        say(rb.choice.message)
        return rollback_result(rb, journal.timeline, "already-serves", target, message=rb.choice.message)
    if dry_run:
        return rollback_dry_run_result(kube, rb, journal.timeline)
    with (ServiceLock(kube, namespace, service, release_id, taker="rollback") as lock,
          rollback_endpoints(kube, rb) as endpoints):  # watching before the switch: verified with no new list
        journal.started(endpoint_counts(kube, namespace, service), rolled_back_from=live, to=target)
        endpoints.start()  # synced before the steps: the switch is a read, the PATCH and the wait on this watch
        if replicas_of(read(kube, "Deployment", namespace, target)):  # warm (a rollback window): a switch only
            journal.hold_progress()  # no Prefect API call of ours competes until verified (the steps take ms)
        release = RollbackRelease(kube, journal.timeline, lock=lock, journal=journal, rb=rb,
                                  handed_on={"endpoints": endpoints})
        execute_reporting(steps, release, "rollback")                                             # 2-7
    journal.finish("rolled-back", from_deployment=live, to_deployment=target,
                   images=images_of(kube, namespace, target), after=endpoint_counts(kube, namespace, service))
    say(f"rolled back: Service {service} serves {target}")
    return rollback_result(rb, journal.timeline, "rolled-back", target, previous_deployment=live,
                   patch_to_verified_s=release.handed_on.get("patch_to_verified_s"))


@flow(name="blue-green-rollback", log_prints=True)
def rollback_release(namespace: str, service: str, cleanup: Cleanup = Cleanup(), deadlines: Deadlines = Deadlines(),
                     kubeconfig: str | None = None, context: str | None = None, to: str | None = None,
                     dry_run: bool = False, cluster_config: str | None = None, alert: str | None = None,
                     allow_list_variable: str | None = None, allowed_services: str | None = None) -> dict:
    """Switch `service` back to the Deployment it served before greenlight's last switch (or to `to`); a no-op
    when that Deployment already serves. `dry_run`: only the plan, as a markdown artifact and in the result;
    nothing changes.

    Args:
        cluster_config: Name of a Prefect KubernetesClusterConfig block (prefect-kubernetes) holding the cluster's
            kubeconfig, instead of `kubeconfig`; `context` picks another of its contexts.
        alert: Set by the greenlight-alert-rollback trigger: the alert that asked (recorded in the history). Then
            the Service must be in the allow-list (`allow_list_variable`, or `allowed_services`) and inside its
            rollback window; outside it nothing changes and a refused event says why.
    """
    kube = connect(kubeconfig, context, cluster_config)
    if alert:
        verdict = alert_window(kube, namespace, service, alert, allowed_services, allow_list_variable)
        if not verdict.open:
            return {"outcome": "not-in-window", "service": service, "namespace": namespace,
                    "window": verdict.state.value, "message": verdict.reason, "steps": []}
    return run_rollback(kube, namespace, service, cleanup, deadlines, to=to, dry_run=dry_run,
                        asked_by=f"alert {alert}" if alert else "")
