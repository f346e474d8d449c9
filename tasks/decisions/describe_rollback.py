"""How each step of `greenlight rollback` describes itself in the plan (`--dry-run`), from the release record on
the Service (as the rollback's choice reads it: `chosen_record`) and the two Deployments as read. Pure. The list of
steps, and so the plan's order, is the strategy's (tasks/bluegreen/rollback_strategy.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from prefect_greenlight.tasks.decisions import gateway_switch
from prefect_greenlight.tasks.decisions.annotations import PREFIX, ReleaseRecord, switch_annotations
from prefect_greenlight.tasks.decisions.describe_bluegreen import field_lines
from prefect_greenlight.tasks.decisions.gateway_switch import RouteSwitch
from prefect_greenlight.tasks.decisions.plan import NO_UNDO, PlanStep, StepKind, deployment_changes
from prefect_greenlight.tasks.decisions.rollback import RollbackChoice, SwitchKind
from prefect_greenlight.tasks.decisions.traffic import selector_patch
from prefect_greenlight.tasks.spec import Cleanup, CleanupMode, Deadlines

NOT_UNDONE = "not undone: a failed rollback is reported (outcome failed), the Service left where the guard found it"


@dataclass(frozen=True)
class RollbackFacts:
    """What the rollback's first step read, and the settings the rollback runs with."""

    service: dict
    record: ReleaseRecord  # as the choice reads it (chosen_record)
    target: dict | None  # the Deployment to bring back (None: deleted)
    live: dict | None  # the Deployment serving now
    replicas_wanted: int  # greenlight.io/previous-replicas (0: unknown)
    release_id: str
    cleanup: Cleanup = field(default_factory=Cleanup)
    deadlines: Deadlines = field(default_factory=Deadlines)
    target_has_hpa: bool = False
    route: RouteSwitch | None = None  # the HTTPRoute the rollback goes back through (traffic: gateway)


def chosen_record(recorded: ReleaseRecord, choice: RollbackChoice) -> ReleaseRecord:
    """The record as the rollback's choice goes: with `--to`, the target is not the recorded previous Deployment
    (and its manifest is not the recorded one)."""
    return dataclasses.replace(
        recorded, previous_deployment=choice.target, previous_selector=choice.target_selector,
        previous_color=choice.target_color, live_deployment=choice.from_deployment, live_color=choice.from_color,
        previous_manifest=recorded.previous_manifest if choice.use_recorded_manifest else None)


def replicas_of(d: dict | None) -> int:
    return int(((d or {}).get("spec") or {}).get("replicas", 0) or 0)


def _name(f: RollbackFacts) -> str:
    return f.service["metadata"]["name"]


def rollback_summary(f: RollbackFacts) -> str:
    return f"{f.record.previous_deployment} replaces {f.record.live_deployment} behind Service {_name(f)} again"


def describe_read_record(f: RollbackFacts) -> PlanStep:
    r = f.record
    target, live = r.previous_deployment, r.live_deployment
    return PlanStep("read-record", StepKind.CHECK, f"Service {_name(f)}",
                    f"the release record: {live} is live, {target} was live before with selector "
                    f"{r.previous_selector}; nothing changed", details=field_lines(
                        deployment_changes(f.live, f.target), live) if f.live and f.target else ())


def describe_restore(f: RollbackFacts) -> PlanStep:
    r, target = f.record, f.record.previous_deployment
    if f.target is None:
        if not r.previous_manifest:
            change = f"{target} was deleted and no manifest was recorded: the rollback would fail here"
        else:
            change = (f"recreate {target} from the manifest recorded on the Service "
                      f"({replicas_of(r.previous_manifest)} replicas, server-side apply)")
        return PlanStep("restore", StepKind.CHANGE, f"Deployment {target}", change, undo=NOT_UNDONE)
    if replicas_of(f.target) == 0:
        count = f.replicas_wanted or replicas_of(f.live) or 1
        return PlanStep("restore", StepKind.CHANGE, f"Deployment {target}", f"scale {target} from 0 to {count}",
                        undo=NOT_UNDONE)
    return PlanStep("restore", StepKind.CHECK, f"Deployment {target}",
                    f"{target} still has {replicas_of(f.target)} replicas: nothing to do")


def _target_replicas(f: RollbackFacts) -> int:
    if f.target is None:
        return replicas_of(f.record.previous_manifest)
    return replicas_of(f.target) or f.replicas_wanted or replicas_of(f.live) or 1


def describe_wait_ready(f: RollbackFacts) -> PlanStep:
    n = _target_replicas(f)
    return PlanStep("wait-ready", StepKind.WAIT, f"Deployment {f.record.previous_deployment}",
                    "watch the rollout; nothing changes",
                    gate=f"{n} of {n} replicas ready within {f.deadlines.ready_s:.0f} s (fail fast as a release)")


def rollback_annotations(r: ReleaseRecord, current: dict[str, str], release_id: str, switched_at: str,
                         live_replicas: int) -> dict[str, str]:
    """The release record the switch writes in its patch (the plan shows this very patch): the target live again
    as one gone back to (switch-kind rollback: a second rollback changes nothing), the selector it leaves, and
    how many replicas the rolled-back-from Deployment had."""
    return {**switch_annotations(live_deployment=r.previous_deployment, live_color=r.previous_color,
                                 previous_deployment=r.live_deployment, previous_color=r.live_color,
                                 previous_selector=current, release_id=release_id, switched_at=switched_at,
                                 kind=SwitchKind.ROLLBACK.value),
            PREFIX + "previous-replicas": str(live_replicas)}


def rollback_ops(f: RollbackFacts) -> list[dict]:
    current = (f.service.get("spec") or {}).get("selector") or {}
    annotations = rollback_annotations(f.record, current, f.release_id, "<time of the switch>", replicas_of(f.live))
    return selector_patch(f.service, current, f.record.previous_selector, annotations)


def describe_switch(f: RollbackFacts) -> PlanStep:
    r, ops = f.record, rollback_ops(f)
    current = (f.service.get("spec") or {}).get("selector") or {}
    guard = [o for o in ops if o["op"] == "test"]
    moves = [o for o in ops if o["op"] != "test" and o["path"].startswith("/spec/selector")]
    lines = tuple(f"{o['op']} {o['path']}" + (f" = {o['value']!r}" if "value" in o else "") for o in guard + moves)
    return PlanStep("switch", StepKind.CHANGE, f"Service {_name(f)}",
                    f"JSON patch of the selector {current} -> {r.previous_selector}, release record in the same "
                    "patch", details=lines, patch=tuple(ops),
                    gate=f"guard: {len(guard)} test op(s) on the current selector (422 if someone moved it); "
                         f"{r.previous_deployment}'s pods must match the recorded selector",
                    undo=NOT_UNDONE)


def describe_route_switch(f: RollbackFacts) -> PlanStep:
    step = gateway_switch.describe_route_switch(f.route, f.record.previous_deployment, _target_replicas(f))
    return dataclasses.replace(step, undo=NOT_UNDONE)


def describe_route_back(f: RollbackFacts) -> PlanStep:
    return dataclasses.replace(gateway_switch.describe_route_back(f.route, f.record.previous_deployment),
                               undo=NOT_UNDONE)


def describe_verify(f: RollbackFacts) -> PlanStep:
    n = _target_replicas(f)
    return PlanStep("verify-endpoints", StepKind.WAIT, f"EndpointSlices of Service {_name(f)}",
                    "watch the EndpointSlices; nothing changes",
                    gate=f"only {f.record.previous_deployment}'s pods, all {n} ready, within "
                         f"{f.deadlines.endpoints_s:.0f} s")


def describe_autoscaler(f: RollbackFacts) -> PlanStep:
    r, target = f.record, f.record.previous_deployment
    if f.target_has_hpa:
        change = f"{target} already has a HorizontalPodAutoscaler: nothing to do"
    elif r.previous_hpa and ((r.previous_hpa.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == target:
        change = f"re-create HorizontalPodAutoscaler {r.previous_hpa['metadata']['name']} for {target} as recorded"
    else:
        change = f"no HorizontalPodAutoscaler recorded for {target}: nothing to do"
    kind = StepKind.CHANGE if change.startswith("re-create") else StepKind.CHECK
    return PlanStep("autoscaler", kind, f"HorizontalPodAutoscaler of {target}", change,
                    undo=NOT_UNDONE if kind is StepKind.CHANGE else NO_UNDO)


def describe_cleanup(f: RollbackFacts) -> PlanStep:
    live, cleanup = f.record.live_deployment, f.cleanup
    if cleanup.mode is CleanupMode.KEEP or f.live is None:
        return PlanStep("cleanup", StepKind.CHECK, f"Deployment {live}", f"keep {live}")
    what = f"scale {live} from {replicas_of(f.live)} to 0" if cleanup.mode is CleanupMode.SCALE_TO_ZERO \
        else f"record {live}'s manifest on the Service, then delete {live}"
    return PlanStep("cleanup", StepKind.CHANGE, f"Deployment {live}",
                    f"record and delete {live}'s HorizontalPodAutoscaler if it has one; {what}",
                    when=f"{cleanup.delay_s:.0f} s (scale-down delay) after the EndpointSlices are verified",
                    undo="not undone (`greenlight rollback` again switches forward)")
