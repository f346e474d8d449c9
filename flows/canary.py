"""Canary release of a Service, step by step as in the second tutorial:

  1. preflight   read the Service and both Deployments; decide the canary and the replica plan; refuse bad input
     (hooks)     pre-release, then before-first-step
  2. canary      the first step applies the canary beside stable with its replicas and waits until it is ready
  3. the steps   the spec's step list (Argo Rollouts' `steps:`), or 10 %, 30 %, 50 %, 100 % expanded to one:
       (hooks)   between-steps, before every weight but the first (a gate for the next increase)
       a. weight the canary UP to its count, ready; then stable DOWN to its count; the EndpointSlices verified
       b. analyse HTTP probes of canary vs stable, Prometheus queries, in rounds over a window (3 rounds 5 s
                  apart by default): Failed beyond failure_limit aborts, Inconclusive pauses for a human
       c. pause  until approved, or timed; `promote --full` jumps to 100 %, reject aborts
     (hooks)     after-last-step, at 100 %
  4. clean up    the old stable (at 0 now) is deleted, as the tutorial does, or kept at 0

Steps 2-4 are one list of steps (tasks/canary/strategy.py) run by the release engine (tasks/engine/): any failure
after the first change aborts: stable back to its full count and READY first, then the canary to 0, verified by
EndpointSlices; then the on-rollback hooks; the run ends Failed. A cancel from Prefect aborts the same way and the
run ends Cancelled. Progress is recorded on the Service as `greenlight.io/canary-*` annotations (`greenlight
status`), one release per Service at a time (Lease, whose annotation names the flow run so `greenlight abort
--service S` can reject a paused run). The dry run describes the same list.
"""

from __future__ import annotations

from prefect import flow

from prefect_greenlight.tasks.canary.dry_run import dry_run_result
from prefect_greenlight.tasks.canary.preflight import new_release_id, preflight
from prefect_greenlight.tasks.canary.progress import CanaryProgress
from prefect_greenlight.tasks.canary.strategy import canary_ending, canary_steps, start_record
from prefect_greenlight.tasks.decisions.hooks import spec_fingerprint
from prefect_greenlight.tasks.decisions.lease import RUN_ID_ANNOTATION
from prefect_greenlight.tasks.engine.executor import Release, execute
from prefect_greenlight.tasks.hooks.runner import HookRunner
from prefect_greenlight.tasks.kube.client import Kube, connect
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.prefect_adapter.cancellation import ending_cancelled
from prefect_greenlight.tasks.prefect_adapter.lease import ServiceLock
from prefect_greenlight.tasks.prefect_adapter.release_policy import policy_gate
from prefect_greenlight.tasks.prefect_adapter.starting import release_begun
from prefect_greenlight.tasks.record.history import current_run
from prefect_greenlight.tasks.record.journal import Journal
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec.canary import CanarySpec


def run_canary(kube: Kube, spec: CanarySpec, release_id: str, run_id: str = "", dry_run: bool = False,
               override: str = "") -> dict:
    journal = Journal(kube, spec.namespace, spec.service, release_id, "canary", planned=1, override=override)
    with journal.timeline.step("preflight") as s:                                                # 1
        plan = preflight(kube, spec, release_id)
        s["detail"] = f"{plan.stable} -> {plan.canary}: " + ", ".join(x.describe() for x in plan.steps)
    for warning in plan.warnings:
        say(f"warning: {warning}")
    if plan.resume_message:
        say(plan.resume_message)
    steps = canary_steps(plan)                                                                    # 2-4
    journal.planned = 1 + len(steps)
    hooks = HookRunner(kube, spec.hooks, plan.hook_context(), journal.timeline, spec.deadlines,
                       spec_fingerprint("canary", spec))
    progress = CanaryProgress.start(plan, run_id)
    if dry_run:
        return dry_run_result(kube, plan, progress, journal.timeline, hooks.rows())
    with ServiceLock(kube, spec.namespace, spec.service, plan.release_id, wait_s=spec.lock_wait_s,
                     annotations={RUN_ID_ANNOTATION: run_id, "greenlight.io/strategy": "canary"}) as lock:
        journal.started(endpoint_counts(kube, plan.namespace, plan.service), stable=plan.stable,
                        canary=plan.canary, images=plan.canary_images, steps=[x.percent for x in plan.steps])
        release = Release(kube, journal.timeline, lock=lock, hooks=hooks, journal=journal,
                          handed_on={"canary": progress})
        execute(steps, release, canary_ending(kube, plan, journal, hooks, progress), begin=start_record)
        hooks.finish("released")
    journal.finish("released", from_deployment=plan.stable, to_deployment=plan.canary, images=plan.canary_images,
                   after=endpoint_counts(kube, plan.namespace, plan.service),
                   details=f"### Steps\n\n{progress.split_lines()}\n\n{hooks.markdown()}")
    serves = f"{plan.stable} (promoted to the canary's pod template)" if plan.gateway else plan.canary
    say(f"released: Service {plan.service} serves {serves} ({plan.total} pods)")
    return progress.result("released", journal.timeline, hooks.rows())


@flow(name="canary-release", log_prints=True)
def canary_release(spec: CanarySpec, kubeconfig: str | None = None, context: str | None = None,
                   dry_run: bool = False, cluster_config: str | None = None,
                   override_freeze: str | None = None) -> dict:
    """Release `spec` as a canary (`dry_run`: only its plan). Kubernetes credentials: kubeconfig/context, the
    KubernetesClusterConfig block named `cluster_config`, $KUBECONFIG, or in-cluster.

    Args:
        cluster_config: Name of a Prefect KubernetesClusterConfig block (prefect-kubernetes) holding the cluster's
            kubeconfig, instead of `kubeconfig`; `context` picks another of its contexts.
        override_freeze: Let the release through a freeze or outside its release window (the Prefect Variable
            greenlight_release_policy); the reason is recorded in the history and the events.
    """
    release_begun()
    override = policy_gate(spec.namespace, spec.service, "canary", override_freeze, dry_run)
    return ending_cancelled(lambda: run_canary(connect(kubeconfig, context, cluster_config), spec,
                                               spec.release_id or new_release_id(), current_run()[0], dry_run,
                                               override))
