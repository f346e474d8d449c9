"""The plan of `greenlight rollback`: flows/rollback.py's steps, in its order and under its timeline's names, from
the release record on the Service and the two Deployments as read. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect_greenlight.tasks.decisions.plan import NO_UNDO, Plan, PlanFacts, PlanStep, StepKind, deployment_changes
from prefect_greenlight.tasks.decisions.plan_bluegreen import field_lines
from prefect_greenlight.tasks.decisions.traffic import selector_patch
from prefect_greenlight.tasks.record.annotations import PREFIX, ReleaseRecord, switch_annotations
from prefect_greenlight.tasks.spec import Cleanup, CleanupMode, Deadlines

NOT_UNDONE = "not undone: a failed rollback is reported (outcome failed), the Service left where the guard found it"


@dataclass(frozen=True)
class RollbackFacts:
    """What the rollback's first step read."""

    service: dict
    record: ReleaseRecord
    target: dict | None  # the Deployment to bring back (None: deleted)
    live: dict | None  # the Deployment serving now
    replicas_wanted: int  # greenlight.io/previous-replicas (0: unknown)
    release_id: str


def _replicas(d: dict | None) -> int:
    return int(((d or {}).get("spec") or {}).get("replicas", 0) or 0)


def _restore(f: RollbackFacts) -> PlanStep:
    r, target = f.record, f.record.previous_deployment
    if f.target is None:
        if not r.previous_manifest:
            change = f"{target} was deleted and no manifest was recorded: the rollback would fail here"
        else:
            change = f"recreate {target} from the manifest recorded on the Service ({_replicas(r.previous_manifest)} " \
                     "replicas, server-side apply)"
        return PlanStep("restore", StepKind.CHANGE, f"Deployment {target}", change, undo=NOT_UNDONE)
    if _replicas(f.target) == 0:
        count = f.replicas_wanted or _replicas(f.live) or 1
        return PlanStep("restore", StepKind.CHANGE, f"Deployment {target}", f"scale {target} from 0 to {count}",
                        undo=NOT_UNDONE)
    return PlanStep("restore", StepKind.CHECK, f"Deployment {target}",
                    f"{target} still has {_replicas(f.target)} replicas: nothing to do")


def _target_replicas(f: RollbackFacts) -> int:
    if f.target is None:
        return _replicas(f.record.previous_manifest)
    return _replicas(f.target) or f.replicas_wanted or _replicas(f.live) or 1


def rollback_ops(f: RollbackFacts) -> list[dict]:
    r = f.record
    current = (f.service.get("spec") or {}).get("selector") or {}
    annotations = switch_annotations(
        live_deployment=r.previous_deployment, live_color=r.previous_color, previous_deployment=r.live_deployment,
        previous_color=r.live_color, previous_selector=current, release_id=f.release_id,
        switched_at="<time of the switch>")
    annotations[PREFIX + "previous-replicas"] = str(_replicas(f.live))
    return selector_patch(f.service, current, r.previous_selector, annotations)


def _switch(f: RollbackFacts) -> PlanStep:
    r, ops = f.record, rollback_ops(f)
    current = (f.service.get("spec") or {}).get("selector") or {}
    guard = [o for o in ops if o["op"] == "test"]
    moves = [o for o in ops if o["op"] != "test" and o["path"].startswith("/spec/selector")]
    lines = tuple(f"{o['op']} {o['path']}" + (f" = {o['value']!r}" if "value" in o else "") for o in guard + moves)
    return PlanStep("switch", StepKind.CHANGE, f"Service {f.service['metadata']['name']}",
                    f"JSON patch of the selector {current} -> {r.previous_selector}, release record in the same "
                    "patch", details=lines, patch=tuple(ops),
                    gate=f"guard: {len(guard)} test op(s) on the current selector (422 if someone moved it); "
                         f"{r.previous_deployment}'s pods must match the recorded selector",
                    undo=NOT_UNDONE)


def _autoscaler(f: RollbackFacts, target_has_hpa: bool) -> PlanStep:
    r, target = f.record, f.record.previous_deployment
    if target_has_hpa:
        change = f"{target} already has a HorizontalPodAutoscaler: nothing to do"
    elif r.previous_hpa and ((r.previous_hpa.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == target:
        change = f"re-create HorizontalPodAutoscaler {r.previous_hpa['metadata']['name']} for {target} as recorded"
    else:
        change = f"no HorizontalPodAutoscaler recorded for {target}: nothing to do"
    kind = StepKind.CHANGE if change.startswith("re-create") else StepKind.CHECK
    return PlanStep("autoscaler", kind, f"HorizontalPodAutoscaler of {target}", change,
                    undo=NOT_UNDONE if kind is StepKind.CHANGE else NO_UNDO)


def _cleanup(f: RollbackFacts, cleanup: Cleanup) -> PlanStep:
    live = f.record.live_deployment
    if cleanup.mode is CleanupMode.KEEP or f.live is None:
        return PlanStep("cleanup", StepKind.CHECK, f"Deployment {live}", f"keep {live}")
    what = f"scale {live} from {_replicas(f.live)} to 0" if cleanup.mode is CleanupMode.SCALE_TO_ZERO \
        else f"record {live}'s manifest on the Service, then delete {live}"
    return PlanStep("cleanup", StepKind.CHANGE, f"Deployment {live}",
                    f"record and delete {live}'s HorizontalPodAutoscaler if it has one; {what}",
                    when=f"{cleanup.delay_s:.0f} s (scale-down delay) after the EndpointSlices are verified",
                    undo="not undone (`greenlight rollback` again switches forward)")


def rollback_plan(f: RollbackFacts, cleanup: Cleanup, deadlines: Deadlines, target_has_hpa: bool,
                  facts: PlanFacts) -> Plan:
    r, name = f.record, f.service["metadata"]["name"]
    target, live = r.previous_deployment, r.live_deployment
    n = _target_replicas(f)
    first = PlanStep("read-record", StepKind.CHECK, f"Service {name}",
                     f"the release record: {live} is live, {target} was live before with selector "
                     f"{r.previous_selector}; nothing changed", details=field_lines(
                         deployment_changes(f.live, f.target), live) if f.live and f.target else ())
    steps = (first, _restore(f),
             PlanStep("wait-ready", StepKind.WAIT, f"Deployment {target}", "watch the rollout; nothing changes",
                      gate=f"{n} of {n} replicas ready within {deadlines.ready_s:.0f} s (fail fast as a release)"),
             _switch(f),
             PlanStep("verify-endpoints", StepKind.WAIT, f"EndpointSlices of Service {name}",
                      "watch the EndpointSlices; nothing changes",
                      gate=f"only {target}'s pods, all {n} ready, within {deadlines.endpoints_s:.0f} s"),
             _autoscaler(f, target_has_hpa), _cleanup(f, cleanup))
    return Plan("rollback", (f.service.get("metadata") or {}).get("namespace", ""), name,
                f"{target} replaces {live} behind Service {name} again", steps, facts)
