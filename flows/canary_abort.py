"""`greenlight abort --service S`: end a canary release, stable back to 100 %.

- A canary run holds the Service's Lease and is PAUSED (approval, timed or inconclusive pause): the run is
  rejected through Prefect (resumed with approve=False), so the run itself aborts and ends Failed; this command
  waits until it has (the Lease is released) and reports the recorded state.
- No release holds the Lease (the run crashed, or was killed; also when a "paused" run's process is gone and
  its Lease expires unrenewed after the rejection): abort here, from what the Service's
  `greenlight.io/canary-*` annotations recorded: stable to its recorded total and READY first, then the canary
  to 0, verified by EndpointSlices.
- A run holds the Lease and is not paused: refused (it is scaling right now; try again at its next pause).

  1. read            what the Service records (tasks/canary/abort_strategy.py); nothing to abort: refused
  2. paused run      rejected, and waited for; a run that is not paused: refused
  3. restore-stable  the release engine's list of one step, the Lease checked before it; a failure undoes
                     nothing: it is recorded "failed" and raised
"""

from __future__ import annotations

from prefect import flow

from prefect_greenlight.tasks.canary.abort_strategy import (
    AbortRelease,
    abort_steps,
    paused_holder,
    read_abort,
    reject_paused_run,
)
from prefect_greenlight.tasks.decisions.describe_abort import CanaryAbort
from prefect_greenlight.tasks.engine.report_only import execute_reporting
from prefect_greenlight.tasks.kube.client import Kube, connect
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.prefect_adapter.lease import ServiceLock
from prefect_greenlight.tasks.record.journal import Journal
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import Deadlines


def _aborted(a: CanaryAbort, how: str) -> dict:
    return {"outcome": "aborted", "service": a.service, "namespace": a.namespace, "live_deployment": a.stable,
            "how": how, "steps": []}


def abort_canary_release(kube: Kube, namespace: str, service: str, deadlines: Deadlines, reason: str = "",
                         approver: str = "", wait_s: float = 300) -> dict:
    a = read_abort(kube, namespace, service, deadlines)                                       # 1
    how, run_id = "", paused_holder(kube, a)
    if run_id:                                                                                 # 2
        if reject_paused_run(kube, a, run_id, reason, approver, wait_s):
            return _aborted(a, f"rejected paused run {run_id}")
        how = f"run {run_id} did not answer (its process is gone); "  # so the abort is done here
    a.check_total()
    steps = abort_steps()
    journal = Journal(kube, namespace, service, a.abort_id, "abort", planned=len(steps))
    with ServiceLock(kube, namespace, service, a.abort_id, taker="abort") as lock:
        journal.started(endpoint_counts(kube, namespace, service), stable=a.stable, canary=a.canary)
        release = AbortRelease(kube, journal.timeline, lock=lock, journal=journal, abort=a)
        execute_reporting(steps, release, "abort")                                           # 3
        journal.approval(f"aborted by {approver or 'unknown'}: {reason or 'greenlight abort'}", False)
        journal.finish("aborted", from_deployment=a.canary, to_deployment=a.stable, images=[],
                       after=endpoint_counts(kube, namespace, service), reason=how + (reason or "greenlight abort"))
    detail = journal.timeline.rows()[-1]["detail"]
    say(f"aborted: {detail}")
    return _aborted(a, how + detail)


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
