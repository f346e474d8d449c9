"""Roll a Service back to the Deployment it served before the last greenlight switch, from the release record
on the Service itself (so it works after a lost Prefect database, or after the releasing process died):

  1. read the record     which Deployment was live before, with which selector (tasks/decisions/rollback.py);
                         already back on it (a repeated rollback): say so, change nothing
  2. bring it back       recreate it from the recorded manifest if it was deleted; scale it up if it is at 0
  3. wait ready          same fail-fast wait as a release
  4. switch back         guarded selector patch, record updated in the same patch
  5. verify              EndpointSlices hold only its ready pods
     (autoscaler)        its HorizontalPodAutoscaler re-created exactly as recorded, if it had one
  6. clean up            the rolled-back-from Deployment after the delay (scale to 0 by default)
"""

from __future__ import annotations

import dataclasses
import time

from prefect import flow

from prefect_greenlight.tasks.bluegreen.autoscaler import retire_autoscaler
from prefect_greenlight.tasks.bluegreen.cleanup import record_manifest
from prefect_greenlight.tasks.bluegreen.deploy import take_out_of_service
from prefect_greenlight.tasks.bluegreen.plan import plan_rollback
from prefect_greenlight.tasks.bluegreen.preflight import new_release_id
from prefect_greenlight.tasks.bluegreen.switch import PREVIOUS_REPLICAS, move_selector, now_utc, verify_only
from prefect_greenlight.tasks.decisions.autoscaling import target_of
from prefect_greenlight.tasks.decisions.colors import live_deployments, pod_labels, selector_matches
from prefect_greenlight.tasks.decisions.rollback import RollbackAction, RollbackChoice, SwitchKind, choose_rollback
from prefect_greenlight.tasks.errors import BadInput, PermanentError
from prefect_greenlight.tasks.kube.autoscaling import apply_hpa, hpa_of
from prefect_greenlight.tasks.kube.client import Kube, apply_deployment, connect, list_objects, read, scale
from prefect_greenlight.tasks.kube.lease import ServiceLock
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.kube.waiting import require_ready
from prefect_greenlight.tasks.record.annotations import ReleaseRecord, read_record, switch_annotations
from prefect_greenlight.tasks.record.journal import Journal
from prefect_greenlight.tasks.record.plan_render import plan_text, publish_plan
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import Cleanup, CleanupMode, Deadlines


def _images(kube: Kube, namespace: str, name: str) -> list[str]:
    dep = read(kube, "Deployment", namespace, name) or {}
    return [c.get("image", "") for c in dep.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])]


def _restore(kube: Kube, namespace: str, record: ReleaseRecord, choice: RollbackChoice, replicas_wanted: int) -> str:
    """Bring the target back: recreate it from the recorded manifest, or scale it up from 0."""
    target, live = choice.target, choice.from_deployment
    dep = read(kube, "Deployment", namespace, target)
    if dep is None:
        if not (choice.use_recorded_manifest and record.previous_manifest):
            raise PermanentError(f"Deployment {target} was deleted and no manifest was recorded")
        apply_deployment(kube, namespace, record.previous_manifest)
        return f"recreated {target} from the recorded manifest"
    if int(dep["spec"].get("replicas", 0)) == 0:
        live_dep = read(kube, "Deployment", namespace, live) or {}
        count = replicas_wanted or int(live_dep.get("spec", {}).get("replicas", 1))
        scale(kube, namespace, target, count)
        return f"scaled {target} to {count}"
    return f"{target} still has {dep['spec']['replicas']} replicas"


def _switch(kube: Kube, namespace: str, service: str, choice: RollbackChoice, current_selector: dict,
            release_id: str) -> str:
    target, live = choice.target, choice.from_deployment
    annotations = switch_annotations(
        live_deployment=target, live_color=choice.target_color, previous_deployment=live,
        previous_color=choice.from_color, previous_selector=current_selector, release_id=release_id,
        switched_at=now_utc(), kind=SwitchKind.ROLLBACK.value)
    annotations[PREVIOUS_REPLICAS] = str((read(kube, "Deployment", namespace, live) or {}).get(
        "spec", {}).get("replicas", 0))
    return move_selector(kube, namespace, service, current_selector, choice.target_selector, annotations)


def _cleanup(kube: Kube, namespace: str, service: str, choice: RollbackChoice, cleanup: Cleanup, sleep) -> str:
    live = choice.from_deployment
    old = read(kube, "Deployment", namespace, live)
    if cleanup.mode is CleanupMode.KEEP or old is None:
        return f"kept {live}"
    if cleanup.delay_s:
        say(f"waiting {cleanup.delay_s:.0f} s before taking {live} out of service")
        sleep(cleanup.delay_s)
    if cleanup.mode is CleanupMode.DELETE:
        record_manifest(kube, namespace, service, choice.target_selector, old)
    retired = retire_autoscaler(kube, namespace, service, live)
    msg = take_out_of_service(kube, namespace, service, live, cleanup.mode.value, 0)
    return f"{retired}; {msg}" if retired else msg


def _restore_autoscaler(kube: Kube, namespace: str, record: ReleaseRecord, target: str) -> str:
    """The HPA recorded when `target` was taken out of service, re-created exactly (if none scales it now)."""
    recorded = record.previous_hpa
    if hpa_of(kube, namespace, target) is not None:
        return f"{target} already has a HorizontalPodAutoscaler"
    if not recorded or target_of(recorded) != target:
        return f"no HorizontalPodAutoscaler recorded for {target}"
    apply_hpa(kube, namespace, recorded)
    return f"re-created HorizontalPodAutoscaler {recorded['metadata']['name']} for {target} as recorded"


def _choose(kube: Kube, namespace: str, service: str, to: str | None) -> tuple[dict, RollbackChoice]:
    """Step 1: the Service, and where the rollback goes (tasks/decisions/rollback.py)."""
    svc = read(kube, "Service", namespace, service)
    if svc is None:
        raise BadInput(f"Service {service!r} not found in namespace {namespace!r}")
    current_selector = svc["spec"].get("selector") or {}
    serving = live_deployments(current_selector, list_objects(kube, "Deployment", namespace))
    to_dep = read(kube, "Deployment", namespace, to) if to else None
    choice = choose_rollback(service, read_record(svc), current_selector, serving, to,
                             pod_labels(to_dep) if to_dep else None)
    return svc, choice


def _dry_run(kube: Kube, namespace: str, svc: dict, choice: RollbackChoice, release_id: str, replicas_wanted: int,
             cleanup: Cleanup, deadlines: Deadlines, timeline) -> dict:
    """The plan instead of the rollback: nothing taken, nothing changed. The record is read as the choice goes
    (with `--to`, the target is not the recorded previous Deployment)."""
    recorded = read_record(svc)
    record = dataclasses.replace(
        recorded, previous_deployment=choice.target, previous_selector=choice.target_selector,
        previous_color=choice.target_color, live_deployment=choice.from_deployment, live_color=choice.from_color,
        previous_manifest=recorded.previous_manifest if choice.use_recorded_manifest else None)
    plan = plan_rollback(kube, namespace, svc, release_id, replicas_wanted, cleanup, deadlines, record)
    publish_plan(plan, release_id)
    return {"outcome": "dry-run", "service": plan.service, "namespace": namespace, "release_id": release_id,
            "live_deployment": record.live_deployment, "previous_deployment": record.previous_deployment,
            "steps": timeline.rows(), "plan": plan.as_dict(), "plan_text": plan_text(plan)}


def run_rollback(kube: Kube, namespace: str, service: str, cleanup: Cleanup, deadlines: Deadlines,
                 sleep=time.sleep, to: str | None = None, dry_run: bool = False) -> dict:
    release_id = "rollback-" + new_release_id()
    journal = Journal(kube, namespace, service, release_id, "rollback", planned=7)
    timeline = journal.timeline
    with timeline.step("read-record") as s:                                                       # 1
        svc, choice = _choose(kube, namespace, service, to)
        s["detail"] = choice.message
    if choice.action is RollbackAction.ALREADY_SERVES:  # a repeated rollback: no Lease, no record, no history
        say(choice.message)
        return {"outcome": "already-serves", "service": service, "namespace": namespace,
                "live_deployment": choice.target, "release_id": release_id, "message": choice.message,
                "steps": timeline.rows()}
    record, current_selector = read_record(svc), svc["spec"].get("selector") or {}
    target, live = choice.target, choice.from_deployment
    replicas_wanted = int((svc["metadata"].get("annotations") or {}).get(PREVIOUS_REPLICAS) or 0)
    if dry_run:
        return _dry_run(kube, namespace, svc, choice, release_id, replicas_wanted, cleanup, deadlines, timeline)
    with ServiceLock(kube, namespace, service, release_id, taker="rollback"):
        journal.started(endpoint_counts(kube, namespace, service), rolled_back_from=live, to=target)
        try:
            with timeline.step("restore") as s:                                                   # 2
                s["detail"] = _restore(kube, namespace, record, choice, replicas_wanted)
                say(s["detail"])
            with timeline.step("wait-ready") as s:                                                # 3
                s["detail"] = require_ready(kube, namespace, target, deadlines, progress=say)
            dep = read(kube, "Deployment", namespace, target)
            if not selector_matches(choice.target_selector, pod_labels(dep)):
                raise PermanentError(f"selector {choice.target_selector} does not select {target}'s pods")
            with timeline.step("switch") as s:                                                    # 4
                s["detail"] = _switch(kube, namespace, service, choice, current_selector, release_id)
                say(s["detail"])
            with timeline.step("verify-endpoints") as s:                                          # 5
                s["detail"] = verify_only(kube, namespace, service, target, int(dep["spec"]["replicas"]),
                                          deadlines.endpoints_s)
            with timeline.step("autoscaler") as s:
                s["detail"] = _restore_autoscaler(kube, namespace, record, target)
            with timeline.step("cleanup") as s:                                                   # 6
                s["detail"] = _cleanup(kube, namespace, service, choice, cleanup, sleep)
                say(s["detail"])
        except Exception as exc:
            journal.finish("failed", from_deployment=live, to_deployment=target, images=[],
                           after=endpoint_counts(kube, namespace, service), reason=str(exc))
            raise
    journal.finish("rolled-back", from_deployment=live, to_deployment=target,
                   images=_images(kube, namespace, target), after=endpoint_counts(kube, namespace, service))
    say(f"rolled back: Service {service} serves {target}")
    return {"outcome": "rolled-back", "service": service, "namespace": namespace, "live_deployment": target,
            "previous_deployment": live, "release_id": release_id, "steps": timeline.rows()}


@flow(name="blue-green-rollback", log_prints=True)
def rollback_release(namespace: str, service: str, cleanup: Cleanup = Cleanup(), deadlines: Deadlines = Deadlines(),
                     kubeconfig: str | None = None, context: str | None = None, to: str | None = None,
                     dry_run: bool = False, cluster_config: str | None = None) -> dict:
    """Switch `service` back to the Deployment it served before greenlight's last switch (or to `to`); a no-op
    when that Deployment already serves. `dry_run`: only the plan, as a markdown artifact and in the result;
    nothing changes.

    Args:
        cluster_config: Name of a Prefect KubernetesClusterConfig block (prefect-kubernetes) holding the cluster's
            kubeconfig, instead of `kubeconfig`; `context` picks another of its contexts.
    """
    return run_rollback(connect(kubeconfig, context, cluster_config), namespace, service, cleanup, deadlines, to=to,
                        dry_run=dry_run)
