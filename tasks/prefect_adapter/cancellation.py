"""Cancel means abort: a release cancelled from the Prefect UI or `prefect flow-run cancel` (its flow run set to
CANCELLING) undoes its changes, verified, exactly as a failure does, and then ends Cancelled.

How Prefect 3 delivers a cancellation to a flow run that a process worker started (prefect.runner's
CancellationManager): the worker sees the run CANCELLING, sends the intent "cancel" over its control channel to the
run's process (prefect._internal.control_listener records it), then SIGTERM. The engine's SIGTERM handler
(prefect.utilities.engine.capture_sigterm) raises `prefect.exceptions.TerminationSignal`, a BaseException, in the
main thread, wherever the release is: polling for readiness, paused for an approval, in the post-switch window.
The worker then waits **30 s** (fixed in prefect.runner._cancellation_manager) for the process to exit before it
SIGKILLs it, and sets the run Cancelled itself. `on_cancellation` hooks run in the worker's process after the
kill: too late, and without the release's undo stack, to roll anything back.

So the flows catch the TerminationSignal, ask `cancel_requested` whether it is a cancel, unwind their undo stack
with further SIGTERMs deferred (`sigterm_deferred`), record the outcome `cancelled` and re-raise: the engine and
the worker then end the run Cancelled. A SIGTERM that is not a cancel (the worker shutting down, a reschedule) is
left as before: the run ends Crashed and its Lease lets a re-run converge.

A cancel can also surface first as an ordinary error: a pause asked for just after the run went CANCELLING is
refused ("Received non-paused state from API: Cancelling"). `await_cancel` then waits for the worker's SIGTERM
(PREFECT_WORKER_CANCELLATION_POLL_SECONDS, 10 s by default, bounds its arrival), so that the cancel takes the one
path above; without a worker (a CLI run cancelled in the UI) it raises the TerminationSignal itself after
CANCEL_WAIT_S, with the intent "cancel", and the engine ends the run Cancelled.

In a greenlight worker (worker/: releases run in threads of one process) there is no SIGTERM per run and the
control listener's intent is one per process. The worker raises a `ThreadTerminated` in the release's thread
instead (`ThreadCancel` for a cancel, `ThreadHandover` when it shuts down), which carries its own intent.
`interruptible` tells the worker whether the thread may be interrupted now: never while it rolls back
(`sigterm_deferred`), never twice. After the rollback of a cancel, `ending_cancelled` turns the re-raised
ThreadCancel into the flow's returned Cancelled state, so the engine itself ends the run Cancelled.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import TerminationSignal
from prefect.states import Cancelled

from prefect_greenlight.tasks.decisions.undo import CANCEL_STATES, cancel_means_undo
from prefect_greenlight.tasks.errors import CancelRequested
from prefect_greenlight.tasks.prefect_adapter.private_api import cancel_intent, record_cancel_intent

log = logging.getLogger(__name__)
T = TypeVar("T")
CANCEL_WAIT_S = 20.0
CANCEL_REASON = "the flow run was cancelled in Prefect (UI Cancel or `prefect flow-run cancel`)"


class ThreadTerminated(TerminationSignal):
    """Raised by a greenlight worker inside one release's thread (PyThreadState_SetAsyncExc instantiates the class
    without arguments). `intent` plays the part of the control listener's per-process intent."""

    intent: str = ""

    def __init__(self) -> None:
        super().__init__(signal.SIGTERM)


class ThreadCancel(ThreadTerminated):
    """The run was cancelled in Prefect: roll back, then end Cancelled."""

    intent = "cancel"


class ThreadHandover(ThreadTerminated):
    """The worker shuts down and the release did not end within its grace: stop where it is, leave the Lease so
    that a re-run converges (like a reschedule: no rollback)."""

    intent = "relinquish"


# Threads of a greenlight worker that must not be interrupted (now or any more): ident -> why.
_UNINTERRUPTIBLE: dict[int, str] = {}
_GUARD = threading.Lock()


def interruptible(ident: int, interrupt: Callable[[], None]) -> bool:
    """For the worker: call `interrupt()` (which raises in thread `ident`) unless the thread rolls back now or was
    interrupted already; True when it was called. At most one interruption per thread, ever."""
    with _GUARD:
        if ident in _UNINTERRUPTIBLE:
            return False
        _UNINTERRUPTIBLE[ident] = "interrupted"
        interrupt()
        return True


def forget_thread(ident: int) -> None:
    """For the worker: the thread's release has ended (thread idents are reused)."""
    with _GUARD:
        _UNINTERRUPTIBLE.pop(ident, None)


def _claim(why: str) -> bool:
    """This thread takes its own cancel or starts its rollback: no interruption after this. False when the worker
    has already interrupted it (the exception is on its way)."""
    with _GUARD:
        if threading.get_ident() in _UNINTERRUPTIBLE:
            return False
        _UNINTERRUPTIBLE[threading.get_ident()] = why
        return True


def _is_termination(exc: BaseException) -> bool:
    return isinstance(exc, TerminationSignal)


def _intent() -> str | None:
    """The intent the worker's runner delivered before its SIGTERM (Prefect-internal; None where it is missing)."""
    return cancel_intent()


def _run_state() -> str | None:
    """The current flow run's state type as the API shows it now (None outside a run or when unreadable)."""
    try:
        ctx = FlowRunContext.get()
        if ctx is None or ctx.flow_run is None:
            return None
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(ctx.flow_run.id).state
        return state.type.value if state else None
    except Exception as exc:  # noqa: BLE001 - unknown: only an explicit intent then counts
        log.warning("could not read the flow run's state: %s", exc)
        return None


def cancel_requested(exc: BaseException) -> CancelRequested | None:
    """A CancelRequested when `exc` is Prefect cancelling this run (then the caller undoes and re-raises `exc`)."""
    if not _is_termination(exc):
        return None
    intent = exc.intent if isinstance(exc, ThreadTerminated) else _intent()
    if cancel_means_undo(True, intent, None if intent else _run_state()):
        return CancelRequested(CANCEL_REASON)
    return None


def await_cancel(wait_s: float = CANCEL_WAIT_S) -> None:
    """Called when a release step failed: if the run is being cancelled, that failure is the cancel arriving early.
    Wait for the worker's SIGTERM (raised here as TerminationSignal); without one, raise it here. Returns at once
    when the run is not cancelling (an ordinary failure)."""
    if _intent() is None and _run_state() not in CANCEL_STATES:
        return
    if threading.current_thread() is not threading.main_thread():  # a greenlight worker's thread
        if _claim("cancel taken"):
            raise ThreadCancel()
        time.sleep(wait_s)  # the worker's ThreadCancel arrives within a few bytecodes
        raise ThreadCancel()
    deadline = time.monotonic() + wait_s
    while _intent() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # the worker's SIGTERM raises TerminationSignal here
    if _intent() is None:  # no worker delivered the cancel: record it as one would, so the run ends Cancelled
        record_cancel_intent()
    raise TerminationSignal(signal.SIGTERM)


@contextmanager
def sigterm_deferred() -> Iterator[None]:
    """While a rollback runs, a further SIGTERM is logged and ignored instead of interrupting it half-way (the
    worker's SIGKILL after its grace period still ends the process)."""
    if threading.current_thread() is not threading.main_thread():  # a greenlight worker's thread
        _claim("rolling back")
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def _defer(signum, frame) -> None:
        log.warning("SIGTERM while rolling back: finishing the rollback first")

    signal.signal(signal.SIGTERM, _defer)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def ending_cancelled(release: Callable[[], T]) -> T | Any:
    """Run a release flow's body; a ThreadCancel that the body re-raised after its rollback becomes the flow's
    returned Cancelled state (the engine then ends the run Cancelled, not Crashed). Anything else passes."""
    try:
        return release()
    except ThreadCancel:
        return Cancelled(message=f"{CANCEL_REASON}; rolled back (see the release report)")
