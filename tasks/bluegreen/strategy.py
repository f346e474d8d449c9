"""Blue-green as a list of steps (the release engine, tasks/engine/), in the tutorial's order:

  (close-window) (pre-release hooks) apply -> wait-ready -> (preview) -> smoke-test -> (pre-switch hooks) -> approval ->
  (autoscaler) -> switch -> verify-endpoints -> (post-switch hooks) -> post-switch -> cleanup

A re-run that finds the Service already on green (its own release record) runs the tail only: wait-ready (its undo
the switch back), verify-endpoints, post-switch, cleanup. Everything before `cleanup` rolls back on failure; a
failed clean-up is reported and nothing is undone (green serves, verified). With a rollback window the clean-up step
keeps blue warm and schedules its clean-up for the window's end (tasks/bluegreen/window.py); a release inside the
previous release's window closes that window first (`close-window`). The dry run describes this same list.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect_greenlight.tasks.bluegreen.autoscaler import carry_autoscaler, remove_green_autoscaler
from prefect_greenlight.tasks.bluegreen.cleanup import cleanup_blue
from prefect_greenlight.tasks.bluegreen.deploy import apply_green, remove_green, wait_green_ready
from prefect_greenlight.tasks.bluegreen.gateway import route_home, route_to_green
from prefect_greenlight.tasks.bluegreen.preflight import BlueGreenPreflight
from prefect_greenlight.tasks.bluegreen.preview import point_preview, undo_preview
from prefect_greenlight.tasks.bluegreen.smoke import post_switch_verify, smoke_test
from prefect_greenlight.tasks.bluegreen.switch import approval_annotation, switch_back, switch_traffic, verify_endpoints
from prefect_greenlight.tasks.bluegreen.window import close_previous_window, open_window
from prefect_greenlight.tasks.decisions.describe_bluegreen import (
    describe_apply,
    describe_approval,
    describe_autoscaler,
    describe_cleanup,
    describe_close_window,
    describe_post_switch,
    describe_preflight,
    describe_preview,
    describe_resume,
    describe_smoke,
    describe_switch,
    describe_verify,
    describe_wait_ready,
    describe_window,
)
from prefect_greenlight.tasks.decisions.describe_hooks import NO_HOOKS, HookPlan
from prefect_greenlight.tasks.decisions.gateway_switch import (
    describe_route_back,
    describe_route_home,
    describe_route_switch,
)
from prefect_greenlight.tasks.decisions.plan import Plan, PlanFacts
from prefect_greenlight.tasks.engine.executor import Ending, Release
from prefect_greenlight.tasks.engine.steps import OnFailure, Step, plan_of
from prefect_greenlight.tasks.errors import CleanupFailed, Rejected, ReleaseFailed
from prefect_greenlight.tasks.hooks.runner import HookRunner
from prefect_greenlight.tasks.hooks.steps import hook_steps
from prefect_greenlight.tasks.kube.client import Kube, read
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.prefect_adapter.approval import request_approval, summary_markdown
from prefect_greenlight.tasks.record.events import ReleaseEvent
from prefect_greenlight.tasks.record.journal import CLEANUP_FAILED, Journal
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import ApprovalMode, CleanupMode, HookPoint


@dataclass(frozen=True)
class BlueGreenFacts:
    """What the dry run read to describe the steps: the Service (the switch's exact patch), the preview Service
    as it is, and the hooks' plan."""

    service: dict
    preview: dict | None = None
    hooks: HookPlan = NO_HOOKS


def _smoke(r: BlueGreenPreflight) -> Step:
    def run(release: Release) -> str:
        rows = release.handed_on["smoke_rows"] = smoke_test(release.kube, r)
        return f"{sum(row['ok'] for row in rows)} of {len(rows)} checks passed"
    return Step("smoke-test", run, lambda f: describe_smoke(r))


def _approval(r: BlueGreenPreflight) -> Step:
    def run(release: Release) -> str:
        journal, spec = release.journal, r.spec
        if spec.approval.mode is not ApprovalMode.AUTO:
            journal.event(ReleaseEvent.PAUSED, green=r.colors.green, approval=spec.approval.mode.value)
        smoke_rows = release.handed_on.get("smoke_rows", [])
        decision = release.handed_on["approval"] = request_approval(
            spec.approval, summary_markdown(r.summary(), smoke_rows))
        say(f"promotion {decision.note()}")
        journal.approval(decision.note(), decision.approved)
        if not decision.approved:
            raise Rejected(f"promotion {decision.note()}")
        return decision.note()
    return Step("approval", run, lambda f: describe_approval(r))


def _switch(r: BlueGreenPreflight) -> Step:
    c = r.colors

    def run(release: Release) -> str:
        decision = release.handed_on.get("approval")
        note = approval_annotation(decision.approver, decision.note()) if decision else ""
        moved = switch_traffic(release.kube, r, note, release.handed_on.get("endpoints"))
        release.journal.event(ReleaseEvent.SWITCHED, blue=c.blue, green=c.green, selector=c.green_selector)
        return moved
    return Step("switch", run, lambda f: describe_switch(r, f.service), changes=True,
                undo=lambda release: switch_back(release.kube, r, release.handed_on.get("endpoints")),
                undo_name=f"switch Service {c.service} back to {c.blue}")


def _resume(r: BlueGreenPreflight) -> Step:
    c = r.colors

    def run(release: Release) -> str:
        say(f"Service {c.service} already selects {c.green}: resuming after the switch")
        return wait_green_ready(release.kube, r)

    def undo(release: Release) -> str:
        """Through the route too: route on green's Service, selector back, route back on the (blue) Service."""
        if r.route is None:
            return switch_back(release.kube, r, release.handed_on.get("endpoints"))
        first = _to_green(r)(release)
        return f"{first}; {switch_back(release.kube, r, release.handed_on.get('endpoints'))}; {_home(r)(release)}"
    return Step("wait-ready", run, lambda f: describe_resume(r), phase="apply", undo=undo,
                undo_name=f"switch Service {c.service} back to {c.blue}")


def _to_green(r: BlueGreenPreflight):
    def run(release: Release) -> str:
        return route_to_green(release.kube, r.namespace, r.route, r.colors.green, r.green_replicas,
                              r.spec.deadlines.endpoints_s)
    return run


def _home(r: BlueGreenPreflight, live_is_green: bool = False):
    """The route back on the Service, which selects green (route-back) or, after a switch back, blue."""
    def run(release: Release) -> str:
        live = r.colors.green if live_is_green else r.colors.blue
        pods = r.green_replicas if live_is_green else int(
            ((read(release.kube, "Deployment", r.namespace, live) or {}).get("status") or {}).get("readyReplicas")
            or 0)
        return route_home(release.kube, r.namespace, r.route, live, pods, r.spec.deadlines.endpoints_s)
    return run


def _route_switch(r: BlueGreenPreflight) -> list[Step]:
    if r.route is None:
        return []
    return [Step("route-switch", _to_green(r), lambda f: describe_route_switch(r.route, r.colors.green,
                                                                               r.green_replicas), changes=True,
                 undo=_home(r), undo_name=f"HTTPRoute {r.route.route} back to Service {r.route.service}")]


def _route_back(r: BlueGreenPreflight) -> list[Step]:
    if r.route is None:
        return []
    return [Step("route-back", _home(r, live_is_green=True), lambda f: describe_route_back(r.route, r.colors.green),
                 changes=True, undo=_to_green(r),
                 undo_name=f"HTTPRoute {r.route.route} back to Service {r.route.green_service}")]


def _route_home_first(r: BlueGreenPreflight) -> list[Step]:
    """A run killed between route-switch and the selector switch left the route on green's Service while the
    Service selects blue: back to the last consistent state first (the route on the Service), so that no undo
    of this run can leave the route on a Service whose pods it removes."""
    if r.route is None or not r.route.on_green_service or r.colors.already_live:
        return []
    return [Step("route-home", _home(r), lambda f: describe_route_home(r.route, r.colors.blue), changes=True)]


def _tail(r: BlueGreenPreflight) -> list[Step]:
    """From the verification on: what a resumed run runs too."""
    hooks = r.spec.hooks
    return [Step("verify-endpoints", lambda rel: verify_endpoints(rel.kube, r, rel.handed_on.get("endpoints")),
                 lambda f: describe_verify(r), phase="verify"),
            *_route_back(r),
            *hook_steps(hooks, HookPoint.POST_SWITCH),
            Step("post-switch", lambda rel: post_switch_verify(rel.kube, r), lambda f: describe_post_switch(r)),
            _cleanup(r)]


def has_window(r: BlueGreenPreflight) -> bool:
    """Blue kept warm after the switch, its clean-up a scheduled run (not kept anyway, and there is a blue)."""
    return r.spec.rollback_window_s > 0 and r.spec.cleanup.mode is not CleanupMode.KEEP and bool(r.colors.blue)


def _cleanup(r: BlueGreenPreflight) -> Step:
    if has_window(r):
        return Step("cleanup", lambda rel: open_window(rel.kube, r, rel.handed_on.get("connection") or {}),
                    lambda f: describe_window(r), on_failure=OnFailure.REPORT, changes=True)
    return Step("cleanup", lambda rel: cleanup_blue(rel.kube, r), lambda f: describe_cleanup(r),
                on_failure=OnFailure.REPORT, changes=True)


def blue_green_steps(r: BlueGreenPreflight) -> list[Step]:
    """Every step of the release, in order, hooks at their points."""
    if r.colors.already_live:
        return [_resume(r), *_tail(r)]
    hooks, c = r.spec.hooks, r.colors
    return [
        *([Step("close-window", lambda rel: close_previous_window(rel.kube, r), lambda f: describe_close_window(r),
                changes=True)] if r.previous_window else []),
        *_route_home_first(r),
        *hook_steps(hooks, HookPoint.PRE_RELEASE),
        Step("apply", lambda rel: apply_green(rel.kube, r), lambda f: describe_apply(r), changes=True,
             undo=lambda rel: remove_green(rel.kube, r), undo_name=f"remove {c.green}"),
        Step("wait-ready", lambda rel: wait_green_ready(rel.kube, r), lambda f: describe_wait_ready(r)),
        *([Step("preview", lambda rel: point_preview(rel.kube, r, rel.handed_on), changes=True,
                describe=lambda f: describe_preview(r, f.preview),
                undo=lambda rel: undo_preview(rel.kube, r, rel.handed_on),
                undo_name=f"restore preview Service {r.spec.preview_service}")] if r.spec.preview_service else []),
        _smoke(r),
        *hook_steps(hooks, HookPoint.PRE_SWITCH),
        _approval(r),
        *([Step("autoscaler", lambda rel: carry_autoscaler(rel.kube, r), lambda f: describe_autoscaler(r),
                changes=True, undo=lambda rel: remove_green_autoscaler(rel.kube, r),
                undo_name=f"remove the HorizontalPodAutoscaler of {c.green}")] if r.blue_hpa else []),
        *_route_switch(r),
        _switch(r),
        *_tail(r),
    ]


def blue_green_plan(r: BlueGreenPreflight, service: dict, preview: dict | None, found: PlanFacts,
                    hooks: HookPlan = NO_HOOKS) -> Plan:
    """The dry run: preflight, then the very list `blue_green_steps` gives the run, each step described."""
    c = r.colors
    plan = plan_of("blue-green", r.spec.namespace, c.service, f"{c.green} replaces {c.blue} behind Service "
                   f"{c.service}", blue_green_steps(r), BlueGreenFacts(service, preview, hooks), found)
    return Plan(plan.strategy, plan.namespace, plan.service, plan.summary, (describe_preflight(r), *plan.steps),
                plan.facts)


def blue_green_ending(kube: Kube, plan: BlueGreenPreflight, journal: Journal, hooks: HookRunner) -> Ending:
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
