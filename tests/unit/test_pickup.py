"""Pick-up on events (worker/pickup.py, worker/listening.py): which events wake the worker, the server-side filter
as Prefect's server applies it, fetching again for a run the fetch did not return yet, the backoff, and the two
loops with a fake event stream: a failing stream is subscribed again and never raises."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest
from prefect.events.filters import EventOccurredFilter
from prefect.server.events.filters import EventFilter as ServerEventFilter
from prefect.server.events.schemas.events import ReceivedEvent

from prefect_greenlight.worker.listening import IDLE_S, EventPickup, run_event
from prefect_greenlight.worker.pickup import (
    FOLLOW_UPS_S,
    Backoff,
    RunEvent,
    after_fetch,
    next_fetch_in,
    pickup_filter,
    wakes_pickup,
    woken,
)

POOL = "6f1c6b4e-0000-4000-8000-000000000001"
OTHER_POOL = "6f1c6b4e-0000-4000-8000-000000000002"
RUN = "0b7e1f4a-0000-4000-8000-00000000000a"


def _event(name: str, state_type: str | None, pool: str = POOL, resource: str = f"prefect.flow-run.{RUN}") -> dict:
    """A state event as Prefect's server emits it (prefect/server/models/events.py flow_run_state_change_event)."""
    labels = {"prefect.resource.id": resource, "prefect.resource.name": "sly-fox", "prefect.run-count": "0",
              "prefect.state-name": name.rsplit(".", 1)[-1]}
    if state_type:
        labels["prefect.state-type"] = state_type
    related = [{"prefect.resource.id": f"prefect.flow.{uuid4()}", "prefect.resource.role": "flow"},
               {"prefect.resource.id": f"prefect.work-queue.{uuid4()}", "prefect.resource.role": "work-queue"},
               {"prefect.resource.id": f"prefect.work-pool.{pool}", "prefect.resource.role": "work-pool",
                "prefect.work-pool.type": "greenlight"}]
    return {"occurred": datetime.now(timezone.utc).isoformat(), "event": name, "resource": labels,
            "related": related, "id": str(uuid4())}


CASES = [
    ("prefect.flow-run.Scheduled", "SCHEDULED", POOL, True),        # a run created (deployment run, UI's Run)
    ("prefect.flow-run.AwaitingRetry", "SCHEDULED", POOL, True),    # a retry of a run of this pool
    ("prefect.flow-run.Late", "SCHEDULED", POOL, True),
    ("prefect.flow-run.Pending", "PENDING", POOL, False),           # taken already
    ("prefect.flow-run.Running", "RUNNING", POOL, False),
    ("prefect.flow-run.heartbeat", None, POOL, False),              # the worker's own heartbeats
    ("prefect.flow-run.Scheduled", "SCHEDULED", OTHER_POOL, False),
]


@pytest.mark.parametrize("name, state_type, pool, expected", CASES)
def test_only_scheduled_runs_of_this_pool_wake_the_pickup(name, state_type, pool, expected):
    event = run_event(ReceivedEvent.model_validate(_event(name, state_type, pool)))
    assert wakes_pickup(event, POOL) is expected
    if expected:
        assert event.flow_run_id == RUN


@pytest.mark.parametrize("name, state_type, pool, expected", CASES)
def test_the_servers_filter_lets_through_what_wakes_the_pickup(name, state_type, pool, expected):
    """The subscription's filter, as the server parses and applies it to the stream (stream.py: `excludes`), with
    the time window Prefect's subscriber sets as it connects (from a minute back, for a year)."""
    subscribed = pickup_filter(POOL)
    now = datetime.now(timezone.utc)
    subscribed.occurred = EventOccurredFilter(since=now - timedelta(minutes=1), until=now + timedelta(days=365))
    server_filter = ServerEventFilter.model_validate(subscribed.model_dump(mode="json"))
    assert server_filter.includes(ReceivedEvent.model_validate(_event(name, state_type, pool))) is expected


def test_a_scheduled_event_of_something_other_than_a_flow_run_does_not_wake():
    task = RunEvent("prefect.task-run.Scheduled", f"prefect.task-run.{RUN}", "SCHEDULED",
                    frozenset({f"prefect.work-pool.{POOL}"}))
    assert wakes_pickup(task, POOL) is False
    assert task.flow_run_id is None


def test_follow_ups_until_the_run_is_taken():
    waiting = woken({}, [RUN])
    assert waiting == {RUN: 0}
    waiting = after_fetch(waiting, taken=[])               # the event came before the run could be read
    assert next_fetch_in(waiting) == FOLLOW_UPS_S[0]
    waiting = after_fetch(waiting, taken=[RUN])           # the follow-up took it
    assert waiting == {} and next_fetch_in(waiting) is None


def test_a_run_never_taken_here_is_left_to_the_poll_after_the_follow_ups():
    waiting = woken({}, [RUN])
    delays = []
    while waiting:
        waiting = after_fetch(waiting, taken=["another-run"])
        delays.append(next_fetch_in(waiting))
    assert delays == [*FOLLOW_UPS_S, None]  # one fetch on the event, one per follow-up, then nothing


def test_a_new_event_for_a_waiting_run_starts_its_follow_ups_again_and_one_fetch_serves_all():
    waiting = woken(after_fetch(woken({}, ["a"]), taken=[]), ["b"])
    assert waiting == {"a": 1, "b": 0}
    assert next_fetch_in(waiting) == FOLLOW_UPS_S[0]
    assert after_fetch(waiting, taken=["a", "b"]) == {}


@pytest.mark.parametrize("failures, delay", [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0),
                                             (1000, 60.0)])
def test_backoff_doubles_up_to_its_cap(failures, delay):
    assert Backoff().delay(failures) == delay


def test_a_subscription_that_lasted_counts_as_a_success():
    backoff = Backoff(healthy_s=60)
    assert backoff.failures_after(5, lasted_s=0.1) == 6      # failed at once: back off further
    assert backoff.failures_after(5, lasted_s=3600) == 1     # a day's stream lost: wait the first delay only


# ------------------------------------------------------------------------------------------- the loops, with fakes
class FakeStream:
    """Subscriptions in order: an exception fails the connection, a list of events is streamed then the stream
    ends; once the plan is done, an open stream without events."""

    def __init__(self, plan: list):
        self.plan = plan
        self.filters = []

    def __call__(self, filter, reconnection_attempts):
        self.filters.append(filter)
        step = self.plan.pop(0) if self.plan else []
        return _Subscription(step)


class _Subscription:
    def __init__(self, step):
        self.step = step

    async def __aenter__(self):
        if isinstance(step := self.step, Exception):
            raise step
        return self

    async def __aexit__(self, *exc):
        return False

    def __aiter__(self):
        return self._events()

    async def _events(self):
        for event in self.step:
            await asyncio.sleep(0.01)
            yield ReceivedEvent.model_validate(event)
        if not self.step:
            await asyncio.sleep(3600)  # open and quiet


def test_a_failing_stream_is_subscribed_again_and_each_event_of_the_pool_fetches(caplog):
    stream = FakeStream([ConnectionRefusedError("server restarting"),
                         [_event("prefect.flow-run.Scheduled", "SCHEDULED")],
                         [_event("prefect.flow-run.Scheduled", "SCHEDULED", OTHER_POOL)]])
    fetched: list[float] = []

    async def fetch():
        fetched.append(asyncio.get_running_loop().time())
        return [RUN]

    async def scenario() -> EventPickup:
        pickup = EventPickup(lambda: POOL, fetch, lambda: [], lambda: True, lambda: logging.getLogger("t"),
                             backoff=Backoff(first_s=0.01, max_s=0.05), subscriber=stream)
        tasks = [asyncio.create_task(pickup.listen()), asyncio.create_task(pickup.pick_up())]
        await asyncio.sleep(0.5)
        for task in tasks:
            assert not task.done(), task  # never ends, never raises
            task.cancel()
        return pickup

    with caplog.at_level(logging.WARNING, logger="t"):
        pickup = asyncio.run(scenario())
    assert pickup.subscriptions == 3                      # refused; streamed, ended; streamed, ended; open
    assert "ConnectionRefusedError: server restarting" in caplog.text
    assert "the event stream ended" in caplog.text
    # one fetch per subscription (runs created while not subscribed) + one for this pool's event, none for the other
    assert pickup.fetches == 3 + 1
    assert all(f["any_resource"]["id"] == [f"prefect.work-pool.{POOL}"] for f in
               (x.model_dump(mode="json") for x in stream.filters))


def test_an_event_the_fetch_missed_is_fetched_for_again_and_a_failing_fetch_is_survived(caplog):
    answers = [RuntimeError("API busy"), [], [RUN]]
    calls = []

    async def fetch():
        calls.append(asyncio.get_running_loop().time())
        answer = answers.pop(0) if answers else []
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def scenario() -> None:
        pickup = EventPickup(lambda: POOL, fetch, lambda: [], lambda: True, lambda: logging.getLogger("t"))
        task = asyncio.create_task(pickup.pick_up())
        pickup.wake(RUN)
        await asyncio.sleep(FOLLOW_UPS_S[0] + FOLLOW_UPS_S[1] + 0.5)
        assert not task.done()
        task.cancel()

    with caplog.at_level(logging.WARNING, logger="t"):
        asyncio.run(scenario())
    assert "could not fetch the pool's runs: API busy" in caplog.text
    assert len(calls) == 3                                 # the event's, then two follow-ups; taken: no more
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps[0] == pytest.approx(FOLLOW_UPS_S[0], abs=0.1) and gaps[1] == pytest.approx(FOLLOW_UPS_S[1], abs=0.1)


def test_both_loops_end_by_themselves_once_the_worker_is_torn_down():
    """As the worker's other loops do: `prefect worker start --run-once` tears down without cancelling them."""
    running = [True]

    async def fetch():
        return []

    async def scenario() -> float:
        pickup = EventPickup(lambda: POOL, fetch, lambda: [], lambda: running[0], lambda: logging.getLogger("t"),
                             subscriber=FakeStream([]))  # an open, quiet stream
        tasks = [asyncio.create_task(pickup.listen()), asyncio.create_task(pickup.pick_up())]
        await asyncio.sleep(0.3)
        assert pickup.subscriptions == 1 and not any(t.done() for t in tasks)
        running[0] = False
        loop = asyncio.get_running_loop()
        torn_down = loop.time()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=IDLE_S + 2)
        return loop.time() - torn_down

    assert asyncio.run(scenario()) <= IDLE_S + 0.5
