"""The greenlight worker's decisions (worker/decisions.py) and its thread interruption (worker/threads.py with
tasks/prefect_adapter/cancellation.py): an exception raised inside a running release thread, at most once, never during
a rollback."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.prefect_adapter import cancellation
from prefect_greenlight.tasks.prefect_adapter.cancellation import ThreadCancel, ThreadHandover, cancel_requested
from prefect_greenlight.worker.decisions import AfterThread, InfraId, after_thread, flow_import, orphaned
from prefect_greenlight.worker.threads import ReleaseThread


@pytest.mark.parametrize("entrypoint, expected", [
    ("flows/blue_green.py:blue_green_release", ("prefect_greenlight.flows.blue_green", "blue_green_release")),
    ("/srv/greenlight/flows/canary.py:canary_release", ("prefect_greenlight.flows.canary", "canary_release")),
    ("prefect_greenlight.flows.rollback:rollback_release", ("prefect_greenlight.flows.rollback", "rollback_release")),
])
def test_greenlight_entrypoints_map_to_the_installed_flows(entrypoint, expected):
    assert flow_import(entrypoint) == expected


@pytest.mark.parametrize("entrypoint", [None, "", "my_flows.py:etl", "flows/../evil.py:x", "flows/a.py:b; rm",
                                        "os:system", "prefect_greenlight.tasks.kube.client:scale"])
def test_other_entrypoints_are_refused_naming_them(entrypoint):
    with pytest.raises(BadInput, match="not one of greenlight's flows"):
        flow_import(entrypoint)


ME = InfraId("host-a", 1, "new", 0)


def test_infrastructure_id_round_trips_and_rejects_foreign_ids():
    infra = InfraId("host-a", 4242, "abc123", 140001)
    assert InfraId.parse(infra.format()) == infra
    for other in (None, "", "4242", "greenlight:h:x:i:1", "process:h:1:i:1"):
        assert InfraId.parse(other) is None


@pytest.mark.parametrize("infra, state, alive, expected", [
    (InfraId("host-a", 77, "old", 5).format(), "RUNNING", False, True),    # its process is gone
    (InfraId("host-a", 77, "old", 5).format(), "PAUSED", False, True),     # waiting for an approval that can't come
    (InfraId("host-a", 77, "old", 5).format(), "RUNNING", True, False),    # another worker on this host, alive
    (InfraId("host-a", 1, "old", 5).format(), "RUNNING", True, True),      # pid 1 again: a restarted container
    (InfraId("host-a", 1, "new", 5).format(), "RUNNING", True, False),     # this very worker
    (InfraId("host-b", 77, "old", 5).format(), "RUNNING", False, False),   # another host: not ours to judge
    (InfraId("host-a", 77, "old", 5).format(), "COMPLETED", False, False),
    ("12345", "RUNNING", False, False),                                    # a process worker's pid
])
def test_orphaned_runs(infra, state, alive, expected):
    assert orphaned(infra, state, ME, alive) is expected


@pytest.mark.parametrize("state, interrupted, expected", [
    ("COMPLETED", None, AfterThread.NOTHING),
    ("FAILED", None, AfterThread.NOTHING),
    ("CANCELLED", "cancel", AfterThread.NOTHING),
    ("CRASHED", "cancel", AfterThread.CANCELLED),     # a flow without a rollback of its own, cancelled
    ("RUNNING", None, AfterThread.CRASHED),           # the thread died outside the engine
    ("CRASHED", "relinquish", AfterThread.NOTHING),
    (None, None, AfterThread.CRASHED),
])
def test_what_to_record_after_the_thread(state, interrupted, expected):
    assert after_thread(state, interrupted) is expected


def _run(coro):
    return asyncio.run(coro)


def test_a_running_thread_is_interrupted_once_and_sees_the_cancel_as_a_cancel():
    seen: list = []

    def body() -> None:
        try:
            while True:
                time.sleep(0.01)
        except BaseException as exc:  # noqa: BLE001 - what a release's flow does
            seen.append((type(exc), cancel_requested(exc) is not None))
            raise

    async def scenario():
        thread = ReleaseThread("t", body)
        thread.start()
        await asyncio.sleep(0.05)
        first = thread.interrupt(ThreadCancel)
        second = thread.interrupt(ThreadHandover)
        ended = await thread.wait(5)
        return first, second, ended, thread

    first, second, ended, thread = _run(scenario())
    assert (first, second, ended) == (True, False, True)
    assert seen == [(ThreadCancel, True)]
    assert thread.interrupted_by == "cancel" and isinstance(thread.error, ThreadCancel)


def test_a_handover_is_not_a_cancel():
    exc = ThreadHandover()
    assert cancel_requested(exc) is None


def test_a_thread_rolling_back_is_not_interrupted():
    rolling_back, release = threading.Event(), threading.Event()

    def body() -> None:
        with cancellation.sigterm_deferred():  # the rollback
            rolling_back.set()
            release.wait(5)

    async def scenario():
        thread = ReleaseThread("t", body)
        thread.start()
        await asyncio.to_thread(rolling_back.wait, 5)
        refused = thread.interrupt(ThreadCancel)
        release.set()
        await thread.wait(5)
        return refused, thread

    refused, thread = _run(scenario())
    assert refused is False and thread.error is None and thread.interrupted_by is None


def test_ending_cancelled_turns_the_reraised_cancel_into_a_cancelled_state():
    def release():
        raise ThreadCancel()

    state = cancellation.ending_cancelled(release)
    assert state.is_cancelled() and "rolled back" in state.message
    with pytest.raises(ThreadHandover):
        cancellation.ending_cancelled(lambda: (_ for _ in ()).throw(ThreadHandover()))
    assert cancellation.ending_cancelled(lambda: {"outcome": "released"}) == {"outcome": "released"}


def _configuration():
    from prefect_greenlight.worker.worker import GreenlightJobConfiguration, GreenlightWorker

    template = GreenlightWorker.get_default_base_job_template()["job_configuration"]
    return GreenlightJobConfiguration.model_validate({**template, "env": {}, "labels": {}, "command": None})


def test_the_job_configuration_keeps_the_deployments_entrypoint_for_the_run():
    """Prepared by BaseWorker as `resolve_for_flow_run` does (keywords), it saves `run` reading the deployment again;
    prepared without a deployment it has none, and `run` reads it."""
    from uuid import uuid4

    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.responses import DeploymentResponse

    flow_id = uuid4()
    flow_run = FlowRun(flow_id=flow_id, name="sly-fox")
    deployment = DeploymentResponse(id=uuid4(), name="blue-green", flow_id=flow_id,
                                    entrypoint="flows/blue_green.py:blue_green_release")
    prepared = _configuration()
    prepared.prepare_for_flow_run(flow_run=flow_run, deployment=deployment, flow=None, work_pool=None,
                                  worker_name="w", worker_id=None)
    assert prepared.entrypoint == "flows/blue_green.py:blue_green_release"
    assert flow_import(prepared.entrypoint) == ("prefect_greenlight.flows.blue_green", "blue_green_release")
    bare = _configuration()
    bare.prepare_for_flow_run(flow_run)
    assert bare.entrypoint is None
