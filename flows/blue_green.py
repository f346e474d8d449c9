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

from prefect_greenlight.tasks.bluegreen.autoscaler import carry_autoscaler
from prefect_greenlight.tasks.bluegreen.cleanup import cleanup_blue
from prefect_greenlight.tasks.bluegreen.deploy import apply_green, wait_green_ready
from prefect_greenlight.tasks.bluegreen.plan import plan_blue_green
from prefect_greenlight.tasks.bluegreen.preflight import ReleasePlan, new_release_id, preflight
from prefect_greenlight.tasks.bluegreen.preview import point_preview
from prefect_greenlight.tasks.bluegreen.smoke import post_switch_verify, smoke_test
from prefect_greenlight.tasks.bluegreen.switch import (
    approval_annotation,
    release_endpoints,
    switch_back,
    switch_traffic,
    verify_endpoints,
)
from prefect_greenlight.tasks.decisions.allow import check_allowed, resolve_allow_list, variable_to_read
from prefect_greenlight.tasks.decisions.hooks import spec_fingerprint
from prefect_greenlight.tasks.decisions.repeat import RepeatAction
from prefect_greenlight.tasks.decisions.undo import UndoStack
from prefect_greenlight.tasks.errors import BadInput, CancelRequested, CleanupFailed, Rejected, ReleaseFailed
from prefect_greenlight.tasks.hooks.runner import HookRunner
from prefect_greenlight.tasks.kube.client import Kube, connect
from prefect_greenlight.tasks.kube.lease import ServiceLock
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.kube.waiting import EndpointWatch
from prefect_greenlight.tasks.prefect_adapter.variables import read_variable
from prefect_greenlight.tasks.record.approval import ApprovalDecision, request_approval, summary_markdown
from prefect_greenlight.tasks.record.cancellation import (
    await_cancel,
    cancel_requested,
    ending_cancelled,
    sigterm_deferred,
)
from prefect_greenlight.tasks.record.events import ReleaseEvent, emit
from prefect_greenlight.tasks.record.journal import CLEANUP_FAILED, Journal
from prefect_greenlight.tasks.record.plan_render import plan_text, publish_plan
from prefect_greenlight.tasks.record.report import Timeline, say
from prefect_greenlight.tasks.record.starting import release_begun
from prefect_greenlight.tasks.spec import ApprovalMode, BlueGreenSpec, HookPoint


def _result(release: ReleasePlan, timeline: Timeline, outcome: str, live: str, **extra: Any) -> dict:
    return {"outcome": outcome, "service": release.colors.service, "namespace": release.namespace,
            "release_id": release.release_id, "live_deployment": live, "blue": release.colors.blue,
            "green": release.colors.green, "steps": timeline.rows(), **extra}


def _planned_steps(spec: BlueGreenSpec) -> int:
    """Steps the progress artifact counts to: preflight, apply, wait-ready, (preview), smoke-test, approval,
    switch, verify-endpoints, post-switch, cleanup, and each hook but the on-rollback ones."""
    return 9 + bool(spec.preview_service) + sum(h.at is not HookPoint.ON_ROLLBACK for h in spec.hooks)


def _hook_rows(hooks: HookRunner) -> dict:
    return {"hooks": hooks.rows()} if hooks.runs else {}


def _outcome(exc: Exception, failure: ReleaseFailed) -> str:
    if not failure.rolled_back:
        return "rollback-incomplete"
    if failure.cancelled:
        return "cancelled"
    return "rejected" if isinstance(exc, Rejected) else "rolled-back"


class _Progress:
    """The timeline, the phase a failure is reported in (the step that was running), and the hooks."""

    def __init__(self, timeline: Timeline, hooks: HookRunner):
        self.timeline, self.phase, self.hooks = timeline, "apply", hooks

    def step(self, phase: str, name: str | None = None):
        self.phase = phase
        return self.timeline.step(name or phase)

    def hooks_at(self, point: HookPoint, lock: ServiceLock) -> None:
        if self.hooks.at(point):
            self.phase = f"{point.value} hook"
            self.hooks.run(point, lock)


def _approve(spec: BlueGreenSpec, plan: ReleasePlan, journal: Journal, smoke_rows: list[dict]) -> ApprovalDecision:
    if spec.approval.mode is not ApprovalMode.AUTO:
        journal.event(ReleaseEvent.PAUSED, green=plan.colors.green, approval=spec.approval.mode.value)
    decision = request_approval(spec.approval, summary_markdown(plan.summary(), smoke_rows))
    say(f"promotion {decision.note()}")
    journal.approval(decision.note(), decision.approved)
    return decision


def _up_to_switch(kube: Kube, plan: ReleasePlan, journal: Journal, progress: _Progress, undo: UndoStack,
                  lock: ServiceLock, endpoints: EndpointWatch) -> None:
    """Steps 2-6: apply green, wait until it is ready, (preview), smoke test, approval, switch."""
    spec, c = plan.spec, plan.colors
    progress.hooks_at(HookPoint.PRE_RELEASE, lock)                                                # (hooks)
    with progress.step("apply") as s:                                                             # 2
        s["detail"] = apply_green(kube, plan, undo)
    with progress.step("wait-ready") as s:                                                        # 3
        s["detail"] = wait_green_ready(kube, plan)
    if spec.preview_service:
        with progress.step("preview") as s:
            s["detail"] = point_preview(kube, plan, undo)
    with progress.step("smoke-test") as s:                                                        # 4
        smoke_rows = smoke_test(kube, plan)
        s["detail"] = f"{sum(r['ok'] for r in smoke_rows)} of {len(smoke_rows)} checks passed"
    progress.hooks_at(HookPoint.PRE_SWITCH, lock)                                                 # (hooks)
    with progress.step("approval") as s:                                                          # 5
        decision = _approve(spec, plan, journal, smoke_rows)
        s["detail"] = decision.note()
        if not decision.approved:
            raise Rejected(f"promotion {decision.note()}")
    if plan.blue_hpa:
        with progress.step("autoscaler") as s:                                                    # (HPA)
            s["detail"] = carry_autoscaler(kube, plan, undo)
    lock.check()
    with progress.step("switch") as s:                                                            # 6
        s["detail"] = switch_traffic(kube, plan, undo, approval_annotation(decision.approver, decision.note()),
                                     endpoints)
    journal.event(ReleaseEvent.SWITCHED, blue=c.blue, green=c.green, selector=c.green_selector)


def _resume_after_switch(kube: Kube, plan: ReleasePlan, progress: _Progress, undo: UndoStack,
                         endpoints: EndpointWatch) -> None:
    """A re-run that finds the Service already on green (with its own release record) goes on from step 7."""
    c = plan.colors
    say(f"Service {c.service} already selects {c.green}: resuming after the switch")
    undo.push(f"switch Service {c.service} back to {c.blue}", lambda: switch_back(kube, plan, endpoints))
    with progress.step("apply", "wait-ready"):
        wait_green_ready(kube, plan)


def _switch_and_verify(kube: Kube, plan: ReleasePlan, journal: Journal, progress: _Progress, undo: UndoStack,
                       lock: ServiceLock, endpoints: EndpointWatch) -> None:
    """Steps 2-8 (or, resumed after the switch, 7-8); every change pushes its undo. `endpoints`: the release's
    informer, watching before the switch (and the switch back)."""
    progress.hooks.begin()
    if plan.colors.already_live:
        _resume_after_switch(kube, plan, progress, undo, endpoints)
    else:
        _up_to_switch(kube, plan, journal, progress, undo, lock, endpoints)                       # 2-6
    with progress.step("verify", "verify-endpoints") as s:                                        # 7
        s["detail"] = verify_endpoints(kube, plan, endpoints)
    progress.hooks_at(HookPoint.POST_SWITCH, lock)                                                # (hooks)
    with progress.step("post-switch") as s:                                                       # 8
        s["detail"] = post_switch_verify(kube, plan)


def _roll_back(kube: Kube, plan: ReleasePlan, journal: Journal, progress: _Progress, undo: UndoStack,
               exc: Exception) -> ReleaseFailed:
    """Unwind every change, newest first; record the outcome. Returns the failure to raise."""
    c, phase, cancelled = plan.colors, progress.phase, isinstance(exc, CancelRequested)
    say(f"release {'cancelled' if cancelled else 'failed'} during {phase}: {exc}; rolling back {len(undo)} "
        "change(s)")
    with sigterm_deferred(), progress.timeline.step("rollback"):
        outcomes = undo.unwind()
    failure = ReleaseFailed(reason=str(exc), phase=phase, undo=outcomes, notes=progress.hooks.on_rollback(),
                            cancelled=cancelled)
    progress.hooks.finish(_outcome(exc, failure))
    journal.finish(_outcome(exc, failure), from_deployment=c.blue, to_deployment=c.green,
                   images=plan.green_images, after=endpoint_counts(kube, plan.namespace, c.service),
                   reason=f"{phase}: {exc}", details="### Rollback\n\n" + str(failure) + "\n\n"
                   + progress.hooks.markdown())
    return failure


def _cleanup_failed(kube: Kube, plan: ReleasePlan, journal: Journal, exc: Exception) -> CleanupFailed:
    """After the switch nothing is rolled back: green serves, verified. The history entry, the final event, the
    report and the exit code (1) say so; a re-run (the history shows the release unfinished) resumes the clean-up."""
    c, failure = plan.colors, CleanupFailed(str(exc))
    say(f"{failure}; Service {c.service} serves {c.green}: run the release again to finish the clean-up")
    journal.finish(CLEANUP_FAILED, from_deployment=c.blue, to_deployment=c.green, images=plan.green_images,
                   after=endpoint_counts(kube, plan.namespace, c.service), reason=str(failure),
                   details=f"### Clean-up\n\n{failure}. Run the same release again to finish it.")
    return failure


def _dry_run(kube: Kube, release: ReleasePlan, timeline: Timeline) -> dict:
    """The plan instead of the release: printed, a markdown artifact of the run, and the result's `plan`."""
    plan = plan_blue_green(kube, release)
    say(f"dry run: would release {release.colors.green} and switch Service {release.colors.service}; "
        "nothing changed")
    publish_plan(plan, release.release_id)
    return _result(release, timeline, "dry-run", release.colors.blue, plan=plan.as_dict(), plan_text=plan_text(plan),
                   summary=release.summary())


def run_release(kube: Kube, spec: BlueGreenSpec, release_id: str, dry_run: bool = False) -> dict:
    journal = Journal(kube, spec.namespace, spec.service, release_id, "blue-green", _planned_steps(spec))
    timeline = journal.timeline
    with timeline.step("preflight") as s:                                                        # 1
        plan = preflight(kube, spec, release_id)
        s["detail"] = f"{plan.colors.blue} -> {plan.colors.green}"
    progress = _Progress(timeline, HookRunner(kube, spec.hooks, plan.hook_context(), timeline, spec.deadlines,
                                              spec_fingerprint("blue-green", spec)))
    for warning in plan.warnings:
        say(f"warning: {warning}")
    if plan.repeat is not None and plan.repeat.action is RepeatAction.ALREADY_LIVE:  # no Lease, no record
        say(plan.repeat.message)
        return _result(plan, progress.timeline, "already-live", plan.colors.green, message=plan.repeat.message)
    if dry_run:
        return _dry_run(kube, plan, progress.timeline)
    c = plan.colors
    with (ServiceLock(kube, spec.namespace, spec.service, plan.release_id, wait_s=spec.lock_wait_s) as lock,
          release_endpoints(kube, plan) as endpoints):  # one informer for the switch, verification, switch back
        journal.started(endpoint_counts(kube, plan.namespace, c.service), blue=c.blue, green=c.green,
                        images=plan.green_images)
        undo = UndoStack()
        try:
            try:
                _switch_and_verify(kube, plan, journal, progress, undo, lock, endpoints)         # 2-8
            except BadInput:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure after the first change rolls back
                await_cancel()  # the failure may be a cancel arriving early: then it raises TerminationSignal
                raise _roll_back(kube, plan, journal, progress, undo, exc) from exc
        except BaseException as exc:  # Prefect's TerminationSignal: a cancel rolls back, then ends Cancelled
            cancel = cancel_requested(exc)
            if cancel is not None:
                with sigterm_deferred():
                    say(str(_roll_back(kube, plan, journal, progress, undo, cancel)))
            raise
        try:
            lock.check()
            with progress.timeline.step("cleanup") as s:                                         # 9
                s["detail"] = cleanup_blue(kube, plan)
        except Exception as exc:  # green serves, verified: released, but say the clean-up failed
            raise _cleanup_failed(kube, plan, journal, exc) from exc
        progress.hooks.finish("released")
    journal.finish("released", from_deployment=c.blue, to_deployment=c.green, images=plan.green_images,
                   after=endpoint_counts(kube, plan.namespace, c.service), details=progress.hooks.markdown())
    say(f"released: Service {c.service} serves {c.green}")
    return _result(plan, progress.timeline, "released", c.green, **_hook_rows(progress.hooks))


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
