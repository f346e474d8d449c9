"""Crashes found by heartbeat: the greenlight worker's `prefect.flow-run.heartbeat` events and the automation that
marks a run Crashed when they stop (Prefect's "detect zombie flows" pattern, docs.prefect.io/v3/advanced/
detect-zombie-flows), so that a worker killed or frozen on any host has its runs Crashed without a re-run.

Prefect's flow engine has a heartbeat thread of its own per run (PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 180 s by default
on 3.9, at least 30 s). The greenlight worker sends its own, every HEARTBEAT_S, for each run whose thread it holds,
with the run's work pool as a related resource (labelled `prefect.work-pool.type: greenlight`, as Prefect's own
state events label it). The automation matches only events related to a greenlight pool: heartbeats of runs on
other pools, or of `greenlight release` run in a terminal, never arm it, and the engine's heartbeats, which carry
no work pool, neither arm nor feed it.

The automation is installed by every greenlight worker as it starts (`install_crash_automation`): kept when one of
that name already says the same, replaced otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import StateType
from prefect.events import emit_event
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from prefect_greenlight.tasks.decisions.heartbeat import HeartbeatPlan, heartbeat_plan

log = logging.getLogger(__name__)

AUTOMATION_NAME = "greenlight: crash runs whose worker went silent"
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
POOL_TYPE = "greenlight"
FINAL_EVENTS = ("prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed")


def plan_from_environment(environ: Mapping[str, str]) -> HeartbeatPlan:
    """GREENLIGHT_WORKER_HEARTBEAT_S (15 s) and GREENLIGHT_WORKER_CRASH_AFTER_S (60 s); the server's proactive
    granularity where this process has it (PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY, 5 s)."""
    return heartbeat_plan(environ.get("GREENLIGHT_WORKER_HEARTBEAT_S"), environ.get("GREENLIGHT_WORKER_CRASH_AFTER_S"),
                          environ.get("PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY"))


def crash_message(plan: HeartbeatPlan) -> str:
    return (f"no heartbeat from its greenlight worker for {plan.silence_s} s: the worker was killed, frozen or cut "
            "off, and the release's thread with it. A re-run converges (the Service's Lease records the release); "
            "a worker that wakes stops the old release at its next Lease check")


def crash_automation(plan: HeartbeatPlan, pool_type: str = POOL_TYPE) -> AutomationCore:
    """After a heartbeat of a run on a greenlight pool, expect another heartbeat or a final state within
    `plan.silence_s`; when neither comes, that run (`for_each` its id) is set Crashed."""
    trigger = EventTrigger(
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={"prefect.resource.role": "work-pool", "prefect.work-pool.type": pool_type},
        after={HEARTBEAT_EVENT}, expect={HEARTBEAT_EVENT, *FINAL_EVENTS},
        for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
        within=timedelta(seconds=plan.silence_s))
    return AutomationCore(
        name=AUTOMATION_NAME,
        description=(f"Marks a run of a greenlight work pool Crashed when its worker's heartbeats (every "
                     f"{plan.every_s:g} s) stop for {plan.silence_s} s. Installed by the greenlight worker."),
        trigger=trigger,
        actions=[ChangeFlowRunState(state=StateType.CRASHED, name="Crashed", message=crash_message(plan))])


def _sorted(value: Any) -> Any:
    """JSON with every list of strings sorted (the trigger's sets come back from the server in any order)."""
    if isinstance(value, dict):
        return {k: _sorted(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_sorted(v) for v in value]
        return sorted(items) if all(isinstance(v, str) for v in items) else items
    return value


def _essence(automation: Any) -> dict:
    """What must match for an installed automation to count as this one (ids and owners aside)."""
    return _sorted({"enabled": automation.enabled, "trigger": automation.trigger.model_dump(mode="json"),
                    "actions": [a.model_dump(mode="json") for a in automation.actions]})


def same_automation(existing: Any, wanted: AutomationCore) -> bool:
    return _essence(existing) == _essence(wanted)


async def install_crash_automation(client: Any, plan: HeartbeatPlan) -> tuple[str, UUID]:
    """Keep the installed automation when it says the same, else replace every one of that name; returns
    ("kept" | "created", the id kept). Workers starting together may each create one: after creating, every one
    of them keeps the same copy (the smallest id) and deletes the others."""
    wanted = crash_automation(plan)
    existing = await client.read_automations_by_name(AUTOMATION_NAME)
    if len(existing) == 1 and same_automation(existing[0], wanted):
        return "kept", existing[0].id
    for automation in existing:
        await _delete(client, automation.id)
    await client.create_automation(wanted)
    copies = [a for a in await client.read_automations_by_name(AUTOMATION_NAME) if same_automation(a, wanted)]
    keep = min(copies, key=lambda a: str(a.id))
    for automation in copies:
        if automation.id != keep.id:
            await _delete(client, automation.id)
    return "created", keep.id


async def _delete(client: Any, automation_id: UUID) -> None:
    try:
        await client.delete_automation(automation_id)
    except Exception as exc:  # noqa: BLE001 - another worker deleted it first
        log.debug("automation %s not deleted: %s", automation_id, exc)


def pool_resource(pool: Any) -> dict[str, str]:
    """The work pool as a related resource, labelled as Prefect's state events label it."""
    return {"prefect.resource.id": f"prefect.work-pool.{pool.id}", "prefect.resource.role": "work-pool",
            "prefect.resource.name": pool.name, "prefect.work-pool.type": pool.type}


def emit_heartbeat(flow_run_id: UUID, flow_run_name: str, pool: dict[str, str], worker: str) -> None:
    """One heartbeat for a run the worker holds (queued to Prefect's events worker: it does not block)."""
    emit_event(event=HEARTBEAT_EVENT,
               resource={"prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                         "prefect.resource.name": flow_run_name, "greenlight.worker": worker},
               related=[pool])
