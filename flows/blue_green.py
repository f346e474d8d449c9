"""Blue-green release of a Service, step by step as in the tutorial:

  1. preflight      read the Service and Deployments; refuse bad input before touching anything; a re-run whose
                    green already serves with the same pod template: resume after the switch, or (finished)
                    "already live", nothing changed (tasks/decisions/repeat.py)
     (pre-release)  hooks before anything is applied
  2. apply green    server-side apply beside blue
  3. wait ready     rollout-status semantics; fail fast on pods that will never be ready
     (preview)      optionally point a preview Service at green
  4. smoke test     every green pod through port-forward
     (pre-switch)   hooks: a Job (a migration in green's image) or a webhook gate; a failure rolls back unswitched
  5. approval       optional pause with a form in the Prefect UI
     (autoscaler)   when an HPA scales blue, green gets an equivalent one (held at blue's count until cleanup)
  6. switch         guarded selector patch blue -> green, release record in the same patch
  7. verify         EndpointSlices hold only green's ready pods
     (post-switch)  hooks; a failure switches back (verified)
  8. watch          optional post-switch window of repeated checks
  9. clean up       after the scale-down delay: blue scaled to 0, deleted, or kept (its HPA recorded, then removed);
                    a failure here is "released; clean-up failed: …" (exit 1), finished by a re-run

Any failure after the first change unwinds the compensation stack (switch back, verified; green removed), then
runs the on-rollback hooks (a failure of theirs is reported, never stops the rollback), and the run ends Failed
with the original reason and each undo step's outcome. A cancel from Prefect (the UI's Cancel, `prefect flow-run
cancel`) unwinds the same stack and the run ends Cancelled (tasks/record/cancellation.py). Hooks run at most once
per release (tasks/hooks/). One release per Service at a time (a renewed Lease, held across the approval pause).
Progress, events, the report and the Service's history entry go through the Journal (tasks/record/journal.py).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from prefect_greenlight.tasks.bluegreen.plan import plan_blue_green
from prefect_greenlight.tasks.bluegreen.preflight import ReleasePlan, new_release_id, preflight
from prefect_greenlight.tasks.bluegreen.strategy import blue_green_steps
from prefect_greenlight.tasks.bluegreen.switch import release_endpoints
from prefect_greenlight.tasks.decisions.allow import check_allowed, resolve_allow_list, variable_to_read
from prefect_greenlight.tasks.decisions.hooks import spec_fingerprint
from prefect_greenlight.tasks.decisions.repeat import RepeatAction
from prefect_greenlight.tasks.engine.executor import Ending, Release, execute
from prefect_greenlight.tasks.errors import BadInput, CleanupFailed, ReleaseFailed
from prefect_greenlight.tasks.hooks.runner import HookRunner
from prefect_greenlight.tasks.kube.client import Kube, connect
from prefect_greenlight.tasks.kube.lease import ServiceLock
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.prefect_adapter.variables import read_variable
from prefect_greenlight.tasks.record.cancellation import ending_cancelled
from prefect_greenlight.tasks.record.events import ReleaseEvent, emit
from prefect_greenlight.tasks.record.journal import CLEANUP_FAILED, Journal
from prefect_greenlight.tasks.record.plan_render import plan_text, publish_plan
from prefect_greenlight.tasks.record.report import Timeline, say
from prefect_greenlight.tasks.record.starting import release_begun
from prefect_greenlight.tasks.spec import BlueGreenSpec


def _result(release: ReleasePlan, timeline: Timeline, outcome: str, live: str, **extra: Any) -> dict:
    return {"outcome": outcome, "service": release.colors.service, "namespace": release.namespace,
            "release_id": release.release_id, "live_deployment": live, "blue": release.colors.blue,
            "green": release.colors.green, "steps": timeline.rows(), **extra}


def _ending(kube: Kube, plan: ReleasePlan, journal: Journal, hooks: HookRunner) -> Ending:
    """How a failed blue-green release ends: rolled back, recorded; a failed clean-up only reported."""
    c = plan.colors

    def announce(phase: str, reason: str, cancelled: bool, changes: int) -> str:
        return (f"release {'cancelled' if cancelled else 'failed'} during {phase}: {reason}; rolling back "
                f"{changes} change(s)")

    def record(outcome: str, failure: ReleaseFailed, phase: str) -> None:
        hooks.finish(outcome)
        journal.finish(outcome, from_deployment=c.blue, to_deployment=c.green, images=plan.green_images,
                       after=endpoint_counts(kube, plan.namespace, c.service), reason=f"{phase}: {failure.reason}",
                       details="### Rollback\n\n" + str(failure) + "\n\n" + hooks.markdown())

    def cleanup_failed(exc: Exception) -> CleanupFailed:
        """Green serves, verified: released, but the old version was not taken out of service. A re-run (the
        history shows the release unfinished) resumes the clean-up."""
        failure = CleanupFailed(str(exc))
        say(f"{failure}; Service {c.service} serves {c.green}: run the release again to finish the clean-up")
        journal.finish(CLEANUP_FAILED, from_deployment=c.blue, to_deployment=c.green, images=plan.green_images,
                       after=endpoint_counts(kube, plan.namespace, c.service), reason=str(failure),
                       details=f"### Clean-up\n\n{failure}. Run the same release again to finish it.")
        return failure

    return Ending("rollback", announce, record, cleanup_failed, outcome_of_success="rolled-back")


def _dry_run(kube: Kube, release: ReleasePlan, timeline: Timeline) -> dict:
    """The plan instead of the release: printed, a markdown artifact of the run, and the result's `plan`."""
    plan = plan_blue_green(kube, release)
    say(f"dry run: would release {release.colors.green} and switch Service {release.colors.service}; "
        "nothing changed")
    publish_plan(plan, release.release_id)
    return _result(release, timeline, "dry-run", release.colors.blue, plan=plan.as_dict(), plan_text=plan_text(plan),
                   summary=release.summary())


def run_release(kube: Kube, spec: BlueGreenSpec, release_id: str, dry_run: bool = False) -> dict:
    journal = Journal(kube, spec.namespace, spec.service, release_id, "blue-green", planned=1)
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
        return _result(plan, journal.timeline, "already-live", plan.colors.green, message=plan.repeat.message)
    if dry_run:
        return _dry_run(kube, plan, journal.timeline)
    c = plan.colors
    with (ServiceLock(kube, spec.namespace, spec.service, plan.release_id, wait_s=spec.lock_wait_s) as lock,
          release_endpoints(kube, plan) as endpoints):  # one informer for the switch, verification, switch back
        journal.started(endpoint_counts(kube, plan.namespace, c.service), blue=c.blue, green=c.green,
                        images=plan.green_images)
        release = Release(kube, journal.timeline, lock=lock, hooks=hooks, journal=journal,
                          handed_on={"endpoints": endpoints})
        execute(steps, release, _ending(kube, plan, journal, hooks))
        hooks.finish("released")
    journal.finish("released", from_deployment=c.blue, to_deployment=c.green, images=plan.green_images,
                   after=endpoint_counts(kube, plan.namespace, c.service), details=hooks.markdown())
    say(f"released: Service {c.service} serves {c.green}")
    return _result(plan, journal.timeline, "released", c.green, **({"hooks": hooks.rows()} if hooks.runs else {}))


def _refuse_unless_allowed(spec: BlueGreenSpec, allowed_services: str | None,
                           allow_list_variable: str | None) -> None:
    """An event-driven release outside its allow-list (the Prefect Variable `allow_list_variable`, read now, or a
    literal deploy-time `allowed_services`) is refused (exit 2 / run Failed), visibly: a
    `greenlight.release.refused` event about the Service whose payload says how to allow it."""
    name = variable_to_read(allowed_services, allow_list_variable)
    allow = resolve_allow_list(allowed_services, allow_list_variable, read_variable(name) if name else None)
    verdict = check_allowed(spec.namespace, spec.service, allow)
    if verdict.allowed:
        return
    emit(ReleaseEvent.REFUSED, spec.namespace, spec.service, reason=verdict.reason, how=verdict.how,
         command=verdict.command or None, source=allow.source.value, variable=allow.variable,
         allowed=allow.listed, image=spec.image, strategy="blue-green")
    raise BadInput(f"refused: {verdict.reason}. {verdict.how}")


@flow(name="blue-green-release", log_prints=True)
def blue_green_release(spec: BlueGreenSpec, dry_run: bool = False, kubeconfig: str | None = None,
                       context: str | None = None, allowed_services: str | None = None,
                       cluster_config: str | None = None, allow_list_variable: str | None = None) -> dict:
    """Release `spec` blue -> green. Kubernetes credentials: kubeconfig/context, the KubernetesClusterConfig
    block named `cluster_config`, $KUBECONFIG, or in-cluster.
    An event-driven run (the image-pushed trigger) may release only the Services of its allow-list; another
    Service is refused before anything is read (tasks/decisions/allow.py). A run started by hand has none.

    Args:
        cluster_config: Name of a Prefect KubernetesClusterConfig block (prefect-kubernetes) holding the cluster's
            kubeconfig, instead of `kubeconfig`; `context` picks another of its contexts.
        allow_list_variable: Set by the image-pushed trigger: the Prefect Variable (greenlight_allowed_services)
            read when the run starts, `namespace/Service` patterns comma-separated or as a JSON list (wildcards
            allowed); unset or empty, nothing is allowed.
        allowed_services: A list fixed at deploy time instead (comma-separated `namespace/Service` patterns); when
            given, it wins over the Variable.
    """
    release_begun()
    _refuse_unless_allowed(spec, allowed_services, allow_list_variable)
    return ending_cancelled(lambda: run_release(connect(kubeconfig, context, cluster_config), spec,
                                                spec.release_id or new_release_id(), dry_run))
