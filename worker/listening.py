"""Pick-up on events, the I/O: the greenlight worker's subscription to Prefect's event stream and the loop that runs
BaseWorker's fetch-and-submit when an event wakes it (the decisions are worker/pickup.py).

Two loops in the worker's task group. `listen` subscribes (`prefect.events.clients.get_events_subscriber`, the
websocket `/api/events/out`, on Prefect's OSS server and Cloud alike) and wakes the other for each event that
matters; when the stream fails or ends it logs a warning and subscribes again after a backoff, forever: the poll
picks runs up meanwhile, and the worker never stops for it. `pick_up` runs one fetch per wake-up: every event that
arrives during a fetch is served by the next one. Both end within IDLE_S once the worker is torn down, as its other
loops do, cancelled or not (`prefect worker start --run-once` tears down without cancelling them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
from prefect.events.clients import get_events_subscriber

from prefect_greenlight.worker.pickup import (
    Backoff,
    RunEvent,
    after_fetch,
    next_fetch_in,
    pickup_filter,
    wakes_pickup,
    woken,
)

# Prefect's subscriber reconnects by itself first (no delay for two attempts, then 1 s); then Backoff decides.
RECONNECTS = 2
IDLE_S = 1.0  # how soon the loops see that the worker was torn down


def run_event(event: Any) -> RunEvent:
    return RunEvent(event.event, event.resource.id, event.resource.get("prefect.state-type"),
                    frozenset(related.id for related in event.related))


class EventPickup:
    """`pool_id()`: the worker's pool id once known (None before BaseWorker synced); `fetch()`: BaseWorker's
    fetch-and-submit, returning the ids of the runs it is submitting; `held()`: the ids of runs already running here;
    `running()`: False once the worker is torn down; `log()`: the worker's logger now."""

    def __init__(self, pool_id: Callable[[], str | None], fetch: Callable[[], Awaitable[Iterable[str]]],
                 held: Callable[[], Iterable[str]], running: Callable[[], bool], log: Callable[[], logging.Logger | Any],
                 backoff: Backoff = Backoff(), subscriber: Callable[..., Any] = get_events_subscriber) -> None:
        self._pool_id, self._fetch, self._held, self._running = pool_id, fetch, held, running
        self._log, self._backoff, self._subscriber = log, backoff, subscriber
        self._woken = asyncio.Event()
        self._woken_runs: set[str] = set()
        self.fetches = 0
        self.subscriptions = 0

    async def listen(self) -> None:
        failures = 0
        while self._running():
            pool_id = self._pool_id()
            if pool_id is None:
                await anyio.sleep(0.2)
                continue
            since = time.monotonic()
            try:
                await self._subscribe(pool_id)
                why = "the event stream ended"
            except Exception as exc:  # noqa: BLE001 - any failure: warn, back off, subscribe again
                why = f"{type(exc).__name__}: {exc}"
            if not self._running():
                return
            failures = self._backoff.failures_after(failures, time.monotonic() - since)
            delay = self._backoff.delay(failures)
            self._log().warning("pick-up on events: %s; the poll picks runs up meanwhile; subscribing again in %.1f s",
                                why[:500], delay)
            deadline = time.monotonic() + delay
            while self._running() and time.monotonic() < deadline:
                await anyio.sleep(min(IDLE_S, delay))

    async def _subscribe(self, pool_id: str) -> None:
        async with self._subscriber(filter=pickup_filter(pool_id), reconnection_attempts=RECONNECTS) as events:
            self.subscriptions += 1
            self.wake(None)  # runs created while not subscribed
            self._log().info("pick-up on events: subscribed to the Scheduled runs of pool %s", pool_id)
            with anyio.CancelScope() as scope:
                watcher = asyncio.ensure_future(self._cancel_when_torn_down(scope))
                try:
                    async for event in events:
                        found = run_event(event)
                        if wakes_pickup(found, pool_id):
                            self.wake(found.flow_run_id)
                finally:
                    watcher.cancel()

    async def _cancel_when_torn_down(self, scope: anyio.CancelScope) -> None:
        while self._running():
            await anyio.sleep(IDLE_S)
        scope.cancel()

    def wake(self, flow_run_id: str | None) -> None:
        if flow_run_id:
            self._woken_runs.add(flow_run_id)
        self._woken.set()

    async def pick_up(self) -> None:
        waiting: dict[str, int] = {}
        while self._running():
            delay = next_fetch_in(waiting)
            with anyio.move_on_after(IDLE_S if delay is None else delay):
                await self._woken.wait()
            if delay is None and not self._woken.is_set():
                continue  # idle: look at running() again
            self._woken.clear()
            waiting = woken(waiting, self._woken_runs)
            self._woken_runs.clear()
            try:
                self.fetches += 1
                taken = set(await self._fetch())
            except Exception as exc:  # noqa: BLE001 - the poll, or the next event, tries again
                self._log().warning("pick-up on events: could not fetch the pool's runs: %s", exc)
                taken = set()
            waiting = after_fetch(waiting, taken | set(self._held()))
