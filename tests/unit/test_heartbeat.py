"""Crashes found by heartbeat: the plan (how often, how long a silence), the automation greenlight installs (read by
the Prefect server's own trigger model: which events arm it and feed it), and its idempotent install."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from uuid import uuid4

import pytest
from prefect.server.events.schemas.automations import Automation as ServerAutomation
from prefect.server.events.schemas.events import ReceivedEvent

from prefect_greenlight.tasks.decisions.heartbeat import BOUND_S, HeartbeatPlan, HeartbeatProblem, heartbeat_plan
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.prefect_adapter.heartbeats import (
    AUTOMATION_NAME,
    crash_automation,
    install_crash_automation,
    pool_resource,
    same_automation,
)

RUN = uuid4()


def test_the_default_plan_crashes_a_killed_workers_runs_within_the_bound():
    plan = heartbeat_plan(None, None)
    assert plan == HeartbeatPlan(15.0, 60, 5.0)
    assert plan.crashed_within_s() == 65.0 <= BOUND_S
    assert plan.problems() == []


@pytest.mark.parametrize("every, silence, problem", [
    ("30", "45", HeartbeatProblem.SILENCE_TOO_SHORT),  # one late beat would crash a live run
    ("0.1", "60", HeartbeatProblem.TOO_FAST),
])
def test_a_plan_that_could_crash_a_live_run_is_refused(every, silence, problem):
    with pytest.raises(BadInput, match=problem.value):
        heartbeat_plan(every, silence)


def test_a_longer_silence_is_allowed_but_reported_over_the_bound():
    plan = heartbeat_plan("30", "120")
    assert plan.problems() == [HeartbeatProblem.OVER_BOUND] and plan.crashed_within_s() == 125.0


def test_a_bad_number_names_the_setting():
    with pytest.raises(BadInput, match="GREENLIGHT_WORKER_CRASH_AFTER_S='soon'"):
        heartbeat_plan(None, "soon")


def _server_trigger(plan: HeartbeatPlan):
    core = crash_automation(plan)
    return ServerAutomation.model_validate({**core.model_dump(mode="json"), "id": str(uuid4())}).trigger


def _event(name: str, related: list[dict]) -> ReceivedEvent:
    now = datetime.now(timezone.utc)
    return ReceivedEvent(occurred=now, received=now, event=name, id=uuid4(), related=related,
                         resource={"prefect.resource.id": f"prefect.flow-run.{RUN}"})


class Pool:
    id = uuid4()
    name = "releases"
    type = "greenlight"


def test_the_workers_heartbeat_arms_the_trigger_and_a_final_state_of_the_pool_satisfies_it():
    trigger = _server_trigger(HeartbeatPlan())
    ours = _event("prefect.flow-run.heartbeat", [pool_resource(Pool())])
    assert trigger.covers(ours) and trigger.starts_after(ours.event) and trigger.expects(ours.event)
    # the server's own state event of a run on that pool (labelled as prefect/server/models/events.py does)
    completed = _event("prefect.flow-run.Completed", [pool_resource(Pool())])
    assert trigger.covers(completed) and trigger.expects(completed.event)
    assert trigger.within.total_seconds() == 60 and trigger.for_each == {"prefect.resource.id"}
    assert not trigger.expects("prefect.flow-run.Paused")  # a paused release keeps beating; its pause is no end


def test_heartbeats_of_other_pools_and_of_the_engine_never_arm_it():
    trigger = _server_trigger(HeartbeatPlan())
    process_pool = {**pool_resource(Pool()), "prefect.work-pool.type": "process"}
    assert not trigger.covers(_event("prefect.flow-run.heartbeat", [process_pool]))
    engine_beat = [{"prefect.resource.id": f"prefect.flow.{uuid4()}", "prefect.resource.role": "flow"}]
    assert not trigger.covers(_event("prefect.flow-run.heartbeat", engine_beat))  # no work pool related


def test_the_action_crashes_without_forcing_a_run_that_already_ended():
    action = crash_automation(HeartbeatPlan()).actions[0]
    assert action.type == "change-flow-run-state" and action.state.value == "CRASHED" and action.force is False
    assert "60 s" in action.message and "re-run converges" in action.message


class FakeClient:
    def __init__(self, existing=()):
        self.automations = {uuid4(): a for a in existing}
        self.deleted: list = []
        self.racing: list = []

    async def read_automations_by_name(self, name):
        return [type("A", (), {**a.model_dump(), "id": i, "trigger": a.trigger, "actions": a.actions})()
                for i, a in self.automations.items() if a.name == name]

    async def delete_automation(self, automation_id):
        self.deleted.append(automation_id)
        if automation_id not in self.automations:
            raise KeyError(automation_id)  # as the API's 404 when another worker deleted it first
        del self.automations[automation_id]

    async def create_automation(self, automation):
        new = uuid4()
        self.automations[new] = automation
        for racer in self.racing:  # another worker creating its copy at the same moment
            self.automations[uuid4()] = racer
        self.racing = []
        return new


def test_install_keeps_the_same_automation_and_replaces_another_or_duplicates():
    plan = HeartbeatPlan()
    client = FakeClient()
    done, first = asyncio.run(install_crash_automation(client, plan))
    assert done == "created" and len(client.automations) == 1
    assert asyncio.run(install_crash_automation(client, plan)) == ("kept", first)
    done, second = asyncio.run(install_crash_automation(client, HeartbeatPlan(silence_s=70)))
    assert done == "created" and client.deleted == [first] and list(client.automations) == [second]
    twice = FakeClient([crash_automation(plan), crash_automation(plan)])
    assert asyncio.run(install_crash_automation(twice, plan))[0] == "created" and len(twice.automations) == 1
    assert all(a.name == AUTOMATION_NAME for a in twice.automations.values())


def test_the_comparison_ignores_the_order_the_server_returns_sets_in():
    wanted = crash_automation(HeartbeatPlan())
    shuffled = wanted.model_copy(update={"trigger": wanted.trigger.model_copy(
        update={"expect": set(reversed(sorted(wanted.trigger.expect)))})})
    assert same_automation(shuffled, wanted)
    assert not same_automation(crash_automation(HeartbeatPlan(silence_s=61)), wanted)


def test_workers_creating_it_at_the_same_moment_all_keep_the_same_copy():
    plan = HeartbeatPlan()
    client = FakeClient()
    client.racing = [crash_automation(plan)]
    done, kept = asyncio.run(install_crash_automation(client, plan))
    assert done == "created" and list(client.automations) == [kept]
    assert kept == min(client.automations, key=str)
    # the racing worker, running the same steps, keeps that copy too (and its delete of ours finds it gone)
    assert asyncio.run(install_crash_automation(client, plan)) == ("kept", kept)
