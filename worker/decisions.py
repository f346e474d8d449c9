"""Pure decisions of the greenlight worker: which flow an entrypoint names, who owns a run that is still Running,
and what to record once a release's thread has ended."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from prefect_greenlight.tasks.errors import BadInput

PACKAGE = "prefect_greenlight.flows"
_FILE_ENTRYPOINT = re.compile(r"^(?:.*/)?flows/(?P<module>[a-z_][a-z0-9_]*)\.py:(?P<fn>[A-Za-z_][A-Za-z0-9_]*)$")
_MODULE_ENTRYPOINT = re.compile(r"^prefect_greenlight\.flows\.(?P<module>[a-z_][a-z0-9_]*):(?P<fn>[A-Za-z_]\w*)$")
INFRA_PREFIX = "greenlight"
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})
# A run of a dead worker that never came back to Running from these is crashed too (its thread is gone).
LIVE_STATES = frozenset({"RUNNING", "PAUSED", "PENDING", "CANCELLING"})


def flow_import(entrypoint: str | None) -> tuple[str, str]:
    """The module and function an entrypoint of greenlight's prefect.yaml names (`flows/blue_green.py:fn`, as
    `prefect deploy` records it, or the installed `prefect_greenlight.flows.blue_green:fn`). The worker imports
    greenlight's installed flows once; it runs no other code."""
    for pattern in (_FILE_ENTRYPOINT, _MODULE_ENTRYPOINT):
        found = pattern.match(entrypoint or "")
        if found:
            return f"{PACKAGE}.{found['module']}", found["fn"]
    raise BadInput(f"entrypoint {entrypoint!r} is not one of greenlight's flows (flows/<name>.py:<function>); "
                   "the greenlight worker runs only those: give this deployment a process work pool")


@dataclass(frozen=True)
class InfraId:
    """What the worker records as a run's `infrastructure_pid`: host, worker process, worker start, thread."""

    host: str
    pid: int
    instance: str
    thread: int = 0

    def format(self) -> str:
        return f"{INFRA_PREFIX}:{self.host}:{self.pid}:{self.instance}:{self.thread}"

    @classmethod
    def parse(cls, text: str | None) -> InfraId | None:
        parts = (text or "").split(":")
        if len(parts) != 5 or parts[0] != INFRA_PREFIX or not parts[2].isdigit() or not parts[4].isdigit():
            return None
        return cls(parts[1], int(parts[2]), parts[3], int(parts[4]))


def orphaned(infrastructure_pid: str | None, state: str, me: InfraId, pid_alive: bool) -> bool:
    """A run in a live state whose greenlight worker on this host is gone: its process no longer exists, or it
    was this very process id before a restart (a container's worker is pid 1 every time). Runs of other hosts
    are left to their own workers and to the heartbeat automation."""
    owner = InfraId.parse(infrastructure_pid)
    if owner is None or state not in LIVE_STATES or owner.host != me.host or owner.instance == me.instance:
        return False
    return owner.pid == me.pid or not pid_alive


class AfterThread(str, Enum):
    NOTHING = "nothing"          # the engine recorded the outcome
    CANCELLED = "cancelled"      # a cancel was delivered and the engine recorded something else (a Crashed)
    CRASHED = "crashed"          # the thread ended and the run is still not final


def after_thread(state: str | None, interrupted_by: str | None) -> AfterThread:
    """What the worker records once a release's thread has ended: the run's state as the API shows it and the
    interruption the worker delivered ("cancel", "relinquish" or None)."""
    if interrupted_by == "cancel" and state != "CANCELLED":
        return AfterThread.CANCELLED
    if state in FINAL_STATES:
        return AfterThread.NOTHING
    return AfterThread.CRASHED
