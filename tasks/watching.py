"""Watch-based waiting: a tiny informer (list, then watch from that resourceVersion, re-list after 410 Gone or a
dropped connection) per kind, all sharing one Condition so a waiter re-decides the moment anything changes.

Waiting code stays a pure decision over cache snapshots: `wait_for(decide, deadline)` calls `decide()` on every
change (and at least once a second, for time-based graces) until it returns something other than None.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import watch
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)
T = TypeVar("T")
WATCH_TIMEOUT_S = 60


class Cache:
    """Objects of one list call (namespace + selectors), kept current by a watch in a daemon thread."""

    def __init__(self, list_fn: Callable[..., Any], watcher: "Watcher", **kwargs: Any):
        self._list_fn, self._kwargs, self._watcher = list_fn, kwargs, watcher
        self._changed = watcher.changed
        self._objects: dict[str, dict] = {}
        self._stop = threading.Event()
        self.synced = threading.Event()
        self.last_error: Exception | None = None
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch-{list_fn.__name__}")

    def start(self) -> "Cache":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch:
            self._watch.stop()

    def items(self) -> list[dict]:
        with self._changed:
            return list(self._objects.values())

    def _notify(self) -> None:
        with self._changed:
            self._watcher.bump()

    def _relist(self) -> str:
        resp = self._list_fn(**self._kwargs, _preload_content=False, _request_timeout=(5, 30))
        body = json.loads(resp.data)
        with self._changed:
            self._objects = {o["metadata"]["uid"]: o for o in body.get("items", [])}
            self.synced.set()
            self._watcher.bump()
        return body["metadata"]["resourceVersion"]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rv = self._relist()
                self._watch = watch.Watch()
                for event in self._watch.stream(self._list_fn, **self._kwargs, resource_version=rv,
                                                allow_watch_bookmarks=True, timeout_seconds=WATCH_TIMEOUT_S,
                                                _request_timeout=(5, WATCH_TIMEOUT_S + 10), deserialize=False):
                    obj, kind = event["object"], event["type"]
                    if kind == "BOOKMARK":
                        continue
                    with self._changed:
                        if kind == "DELETED":
                            self._objects.pop(obj["metadata"]["uid"], None)
                        else:
                            self._objects[obj["metadata"]["uid"]] = obj
                        self._watcher.bump()
                    if self._stop.is_set():
                        return
            except ApiException as exc:
                self.last_error = exc
                if exc.status != 410:
                    log.debug("watch %s failed: %s", self._list_fn.__name__, exc.reason)
                    self._stop.wait(0.5)
            except Exception as exc:  # noqa: BLE001 - connection drops, apiserver restarts: re-list and go on
                self.last_error = exc
                log.debug("watch %s interrupted: %s", self._list_fn.__name__, exc)
                self._stop.wait(0.5)
            finally:
                self._notify()


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
