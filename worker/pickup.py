"""Pick-up on events, the pure part: which of Prefect's events mean a run of the worker's pool may be ready to
take, when to fetch again, and how long to wait before subscribing again after the event stream failed.

The worker's poll (`GREENLIGHT_WORKER_POLL_S`, 2 s) made a new run wait 1.46 s median before it was even seen
(BENCHMARKS.md, P3w). The server emits `prefect.flow-run.<state name>` for every state a run takes, the first one
(`Scheduled`) as the run is created, with the run's work pool among the related resources
(`prefect.work-pool.<id>`, role `work-pool`; prefect/server/models/events.py `flow_run_state_change_event`, 3.8 and
3.9 alike). The worker subscribes to those of its pool whose state type is SCHEDULED (`Scheduled`, `AwaitingRetry`,
`Late`, ...) and, on each, runs BaseWorker's own fetch-and-submit at once: the worker's limit, its work queues and
Prefect's Pending proposal decide as they do for the poll, so a run is still taken by exactly one worker.

The server publishes the event inside the transaction that sets the state: the stream can deliver it a moment
before the run can be read. A run an event named that the fetch did not return is fetched for again after
FOLLOW_UPS_S (one fetch serves every run waiting; a run another worker took, or one scheduled later, is dropped
after them: the poll owns it from then on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter, EventResourceFilter

FLOW_RUN_EVENT = "prefect.flow-run."
FLOW_RUN_RESOURCE = "prefect.flow-run."
SCHEDULED = "SCHEDULED"
STATE_TYPE_LABEL = "prefect.state-type"
# Delays of the fetches after the one an event starts, each from the previous fetch (seconds).
FOLLOW_UPS_S = (0.25, 1.0)


def pool_resource_id(pool_id: str) -> str:
    return f"prefect.work-pool.{pool_id}"


@dataclass(frozen=True)
class RunEvent:
    """What the decision reads of one Prefect event."""

    name: str
    resource_id: str
    state_type: str | None
    related_ids: frozenset[str]

    @property
    def flow_run_id(self) -> str | None:
        return self.resource_id.removeprefix(FLOW_RUN_RESOURCE) if self.resource_id.startswith(
            FLOW_RUN_RESOURCE) else None


def wakes_pickup(event: RunEvent, pool_id: str) -> bool:
    """A state event of a flow run of this pool, into a SCHEDULED state: a run to take now or at its time.
    Heartbeats, Pending/Running/... states and other pools' runs are not (the server's filter already leaves them
    out; this is the check that does not depend on it)."""
    return (event.name.startswith(FLOW_RUN_EVENT) and event.flow_run_id is not None
            and event.state_type == SCHEDULED and pool_resource_id(pool_id) in event.related_ids)


def pickup_filter(pool_id: str) -> EventFilter:
    """The server-side filter of the subscription: flow-run state events into a SCHEDULED state, related to this
    pool (BaseWorker's cancel observer filters its pool the same way)."""
    return EventFilter(event=EventNameFilter(prefix=[FLOW_RUN_EVENT]),
                       resource=EventResourceFilter(labels={STATE_TYPE_LABEL: SCHEDULED}),
                       any_resource=EventAnyResourceFilter(id=[pool_resource_id(pool_id)]))


# ------------------------------------------------------------------------------------------- fetching again
def woken(waiting: Mapping[str, int], run_ids: Iterable[str]) -> dict[str, int]:
    """Runs waiting to be taken -> fetches done for them; runs named by new events start again at 0."""
    return {**waiting, **{run_id: 0 for run_id in run_ids}}


def after_fetch(waiting: Mapping[str, int], taken: Iterable[str], follow_ups: int = len(FOLLOW_UPS_S)) -> dict[str, int]:
    """After one fetch: the runs still waiting (not taken by this worker, follow-ups left)."""
    gone = set(taken)
    return {run_id: done + 1 for run_id, done in waiting.items() if run_id not in gone and done < follow_ups}


def next_fetch_in(waiting: Mapping[str, int], follow_ups_s: tuple[float, ...] = FOLLOW_UPS_S) -> float | None:
    """Seconds until the next follow-up fetch; None: wait for an event (the poll runs on its own)."""
    if not waiting:
        return None
    done = min(waiting.values())
    return follow_ups_s[min(max(done, 1), len(follow_ups_s)) - 1]


# ------------------------------------------------------------------------------------------- subscribing again
@dataclass(frozen=True)
class Backoff:
    """Delays before subscribing again: first_s, doubling up to max_s. A subscription that lasted healthy_s counts
    as a success: its loss starts the series again (a server restart once a day waits first_s, not max_s)."""

    first_s: float = 1.0
    max_s: float = 60.0
    healthy_s: float = 60.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return min(self.max_s, self.first_s * 2 ** min(failures - 1, 30))

    def failures_after(self, failures: int, lasted_s: float) -> int:
        """Failures in a row once a subscription that lasted `lasted_s` ended."""
        return 1 if lasted_s >= self.healthy_s else failures + 1
