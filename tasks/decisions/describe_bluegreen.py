"""How each step of a blue-green release describes itself in the plan (`--dry-run`), built from what preflight
decided (tasks/bluegreen/preflight.py: BlueGreenPreflight) and the Service as read. Pure. The list of steps, and so the
plan's order, is the strategy's (tasks/bluegreen/strategy.py).
"""

from __future__ import annotations

from typing import Protocol

from prefect_greenlight.tasks.decisions.annotations import PREFIX, switch_annotations
from prefect_greenlight.tasks.decisions.colors import ColorPlan
from prefect_greenlight.tasks.decisions.gateway_switch import SWITCH_ROUTE, RouteSwitch, route_annotation
from prefect_greenlight.tasks.decisions.plan import FieldChange, PlanStep, StepKind
from prefect_greenlight.tasks.decisions.traffic import selector_patch
from prefect_greenlight.tasks.decisions.window import RollbackWindow
from prefect_greenlight.tasks.decisions.workload import resolve_port, service_port
from prefect_greenlight.tasks.spec import ApprovalMode, BlueGreenSpec, CleanupMode, RollbackGreen, SmokeCheck

MAX_FIELDS = 40  # field changes listed in full; the rest counted
AT_SWITCH = "<time of the switch>"


class BlueGreenRelease(Protocol):
    """What the plan needs of tasks/bluegreen/preflight.py's BlueGreenPreflight."""

    spec: BlueGreenSpec
    release_id: str
    colors: ColorPlan
    green_manifest: dict
    green_existed: bool
    green_replicas_before: int
    blue_replicas: int
    blue_image: str
    service_ports: tuple[dict, ...]
    blue_hpa: dict | None
    green_changes: tuple[FieldChange, ...]
    previous_window: RollbackWindow | None
    route: RouteSwitch | None

    @property
    def green_replicas(self) -> int: ...

    @property
    def green_images(self) -> list[str]: ...


def field_lines(changes: tuple[FieldChange, ...], against: str) -> tuple[str, ...]:
    if not changes:
        return (f"no field differs from {against}",)
    lines = [c.describe() for c in changes[:MAX_FIELDS]]
    if len(changes) > MAX_FIELDS:
        lines.append(f"... and {len(changes) - MAX_FIELDS} more field(s)")
    return tuple(lines)


def _remove_green(r: BlueGreenRelease) -> str:
    g = r.colors.green
    if r.green_existed:
        return f"scale {g} back to its {r.green_replicas_before} replica(s) (it existed before), never while selected"
    how = "delete" if r.spec.on_failure is RollbackGreen.DELETE else "scale to 0"
    return f"{how} {g} (on_failure: {r.spec.on_failure.value}), never while the Service selects it"


def describe_apply(r: BlueGreenRelease) -> PlanStep:
    c = r.colors
    verb = f"update the existing {c.green} (now {r.green_replicas_before} replicas)" if r.green_existed \
        else f"create {c.green}"
    return PlanStep(
        "apply", StepKind.CHANGE, f"Deployment {c.green}",
        f"server-side apply (field manager greenlight): {verb} with {r.green_replicas} replica(s), "
        f"{', '.join(r.green_images)}, beside {c.blue}; {len(r.green_changes)} field(s) differ from {c.blue} "
        "(server-side dry run)",
        details=field_lines(r.green_changes, c.blue), undo=_remove_green(r))


def describe_wait_ready(r: BlueGreenRelease) -> PlanStep:
    d = r.spec.deadlines
    return PlanStep(
        "wait-ready", StepKind.WAIT, f"Deployment {r.colors.green}", "watch the rollout; nothing changes",
        gate=(f"{r.green_replicas} of {r.green_replicas} replicas updated, ready and available within "
              f"{d.ready_s:.0f} s; fails fast on permanent pull errors, crash loops (after {d.crash_restarts} "
              f"restarts), OOMKilled, config errors, Unschedulable after {d.unschedulable_grace_s:.0f} s"))


def describe_preview(r: BlueGreenRelease, preview: dict | None) -> PlanStep:
    name, c = r.spec.preview_service, r.colors
    if preview is None:
        change, undo = (f"create Service {name} (ClusterIP, the ports of {c.service}) selecting "
                        f"{c.green_selector}"), f"delete preview Service {name}"
    else:
        before = (preview.get("spec") or {}).get("selector") or {}
        change, undo = (f"re-point Service {name} from {before} to {c.green_selector}",
                        f"restore preview Service {name}'s selector {before}")
    return PlanStep("preview", StepKind.CHANGE, f"Service {name}", change, undo=undo,
                    gate=f"its EndpointSlices hold {r.green_replicas} ready pod(s) of {c.green} within "
                         f"{r.spec.deadlines.endpoints_s:.0f} s")


def smoke_line(r: BlueGreenRelease, check: SmokeCheck, pods: int) -> str:
    pod_spec = r.green_manifest["spec"]["template"].get("spec") or {}
    port = resolve_port(pod_spec, check.port, service_port(r.service_ports, check.service_port))
    count = min(check.pods, pods) if check.pods else pods
    expect = [f"HTTP {check.expect_status}"]
    expect += [f"body contains {check.body_contains!r}"] if check.body_contains is not None else []
    expect += [f"body matches /{check.body_regex}/"] if check.body_regex is not None else []
    expect += [f"within {check.max_latency_ms:.0f} ms"] if check.max_latency_ms is not None else []
    return (f"GET :{port}{check.path} on {count} of {pods} pod(s) through port-forward, expect "
            f"{', '.join(expect)}; {check.attempts} attempt(s) {check.interval_s:g} s apart, "
            f"{check.timeout_s:g} s timeout")


def describe_smoke(r: BlueGreenRelease) -> PlanStep:
    checks = tuple(smoke_line(r, c, r.green_replicas) for c in r.spec.smoke)
    gate = f"all {len(checks)} check(s) pass on every pod tried" if checks else "none (no smoke checks configured)"
    return PlanStep("smoke-test", StepKind.GATE, f"pods of {r.colors.green}" if checks else "",
                    "HTTP checks; nothing changes", details=checks, gate=gate)


def approval_gate(spec: BlueGreenSpec) -> str:
    a = spec.approval
    if a.mode is ApprovalMode.AUTO:
        return "none (approval mode auto)"
    if a.mode is ApprovalMode.MANUAL:
        return (f"manual: the run pauses for an answer in the Prefect UI or `greenlight approve|reject RUN_ID`; "
                f"no answer within {a.timeout_s:.0f} s counts as a rejection (rolls back)")
    return f"timed: approved after {a.auto_after_s:.0f} s unless someone rejects first"


def describe_autoscaler(r: BlueGreenRelease) -> PlanStep:
    hpa = (r.blue_hpa or {}).get("metadata", {}).get("name", "?")
    return PlanStep("autoscaler", StepKind.CHANGE, f"HorizontalPodAutoscaler {r.colors.green}",
                    f"create an HPA for {r.colors.green} like {hpa}, minReplicas held at blue's "
                    f"{r.blue_replicas} until cleanup", undo=f"remove the HorizontalPodAutoscaler of {r.colors.green}")


def switch_ops(r: BlueGreenRelease, service: dict) -> list[dict]:
    """The JSON patch the switch sends (tasks/bluegreen/switch.py), the switch time left as a placeholder."""
    c = r.colors
    annotations = switch_annotations(
        live_deployment=c.green, live_color=c.green_color, previous_deployment=c.blue, previous_color=c.blue_color,
        previous_selector=c.blue_selector, release_id=r.release_id, switched_at=AT_SWITCH)
    annotations[PREFIX + "previous-replicas"] = str(r.blue_replicas)
    if r.spec.approval.mode is not ApprovalMode.AUTO:
        annotations[PREFIX + "approval"] = "<the approval's answer>"
    if r.route is not None:
        annotations[SWITCH_ROUTE] = route_annotation(r.route)
    return selector_patch(service, c.blue_selector, c.green_selector, annotations)


def describe_switch(r: BlueGreenRelease, service: dict) -> PlanStep:
    c, ops = r.colors, switch_ops(r, service)
    guard = [o for o in ops if o["op"] == "test"]
    moves = [o for o in ops if o["op"] != "test" and o["path"].startswith("/spec/selector")]
    lines = tuple(f"{o['op']} {o['path']}" + (f" = {o['value']!r}" if "value" in o else "") for o in guard + moves)
    lines += ((f"+ {len(ops) - len(guard) - len(moves)} annotation op(s): the release record (live/previous "
               f"Deployment and color, previous selector, release id {r.release_id}, time)"),)
    return PlanStep("switch", StepKind.CHANGE, f"Service {c.service}",
                    f"JSON patch of the selector {c.blue_selector} -> {c.green_selector}, release record in the "
                    "same patch", details=lines, patch=tuple(ops),
                    gate=f"guard: {len(guard)} test op(s) on blue's selector; the apiserver refuses (422) if "
                         "someone else moved it",
                    undo=f"switch Service {c.service} back to {c.blue} (only if {c.blue} has ready pods), verified "
                         "by EndpointSlices")


def describe_verify(r: BlueGreenRelease) -> PlanStep:
    return PlanStep("verify-endpoints", StepKind.WAIT, f"EndpointSlices of Service {r.colors.service}",
                    "watch the EndpointSlices; nothing changes",
                    gate=f"only {r.colors.green}'s pods, all {r.green_replicas} ready, within "
                         f"{r.spec.deadlines.endpoints_s:.0f} s")


def describe_post_switch(r: BlueGreenRelease) -> PlanStep:
    p = r.spec.post_switch
    if p.window_s <= 0:
        return PlanStep("post-switch", StepKind.GATE, "", "nothing (no post-switch window)", gate="none")
    return PlanStep("post-switch", StepKind.GATE, f"pods Service {r.colors.service} routes to",
                    f"rounds of the smoke checks every {p.interval_s:g} s for {p.window_s:.0f} s",
                    gate=f"every round passes on the pods the Service really routes to, all of them {r.colors.green}'s")


def describe_cleanup(r: BlueGreenRelease) -> PlanStep:
    c, cl = r.colors, r.spec.cleanup
    when = f"{cl.delay_s:.0f} s (scale-down delay) after the EndpointSlices are verified"
    if cl.mode is CleanupMode.KEEP:
        return PlanStep("cleanup", StepKind.CHECK, f"Deployment {c.blue}", f"keep {c.blue} as it is",
                        undo="not undone by the release (`greenlight rollback` switches back)")
    what = f"scale {c.blue} from {r.blue_replicas} to 0" if cl.mode is CleanupMode.SCALE_TO_ZERO \
        else f"record {c.blue}'s manifest on Service {c.service}, then delete {c.blue}"
    if r.blue_hpa:
        what = (f"record HPA {r.blue_hpa['metadata']['name']} on Service {c.service} and delete it; {what}; "
                f"release the hold on {c.green}'s HPA")
    return PlanStep("cleanup", StepKind.CHANGE, f"Deployment {c.blue}", what + " (never while the Service selects it)",
                    when=when, undo="not undone by the release (`greenlight rollback` brings it back)")


def describe_window(r: BlueGreenRelease) -> PlanStep:
    """The clean-up of a release with a rollback window: blue warm until the window's end, then a scheduled run."""
    c, cl, w = r.colors, r.spec.cleanup, r.spec.rollback_window_s
    hpa = f"; its HPA {r.blue_hpa['metadata']['name']} held at {r.blue_replicas}" if r.blue_hpa else ""
    then = (f"scale {c.blue} from {r.blue_replicas} to 0" if cl.mode is CleanupMode.SCALE_TO_ZERO
            else f"record {c.blue}'s manifest on Service {c.service}, then delete {c.blue}")
    return PlanStep("cleanup", StepKind.CHANGE, f"Deployment {c.blue}, Service {c.service}",
                    f"rollback window: keep {c.blue} scaled ({r.blue_replicas} replicas) and ready, without traffic, "
                    f"until {AT_SWITCH} + {w:.0f} s{hpa}; record the window on Service {c.service} "
                    f"(greenlight.io/rollback-window) and schedule a Prefect flow run of "
                    f"blue-green-window-cleanup/window-cleanup for its end, which will {then} (never while the "
                    "Service selects it); the release does not wait for it",
                    when=f"window until {AT_SWITCH} + {w:.0f} s; a `greenlight rollback` inside it is a selector "
                         "switch only" + (f" (through HTTPRoute {r.route.route}: route-switch, switch, route-back)"
                                          if r.route is not None else ""),
                    undo="not undone by the release (`greenlight rollback` switches back to the warm blue)")


def describe_close_window(r: BlueGreenRelease) -> PlanStep:
    """A release inside the previous release's window: the warm version leaves first (Argo's behaviour)."""
    w, c = r.previous_window, r.colors
    if w is None:
        return PlanStep("close-window", StepKind.CHECK, f"Service {c.service}", "no rollback window open")
    what = (f"forget the window of release {w.release_id}: {w.warm} becomes this release's green"
            if w.warm == c.green else
            f"close the rollback window of release {w.release_id} (until {w.until}): {w.mode} {w.warm} now, "
            "instead of at the window's end")
    return PlanStep("close-window", StepKind.CHANGE, f"Deployment {w.warm}, Service {c.service}", what,
                    undo="not undone (a new release inside a window ends it, as Argo Rollouts does)")


def describe_preflight(r: BlueGreenRelease) -> PlanStep:
    c = r.colors
    return PlanStep("preflight", StepKind.CHECK, f"Service {c.service}, Deployments {c.blue}, {c.green}",
                    f"read and decide: blue {c.blue} ({r.blue_replicas} replicas, {r.blue_image}) -> green "
                    f"{c.green} ({r.green_replicas}, {', '.join(r.green_images)}); the apiserver accepted green's "
                    "server-side dry run; nothing changed")


def describe_approval(r: BlueGreenRelease) -> PlanStep:
    return PlanStep("approval", StepKind.GATE, "", "nothing changes", gate=approval_gate(r.spec))


def describe_resume(r: BlueGreenRelease) -> PlanStep:
    """A re-run that finds the Service already on green (its own release record) resumes after the switch."""
    c = r.colors
    return PlanStep("wait-ready", StepKind.WAIT, f"Deployment {c.green}",
                    f"Service {c.service} already selects {c.green} (release record): resume after the switch",
                    gate=describe_wait_ready(r).gate,
                    undo=f"switch Service {c.service} back to {c.blue} (only if it has ready pods), verified")
