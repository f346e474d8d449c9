"""One release, one thread of the worker's process: start it, learn when it ends from the event loop, and
interrupt it with an exception raised inside it (what a SIGTERM is to a flow run's own process)."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect_greenlight.tasks.prefect_adapter.cancellation import ThreadTerminated, forget_thread, interruptible

log = logging.getLogger(__name__)


@dataclass
class ReleaseThread:
    """`body` runs in its own daemon thread; `done` resolves on the event loop that started it."""

    name: str
    body: Callable[[], None]
    interrupted_by: str | None = None
    error: BaseException | None = None
    _thread: threading.Thread | None = None
    _done: asyncio.Future | None = field(default=None, repr=False)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()

        def run() -> None:
            try:
                self.body()
            except BaseException as exc:  # noqa: BLE001 - reported by the worker, which marks the run
                self.error = exc
            finally:
                forget_thread(threading.get_ident())
                loop.call_soon_threadsafe(lambda: self._done.done() or self._done.set_result(None))

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()

    @property
    def ident(self) -> int:
        return self._thread.ident if self._thread else 0

    def alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    async def wait(self, timeout_s: float | None = None) -> bool:
        """True when the thread has ended (within `timeout_s`)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._done), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    def interrupt(self, kind: type[ThreadTerminated]) -> bool:
        """Raise `kind` inside the thread at its next bytecode, unless it rolls back now or was interrupted before
        (then False). A thread blocked in a system call sees it when the call returns: every wait of a release
        polls in short sleeps, and every Kubernetes and Prefect call has a timeout."""
        ident = self.ident
        if not self.alive():
            return False

        def send() -> None:
            done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(kind))
            if done != 1:  # 0: the thread has gone; >1 cannot happen for one ident, but undo it as CPython asks
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
                raise RuntimeError(f"thread {self.name} could not be interrupted ({done})")

        try:
            sent = interruptible(ident, send)
        except RuntimeError as exc:
            log.warning("%s", exc)
            return False
        if sent:
            self.interrupted_by = kind.intent
        return sent
