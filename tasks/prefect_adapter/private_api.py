"""Every use greenlight makes of a private part of Prefect, in one place (pyproject.toml supports
`prefect>=3.8.8,<4`; `make test` runs both ends). Each use has a shape check (`SHAPES`, tested by
tests/unit/test_private_api.py on both Prefect versions) and a fallback that is safe when the shape is gone:

| use | what for | fallback when the shape changed |
|---|---|---|
| `prefect.flow_engine._send_heartbeats(join_on_exit=)` | a run's end does not wait up to 1 s for the heartbeat thread | left unpatched: each run ends up to 1 s later |
| `prefect._internal.control_listener.get_intent` | was this SIGTERM a cancel (roll back) or a shutdown (leave) | `None`: the run's state in the API decides |
| `prefect._internal.control_listener._set_intent` | a cancelled run without a worker ends Cancelled, not Crashed | not set: that run ends Crashed (its rollback has happened either way) |
| `BaseWorker._work_pool`, `._logger`, `._runs_task_group` | the greenlight worker's pool, logger, and a background loop | `None` / module logger / the loop is not started (see below) |
| `BaseWorker._propose_crashed_state`, `._mark_flow_run_as_cancelled` | a run's final state after its thread ended | the public `client.set_flow_run_state(..., force=True)` |
| `BaseWorker._cancel_run` (overridden) | a cancel reaches the release's thread at once | the worker's own cancel poll (every 2 s) delivers it |

Nothing else in greenlight imports `prefect._internal` or reads a `BaseWorker._` attribute
(tests/unit/test_private_api.py checks the source tree)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import prefect.flow_engine as engine
from prefect.states import Cancelled, Crashed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shape:
    """One private thing greenlight uses: where it lives, and the parameters it must take."""

    module: str
    attribute: str  # dotted below the module: "BaseWorker._cancel_run"
    parameters: tuple[str, ...] = ()  # names its signature must have ("" checks presence only)
    fallback: str = ""

    def find(self) -> Any | None:
        """The object, or None where this Prefect lacks it."""
        try:
            target: Any = __import__(self.module, fromlist=["_"])
            for part in self.attribute.split("."):
                target = getattr(target, part)
            return target
        except (ImportError, AttributeError):
            return None

    def problem(self) -> str | None:
        """None when this Prefect has the shape; else what differs."""
        found = self.find()
        if found is None:
            return f"{self.module}.{self.attribute} is missing ({self.fallback})"
        if self.parameters:
            have = set(inspect.signature(found).parameters)
            missing = [p for p in self.parameters if p not in have]
            if missing:
                return f"{self.module}.{self.attribute} lacks parameters {missing} ({self.fallback})"
        return None


HEARTBEATS = Shape("prefect.flow_engine", "_send_heartbeats", ("join_on_exit",),
                   "each run ends up to 1 s later")
GET_INTENT = Shape("prefect._internal.control_listener", "get_intent", (), "the run's API state decides")
SET_INTENT = Shape("prefect._internal.control_listener", "_set_intent", ("value",),
                   "a cancelled run without a worker ends Crashed")
PROPOSE_CRASHED = Shape("prefect.workers.base", "BaseWorker._propose_crashed_state", ("flow_run", "message"),
                        "set_flow_run_state(Crashed, force=True)")
MARK_CANCELLED = Shape("prefect.workers.base", "BaseWorker._mark_flow_run_as_cancelled",
                       ("flow_run", "state_updates"), "set_flow_run_state(Cancelled, force=True)")
CANCEL_RUN = Shape("prefect.workers.base", "BaseWorker._cancel_run", ("flow_run_id",),
                   "the greenlight worker's cancel poll delivers the cancel")
# Attributes BaseWorker sets in __init__/setup (checked on an instance by the tests, not here).
WORKER_ATTRIBUTES = ("_work_pool", "_logger", "_runs_task_group")
SHAPES = (HEARTBEATS, GET_INTENT, SET_INTENT, PROPOSE_CRASHED, MARK_CANCELLED, CANCEL_RUN)


def heartbeats_not_joined() -> bool:
    """Make the flow engine's heartbeat context not join its thread (a daemon that sleeps in 1-second slices and
    ends itself at its next one); True when in effect. Idempotent. Heartbeats are still sent while the run runs."""
    original = getattr(engine, "_send_heartbeats", None)
    if original is None:
        return False
    if getattr(original, "greenlight_unjoined", False):
        return True
    if HEARTBEATS.problem():
        log.debug("%s: left as it is", HEARTBEATS.problem())
        return False

    def unjoined(flow_engine, join_on_exit: bool = True):
        return original(flow_engine, join_on_exit=False)

    unjoined.greenlight_unjoined = True  # type: ignore[attr-defined]
    engine._send_heartbeats = unjoined
    return True


def cancel_intent() -> str | None:
    """The intent the worker's runner sent this process before its SIGTERM ("cancel", ...); None where unknown."""
    get_intent = GET_INTENT.find()
    if get_intent is None:
        return None
    try:
        return get_intent()
    except Exception:  # noqa: BLE001 - unknown: the API state decides
        return None


def record_cancel_intent() -> bool:
    """Record "cancel" as the worker's runner would, so the engine ends this run Cancelled; False where it cannot."""
    set_intent = SET_INTENT.find()
    if set_intent is None:
        return False
    try:
        set_intent("cancel")
        return True
    except Exception as exc:  # noqa: BLE001 - then the run ends Crashed; the rollback has happened either way
        log.warning("could not record the cancel intent: %s", exc)
        return False


# ------------------------------------------------------------------------------------------- BaseWorker internals
def worker_pool(worker: Any) -> Any | None:
    """The worker's work pool as BaseWorker read it in setup (id, name, type); None where it has none."""
    return getattr(worker, "_work_pool", None)


def worker_pool_name(worker: Any) -> str | None:
    return getattr(worker_pool(worker), "name", None)


def worker_logger(worker: Any) -> logging.Logger | logging.LoggerAdapter:
    return getattr(worker, "_logger", None) or log


def start_in_worker(worker: Any, loop: Callable[[], Awaitable[None]]) -> bool:
    """Start `loop` in the worker's task group of runs (it ends with the worker); False where there is none."""
    group = getattr(worker, "_runs_task_group", None)
    if group is None:
        worker_logger(worker).warning("no task group of runs on this Prefect worker: %s not started", loop.__name__)
        return False
    group.start_soon(loop)
    return True


async def mark_crashed(worker: Any, flow_run: Any, message: str) -> None:
    if PROPOSE_CRASHED.problem() is None:
        await worker._propose_crashed_state(flow_run, message)
        return
    await worker.client.set_flow_run_state(flow_run.id, Crashed(message=message), force=True)


async def mark_cancelled(worker: Any, flow_run: Any, message: str) -> None:
    if MARK_CANCELLED.problem() is None:
        await worker._mark_flow_run_as_cancelled(flow_run, {"message": message})
        return
    await worker.client.set_flow_run_state(flow_run.id, Cancelled(message=message), force=True)


async def base_cancel_run(worker_class: type, worker: Any, flow_run_id: Any) -> None:
    """BaseWorker's own `_cancel_run` for a run that is not one of greenlight's threads (a no-op where gone)."""
    base = super(worker_class, worker)
    if hasattr(base, "_cancel_run"):
        await base._cancel_run(flow_run_id)
