"""Watch-based waiting: a tiny informer (list, then watch from that resourceVersion, re-list after 410 Gone or a
failure) per kind, all sharing one Condition so a waiter re-decides the moment anything changes.

Waiting code stays a pure decision over cache snapshots: `wait_for(decide, deadline)` calls `decide()` on every
change (and at least once a second, for time-based graces) until it returns something other than None.

A watch can go silent without closing (a hung apiserver, a half-dead connection): each watch asks the apiserver
to end it after WATCH_TIMEOUT_S and the client gives up WATCH_GRACE_S later, so a stalled stream is noticed within
WATCH_TIMEOUT_S + WATCH_GRACE_S and replaced; a watch that ended normally resumes from the last resourceVersion
without re-listing. Failures back off (watch_backoff) and are reported (Watcher.health) so a wait that times out
can say the apiserver was unreachable rather than blame the workload.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from prefect_greenlight.tasks.kube.client import TIMEOUT

log = logging.getLogger(__name__)
T = TypeVar("T")
WATCH_TIMEOUT_S = 15
WATCH_GRACE_S = 5
LIST_PAGE = 500  # objects per page of the initial list


def watch_backoff(failures: int) -> float:
    """Seconds to wait after `failures` consecutive failures (>= 1): 0.25, 0.5, 1, then 2 s at most, so a
    returning apiserver is seen within 2 s and a dead one is not hammered."""
    return min(2.0, 0.25 * 2 ** (max(1, failures) - 1))


def health_note(failing: list[tuple[str, str, float]], now: float) -> str:
    """One line about the watches that are failing: (what, last error, failing since). "" when none is."""
    if not failing:
        return ""
    parts = [f"{what} for {now - since:.0f} s ({error})" for what, error, since in sorted(failing)]
    return f"apiserver unreachable or not answering: {len(failing)} watch(es) failing: " + "; ".join(parts)


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): re-list."""


class Cache:
    """Objects of one list call (namespace + selectors), kept current by a watch in a daemon thread."""

    def __init__(self, list_fn: Callable[..., Any], watcher: "Watcher", **kwargs: Any):
        self._list_fn, self._kwargs, self._watcher = list_fn, kwargs, watcher
        self.name = list_fn.__name__.replace("list_namespaced_", "").replace("list_", "")
        self._changed = watcher.changed
        self._objects: dict[str, dict] = {}
        self._stop = threading.Event()
        self.synced = threading.Event()
        self.last_error: Exception | None = None
        self.failing_since: float | None = None  # monotonic; None while healthy
        self.started_at = time.monotonic()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch-{list_fn.__name__}")

    def start(self) -> "Cache":
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            try:
                resp.shutdown()  # wakes the blocked read at once
            except Exception:  # noqa: BLE001
                pass

    def items(self) -> list[dict]:
        with self._changed:
            return list(self._objects.values())

    def _notify(self) -> None:
        with self._changed:
            self._watcher.bump()

    def _healthy(self) -> None:
        self.failing_since = None

    def _relist(self) -> str:
        """The initial (or post-410) list, in pages of LIST_PAGE: one consistent snapshot, whatever its size."""
        objects, token = {}, None
        while True:
            page = {"limit": LIST_PAGE, **({"_continue": token} if token else {})}
            resp = self._list_fn(**self._kwargs, **page, _preload_content=False, _request_timeout=TIMEOUT)
            body = json.loads(resp.data)
            objects.update((o["metadata"]["uid"], o) for o in body.get("items", []))
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                break
        with self._changed:
            self._objects = objects
            self.synced.set()
            self._healthy()
            self._watcher.bump()
        return body["metadata"]["resourceVersion"]

    def _watch_from(self, rv: str) -> str:
        """Apply events from `rv` until the apiserver ends the watch; returns the last resourceVersion seen."""
        resp = self._list_fn(**self._kwargs, watch=True, resource_version=rv, allow_watch_bookmarks=True,
                             timeout_seconds=WATCH_TIMEOUT_S, _preload_content=False,
                             _request_timeout=(TIMEOUT[0], WATCH_TIMEOUT_S + WATCH_GRACE_S))
        self._resp = resp
        try:
            self._healthy()
            for line in iter_resp_lines(resp):
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise ApiException(status=obj.get("code") or 0, reason=obj.get("message") or "watch error")
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    with self._changed:
                        if kind == "DELETED":
                            self._objects.pop(obj["metadata"]["uid"], None)
                        else:
                            self._objects[obj["metadata"]["uid"]] = obj
                        self._watcher.bump()
                if self._stop.is_set():
                    break
        finally:
            self._resp = None
            resp.release_conn()
        return rv

    def _run(self) -> None:
        rv: str | None = None
        failures = 0
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._relist()
                rv = self._watch_from(rv)
                failures = 0
            except _Gone:
                rv = None
            except Exception as exc:  # noqa: BLE001 - connection drops, timeouts, apiserver restarts
                rv, failures = None, failures + 1
                self.last_error = exc
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                log.debug("watch %s failed (%d in a row): %s", self.name, failures, exc)
                self._notify()
                self._stop.wait(watch_backoff(failures))


class Watcher:
    """A set of caches sharing one change signal. Use as a context manager so the threads stop."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.version = 0  # bumped (under `changed`) on every change, so a waiter never misses one
        self.caches: list[Cache] = []

    def bump(self) -> None:
        """Record a change; the caller holds `changed`."""
        self.version += 1
        self.changed.notify_all()

    def health(self, now: float | None = None) -> str:
        """"" while every watch works; else which ones fail (or never got an answer to their first list), since
        when and why (see health_note)."""
        failing = [(c.name, _short(c.last_error), c.failing_since) for c in self.caches
                   if c.failing_since is not None]
        failing += [(c.name, "no answer to the first list yet", c.started_at) for c in self.caches
                    if c.failing_since is None and not c.synced.is_set()]
        return health_note(failing, time.monotonic() if now is None else now)  # type: ignore[arg-type]

    def watch(self, list_fn: Callable[..., Any], **kwargs: Any) -> Cache:
        cache = Cache(list_fn, self, **kwargs).start()
        self.caches.append(cache)
        return cache

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, *exc: object) -> None:
        for cache in self.caches:
            cache.stop()

    def wait_for(self, decide: Callable[[], T | None], timeout_s: float,
                 on_change: Callable[[], None] | None = None, clock: Callable[[], float] = time.monotonic) -> T | None:
        """Call `decide` after every change until it returns non-None or `timeout_s` passes (then None)."""
        deadline = clock() + timeout_s
        for cache in self.caches:
            if not cache.synced.wait(max(0.0, deadline - clock())):
                return None
        while True:
            with self.changed:
                seen = self.version
            result = decide()
            if result is not None:
                return result
            if on_change:
                on_change()
            remaining = deadline - clock()
            if remaining <= 0:
                return None
            with self.changed:
                if self.version == seen:
                    self.changed.wait(min(1.0, remaining))


def _short(exc: Exception | None) -> str:
    if exc is None:
        return "?"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:160]
