"""Blue-green release of a Service, as in the tutorial. The steps are a declared list (tasks/bluegreen/
strategy.py) that the one executor runs (tasks/engine/) and the dry run describes:

  1. preflight    read the Service and Deployments; refuse bad input before touching anything (exit 2); a re-run
                  resumes after the switch, or finds the release already live (tasks/decisions/repeat.py)
  2-9. the steps  (pre-release hooks) apply green -> wait ready -> (preview) -> smoke test -> (pre-switch hooks)
                  -> approval -> (autoscaler) -> switch -> verify EndpointSlices -> (post-switch hooks) -> watch
                  -> clean up blue after the scale-down delay

Any failure before the clean-up rolls back, verified (switch back, green removed), then the on-rollback hooks;
a cancel from Prefect does the same and the run ends Cancelled; a failed clean-up is reported (green serves).
One release per Service at a time (a renewed Lease). The Journal records events, history and the report.
"""

from __future__ import annotations

from prefect import flow

from prefect_greenlight.tasks.bluegreen.allowed import refuse_unless_allowed
from prefect_greenlight.tasks.bluegreen.dry_run import dry_run_result, release_result
from prefect_greenlight.tasks.bluegreen.preflight import new_release_id, preflight
from prefect_greenlight.tasks.bluegreen.strategy import blue_green_ending, blue_green_steps
from prefect_greenlight.tasks.bluegreen.switch import release_endpoints
from prefect_greenlight.tasks.decisions.hooks import spec_fingerprint
from prefect_greenlight.tasks.decisions.repeat import RepeatAction
from prefect_greenlight.tasks.engine.executor import Release, execute
from prefect_greenlight.tasks.hooks.runner import HookRunner
from prefect_greenlight.tasks.kube.client import Kube, connect
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.prefect_adapter.cancellation import ending_cancelled
from prefect_greenlight.tasks.prefect_adapter.lease import ServiceLock
from prefect_greenlight.tasks.prefect_adapter.release_policy import policy_gate
from prefect_greenlight.tasks.prefect_adapter.starting import release_begun
from prefect_greenlight.tasks.record.journal import Journal
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import BlueGreenSpec


def run_release(kube: Kube, spec: BlueGreenSpec, release_id: str, dry_run: bool = False,
                connection: dict | None = None, override: str = "") -> dict:
    """`connection`: how the run reached the cluster (kubeconfig, context, cluster_config), handed to the run
    scheduled for a rollback window's end."""
    journal = Journal(kube, spec.namespace, spec.service, release_id, "blue-green", planned=1, override=override)
    with journal.timeline.step("preflight") as s:                                                # 1
        plan = preflight(kube, spec, release_id)
        s["detail"] = f"{plan.colors.blue} -> {plan.colors.green}"
    steps = blue_green_steps(plan)                                                                # 2-9
    journal.planned = 1 + len(steps)
    hooks = HookRunner(kube, spec.hooks, plan.hook_context(), journal.timeline, spec.deadlines,
                       spec_fingerprint("blue-green", spec))
    for warning in plan.warnings:
        say(f"warning: {warning}")
    if plan.repeat is not None and plan.repeat.action is RepeatAction.ALREADY_LIVE:  # no Lease, no record
        say(plan.repeat.message)
        return release_result(plan, journal.timeline, "already-live", plan.colors.green, message=plan.repeat.message)
    if dry_run:
        return dry_run_result(kube, plan, journal.timeline)
    c = plan.colors
    with (ServiceLock(kube, spec.namespace, spec.service, plan.release_id, wait_s=spec.lock_wait_s) as lock,
          release_endpoints(kube, plan) as endpoints):  # one informer for the switch, verification, switch back
        journal.started(endpoint_counts(kube, plan.namespace, c.service), blue=c.blue, green=c.green,
                        images=plan.green_images)
        release = Release(kube, journal.timeline, lock=lock, hooks=hooks, journal=journal,
                          handed_on={"endpoints": endpoints, "connection": connection or {}})
        execute(steps, release, blue_green_ending(kube, plan, journal, hooks))
        hooks.finish("released")
    journal.finish("released", from_deployment=c.blue, to_deployment=c.green, images=plan.green_images,
                   after=endpoint_counts(kube, plan.namespace, c.service), details=hooks.markdown())
    say(f"released: Service {c.service} serves {c.green}")
    return release_result(plan, journal.timeline, "released", c.green, **({"hooks": hooks.rows()} if hooks.runs else {}))


@flow(name="blue-green-release", log_prints=True)
def blue_green_release(spec: BlueGreenSpec, dry_run: bool = False, kubeconfig: str | None = None,
                       context: str | None = None, allowed_services: str | None = None,
                       cluster_config: str | None = None, allow_list_variable: str | None = None,
                       override_freeze: str | None = None) -> dict:
    """Release `spec` blue -> green. Kubernetes credentials: kubeconfig/context, the KubernetesClusterConfig
    block named `cluster_config`, $KUBECONFIG, or in-cluster. A run started by hand has no allow-list.

    Args:
        cluster_config: Name of a Prefect KubernetesClusterConfig block (prefect-kubernetes) holding the cluster's
            kubeconfig, instead of `kubeconfig`; `context` picks another of its contexts.
        allow_list_variable: Set by the image-pushed trigger: the Prefect Variable (greenlight_allowed_services)
            of `namespace/Service` patterns this run may release, read when it starts; unset, nothing is allowed.
        allowed_services: A list fixed at deploy time instead (comma-separated patterns); it wins when given.
        override_freeze: Let the release through a freeze or outside its release window (the Prefect Variable
            greenlight_release_policy); the reason is recorded in the history and the events.
    """
    release_begun()
    refuse_unless_allowed(spec, allowed_services, allow_list_variable)
    override = policy_gate(spec.namespace, spec.service, "blue-green", override_freeze, dry_run)
    connection = {"kubeconfig": kubeconfig, "context": context, "cluster_config": cluster_config}
    return ending_cancelled(lambda: run_release(connect(kubeconfig, context, cluster_config), spec,
                                                spec.release_id or new_release_id(), dry_run, connection,
                                                override))
