"""The greenlight worker: a Prefect worker type (`prefect worker start --pool P --type greenlight`, or
`greenlight worker --pool P`) that runs greenlight's release flows in threads of its own process.

Prefect's process worker spawns `python -m prefect.engine` per flow run: Pending -> Running took 4.35 s through it
and 0.40 s through this worker (BENCHMARKS.md, P3w). Here greenlight's flows are imported once; each run is a thread that
calls Prefect's flow engine (`run_flow`), which records states, logs, artifacts and heartbeats as it does in a
process of its own. BaseWorker does the rest as for any worker: fetching the pool's runs, heartbeats to the UI, the
concurrency limit (`--limit`), Pending/Submitting states.

- **Pick-up**: the worker subscribes to Prefect's event stream for its pool's runs entering a SCHEDULED state (a
  run created, a retry) and runs BaseWorker's fetch-and-submit at once (worker/pickup.py, worker/listening.py); the
  poll, every POLL_S, stays as the fallback. A lost stream is subscribed again after a backoff, with a warning.

- **Cancel** (UI, `prefect flow-run cancel`): every CANCEL_POLL_S the worker reads which of its runs are
  CANCELLING and raises a ThreadCancel inside that run's thread; the release rolls back, verified, and ends
  Cancelled (tasks/prefect_adapter/cancellation.py).
- **A crashed thread** (an exception outside the flow engine, or a run left non-final) is marked Crashed.
- **Shutdown** (SIGTERM/SIGINT): no new runs; running releases get SHUTDOWN_GRACE_S to end; what still runs then
  is handed over: a ThreadHandover stops it where it is (no rollback, the Service's Lease stays) and the run is
  marked Crashed, so that a re-run converges.
- **A killed or frozen worker, on any host** (SIGKILL, OOM, SIGSTOP, a lost machine): the worker emits a
  `prefect.flow-run.heartbeat` every HEARTBEAT_S for each run whose thread it holds; the automation every
  greenlight worker installs as it starts marks a run Crashed once they stop for CRASH_AFTER_S
  (tasks/prefect_adapter/heartbeats.py). A greenlight worker starting on the same host also marks the runs of a
  dead greenlight worker Crashed at once (`orphaned`). The Lease lets their re-run converge.

Job variables other than `name` are not applied: a thread shares the worker's environment (its KUBECONFIG, its
PREFECT_* settings). Give a deployment that needs its own environment a process work pool.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import socket
import sys
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import anyio
import anyio.abc
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.flow_engine import load_flow_run, run_flow
from prefect.settings import PREFECT_WORKER_QUERY_SECONDS, temporary_settings
from prefect.states import Crashed
from prefect.workers.base import BaseJobConfiguration, BaseVariables, BaseWorker, BaseWorkerResult
from pydantic import PrivateAttr

from prefect_greenlight.tasks.prefect_adapter.cancellation import ThreadCancel, ThreadHandover
from prefect_greenlight.tasks.prefect_adapter.heartbeats import (
    emit_heartbeat,
    install_crash_automation,
    plan_from_environment,
    pool_resource,
)
from prefect_greenlight.tasks.prefect_adapter.private_api import (
    base_cancel_run,
    heartbeats_not_joined,
    mark_cancelled,
    mark_crashed,
    start_in_worker,
    worker_logger,
    worker_pool,
    worker_pool_name,
)
from prefect_greenlight.worker.decisions import LIVE_STATES, AfterThread, InfraId, after_thread, flow_import, orphaned
from prefect_greenlight.worker.listening import EventPickup
from prefect_greenlight.worker.threads import ReleaseThread


def _seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


CANCEL_POLL_S = _seconds("GREENLIGHT_WORKER_CANCEL_POLL_S", 2.0)
# Prefect's worker polls its pool every PREFECT_WORKER_QUERY_SECONDS (10 s by default: 7.2 s median Scheduled ->
# Pending measured through the process worker). Polling is one cheap read; unless that setting is given, 2 s.
POLL_S = _seconds("GREENLIGHT_WORKER_POLL_S", 2.0)
# Pick-up on events (worker/listening.py); "0" leaves only the poll.
PICKUP_EVENTS = os.environ.get("GREENLIGHT_WORKER_PICKUP_EVENTS", "1") != "0"
LIMIT = int(_seconds("GREENLIGHT_WORKER_LIMIT", 20))
SHUTDOWN_GRACE_S = _seconds("GREENLIGHT_WORKER_SHUTDOWN_GRACE_S", 60.0)
HANDOVER_WAIT_S = 20.0
HEARTBEATS = plan_from_environment(os.environ)
_FLOWS: dict[tuple[str, str], Any] = {}


def load_flow(module: str, fn: str) -> Any:
    """greenlight's flow object, imported once per worker process."""
    if (module, fn) not in _FLOWS:
        _FLOWS[(module, fn)] = getattr(importlib.import_module(module), fn)
    return _FLOWS[(module, fn)]


def execute(flow: Any, flow_run_id: UUID) -> None:
    """A release's thread: Prefect's flow engine on the run as the API holds it now."""

    heartbeats_not_joined()
    run_flow(flow, flow_run=load_flow_run(flow_run_id), return_type="state")


class GreenlightJobConfiguration(BaseJobConfiguration):
    """BaseWorker reads the run's deployment to prepare this; it keeps the deployment's entrypoint, so that `run`
    does not read the deployment once more between Pending and Running."""

    _entrypoint: str | None = PrivateAttr(default=None)

    def prepare_for_flow_run(self, flow_run: FlowRun, deployment: Any = None, *args: Any, **kwargs: Any) -> None:
        super().prepare_for_flow_run(flow_run, deployment, *args, **kwargs)
        self._entrypoint = getattr(deployment, "entrypoint", None)

    @property
    def entrypoint(self) -> str | None:
        return self._entrypoint


class GreenlightVariables(BaseVariables):
    pass


class GreenlightWorkerResult(BaseWorkerResult):
    """The end of one release's thread."""


class GreenlightWorker(BaseWorker[GreenlightJobConfiguration, GreenlightVariables, GreenlightWorkerResult]):
    type = "greenlight"
    job_configuration = GreenlightJobConfiguration
    job_configuration_variables = GreenlightVariables
    _description = ("Runs greenlight's blue-green, canary and rollback flows in threads of one long-lived process: "
                    "imported once, no process per release; cancel rolls the release back.")
    _display_name = "greenlight"
    _documentation_url = "https://pypi.org/project/prefect-greenlight/"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["limit"] = kwargs.get("limit") or LIMIT  # bounded, always
        super().__init__(*args, **kwargs)
        self._me = InfraId(socket.gethostname(), os.getpid(), uuid4().hex[:12])
        self._threads: dict[UUID, ReleaseThread] = {}
        self._names: dict[UUID, str] = {}
        self._pickup = EventPickup(self._pool_id, self._fetch_and_submit, lambda: [str(i) for i in self._threads],
                                   lambda: self.is_setup, lambda: worker_logger(self))

    async def start(self, *args: Any, **kwargs: Any) -> None:
        """BaseWorker's loops, polling every POLL_S unless PREFECT_WORKER_QUERY_SECONDS is given, with greenlight's
        shutdown on the first SIGTERM or SIGINT (whichever command started the worker: Prefect's own handler turns a
        SIGTERM into a SIGINT, which a process started in the background ignores); a second one exits at once."""
        given = "PREFECT_WORKER_QUERY_SECONDS" in os.environ
        stopping = self._on_signals(asyncio.current_task())
        try:
            with temporary_settings(updates={} if given else {PREFECT_WORKER_QUERY_SECONDS: POLL_S}):
                await super().start(*args, **kwargs)
        except asyncio.CancelledError:
            if not stopping:
                raise

    def _on_signals(self, main: asyncio.Task | None) -> list[int]:
        signals: list[int] = []

        def stop(signum: int) -> None:
            signals.append(signum)
            if len(signals) > 1:
                print("greenlight worker: second signal, exiting now", file=sys.stderr, flush=True)
                os._exit(130)
            print(f"greenlight worker: stopping; running releases ({len(self._threads)}) get {SHUTDOWN_GRACE_S:.0f} "
                  "s to end, then are handed over", file=sys.stderr, flush=True)
            if main is not None:
                main.cancel()

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, stop, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread: the caller's handlers
                pass
        return signals

    async def setup(self) -> None:
        await super().setup()
        pool = worker_pool_name(self)
        if pool is not None:
            try:
                await self._crash_orphans(pool)
            except Exception as exc:  # noqa: BLE001 - the worker still serves; a re-run's Lease takeover also ends them
                worker_logger(self).warning("could not look for runs of a dead greenlight worker: %s", exc)
            await self._install_crash_automation()
        start_in_worker(self, self._watch_cancels)
        start_in_worker(self, self._beat_loop)
        if PICKUP_EVENTS:
            start_in_worker(self, self._pickup.listen)
            start_in_worker(self, self._pickup.pick_up)

    def _pool_id(self) -> str | None:
        pool = worker_pool(self)
        return str(pool.id) if pool is not None else None

    async def _fetch_and_submit(self) -> list[str]:
        """BaseWorker's own poll body, as the poll runs it: the limit, the work queues, the Pending proposal."""
        return [str(run.id) for run in await self.get_and_submit_flow_runs()]

    # ------------------------------------------------------------------------------------------- one release
    async def run(self, flow_run: FlowRun, configuration: GreenlightJobConfiguration,
                  task_status: anyio.abc.TaskStatus | None = None) -> GreenlightWorkerResult:
        entrypoint = configuration.entrypoint
        if entrypoint is None and flow_run.deployment_id:  # a configuration BaseWorker did not prepare
            entrypoint = (await self.client.read_deployment(flow_run.deployment_id)).entrypoint
        module, fn = flow_import(entrypoint)
        flow = load_flow(module, fn) if (module, fn) in _FLOWS else await anyio.to_thread.run_sync(load_flow, module, fn)
        thread = ReleaseThread(f"greenlight {flow_run.name}", lambda: execute(flow, flow_run.id))
        thread.start()
        self._threads[flow_run.id] = thread
        self._names[flow_run.id] = flow_run.name
        self._heartbeat(flow_run.id)  # at once: a worker killed before the next beat still leaves its run armed
        infra = replace(self._me, thread=thread.ident).format()
        (task_status or anyio.TASK_STATUS_IGNORED).started(infra)
        try:
            await thread.wait()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._hand_over(flow_run, thread)
            raise
        finally:
            self._threads.pop(flow_run.id, None)
            self._names.pop(flow_run.id, None)
        await self._record_end(flow_run.id, thread)
        return GreenlightWorkerResult(status_code=0, identifier=infra)

    async def _record_end(self, flow_run_id: UUID, thread: ReleaseThread) -> None:
        flow_run = await self.client.read_flow_run(flow_run_id)
        state = flow_run.state.type.value if flow_run.state else None
        action = after_thread(state, thread.interrupted_by)
        if action is AfterThread.CANCELLED:
            await mark_cancelled(self, flow_run, "Cancelled in Prefect; the greenlight worker stopped the release "
                                                 "(see its report)")
        elif action is AfterThread.CRASHED:
            why = f"{type(thread.error).__name__}: {thread.error}" if thread.error else "no final state"
            await mark_crashed(self, flow_run, f"the release's thread ended while the run was {state}: {why}"[:2000])

    async def _hand_over(self, flow_run: FlowRun, thread: ReleaseThread) -> None:
        """The worker is shutting down: let the release end within the grace, else stop it where it is and mark
        it Crashed, saying so (no rollback: the Service's Lease and the recorded state let a re-run converge)."""
        if await thread.wait(SHUTDOWN_GRACE_S):
            await self._record_end(flow_run.id, thread)
            return
        thread.interrupt(ThreadHandover)
        await thread.wait(HANDOVER_WAIT_S)
        current = await self.client.read_flow_run(flow_run.id)
        if current.state is None or current.state.type.value not in ("COMPLETED", "FAILED", "CANCELLED"):
            message = (f"handed over: the greenlight worker shut down and the release did not end within "
                       f"{SHUTDOWN_GRACE_S:.0f} s; stopped where it was, without a rollback. Run it again: it "
                       "converges (the Service's Lease and annotations record the release)")
            await self.client.set_flow_run_state(flow_run.id, Crashed(message=message), force=True)
            self.get_flow_run_logger(flow_run).warning("%s", message)

    # ------------------------------------------------------------------------------------------- heartbeats
    async def _install_crash_automation(self) -> None:
        for problem in HEARTBEATS.problems():
            worker_logger(self).warning("heartbeats: %s (a killed worker's runs are Crashed within %.0f s)",
                                        problem.value, HEARTBEATS.crashed_within_s())
        try:
            done, automation_id = await install_crash_automation(self.client, HEARTBEATS)
            worker_logger(self).info("crash automation %s (%s): runs silent for %d s are marked Crashed", done,
                                     automation_id, HEARTBEATS.silence_s)
        except Exception as exc:  # noqa: BLE001 - the worker still serves; another worker or a restart installs it
            worker_logger(self).warning("could not install the crash automation: %s", exc)

    def _heartbeat(self, flow_run_id: UUID) -> None:
        pool = worker_pool(self)
        thread = self._threads.get(flow_run_id)
        if pool is None or thread is None or not thread.alive():
            return
        try:
            emit_heartbeat(flow_run_id, self._names.get(flow_run_id, ""), pool_resource(pool), self._me.format())
        except Exception as exc:  # noqa: BLE001 - the next beat tries again
            worker_logger(self).warning("could not emit a heartbeat: %s", exc)

    async def _beat_loop(self) -> None:
        """Every HEARTBEATS.every_s, one heartbeat per run whose thread this worker holds."""
        while self.is_setup:
            await anyio.sleep(HEARTBEATS.every_s)
            for flow_run_id in list(self._threads):
                self._heartbeat(flow_run_id)

    # ------------------------------------------------------------------------------------------- cancels
    async def _watch_cancels(self) -> None:
        """Deliver cancels: one read per CANCEL_POLL_S for all runs of this worker, whatever their number."""
        while self.is_setup:
            waiting = [run_id for run_id, t in self._threads.items() if t.interrupted_by is None]
            if waiting:
                try:
                    cancelling = await self.client.read_flow_runs(flow_run_filter=FlowRunFilter(
                        id=FlowRunFilterId(any_=waiting),
                        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CANCELLING]))))
                except Exception as exc:  # noqa: BLE001 - the next poll tries again
                    worker_logger(self).warning("could not read cancelling runs: %s", exc)
                    cancelling = []
                for flow_run in cancelling:
                    self._deliver_cancel(flow_run)
            await anyio.sleep(CANCEL_POLL_S)

    def _deliver_cancel(self, flow_run: FlowRun) -> None:
        thread = self._threads.get(flow_run.id)
        if thread is not None and thread.interrupted_by is None and thread.interrupt(ThreadCancel):
            self.get_flow_run_logger(flow_run).info("cancel delivered to the release's thread: rolling back")

    async def _cancel_run(self, flow_run_id: UUID) -> None:
        """BaseWorker's cancel hook (private; tasks/prefect_adapter/private_api.py): a cancel reaches the thread at
        once. Where a Prefect no longer calls it, `_watch_cancels` delivers the cancel within CANCEL_POLL_S."""
        if flow_run_id in self._threads:
            self._deliver_cancel(await self.client.read_flow_run(flow_run_id))
            return
        await base_cancel_run(GreenlightWorker, self, flow_run_id)

    # ------------------------------------------------------------------------------------------- a dead worker
    async def _crash_orphans(self, pool: str) -> None:
        """Runs a dead greenlight worker on this host left Running or Paused: mark them Crashed."""
        runs = await self.client.read_flow_runs(
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                any_=[StateType(s) for s in sorted(LIVE_STATES)]))))
        for flow_run in runs:
            owner = InfraId.parse(flow_run.infrastructure_pid)
            state = flow_run.state.type.value if flow_run.state else ""
            if owner is not None and orphaned(flow_run.infrastructure_pid, state, self._me, _pid_alive(owner.pid)):
                message = (f"its greenlight worker (process {owner.pid} on {owner.host}) is gone; the run's thread "
                           "died with it. A re-run converges (the Service's Lease records the release)")
                await self.client.set_flow_run_state(flow_run.id, Crashed(message=message), force=True)
                self.get_flow_run_logger(flow_run).warning("marked Crashed: %s", message)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
