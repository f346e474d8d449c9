"""One release per Service at a time: a coordination.k8s.io/v1 Lease named `greenlight-<service>`, renewed by a
background thread while the release runs (also across an approval pause, because the process lives on).

A second release fails fast naming the holder. A lease whose holder stopped renewing expires after
`leaseDurationSeconds` (plus a clock-skew margin) and may then be taken over; the takeover is a replace guarded
by resourceVersion, so of two contenders exactly one wins. A holder whose renewal finds the lease taken knows it
lost the lock and stops before its next change.

A holder that cannot reach the apiserver cannot know whether it still holds the lease: once its last successful
renewal is older than the lease duration (minus the skew margin), `check()` renews synchronously and refuses the
next change if that fails. Renewals time out well within the lease duration, so one hung request never lets the
lease lapse. A write whose response was lost (an apiserver restart) is recognised on the re-read: the lease
still names us, so we renew it rather than take it for lost.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time

from kubernetes.client.rest import ApiException

from prefect_greenlight.tasks.decisions.lease import (
    DURATION_S,
    RUN_ID_ANNOTATION,
    LockAction,
    confidence_s,
    decide,
    lease_time,
)
from prefect_greenlight.tasks.decisions.plan import PlanFacts, lease_fact
from prefect_greenlight.tasks.errors import LockHeld, PermanentError, TemporaryError
from prefect_greenlight.tasks.kube.client import RETRY, TIMEOUT, Kube, RetryPolicy, classify, read, retrying

log = logging.getLogger(__name__)


def identity(release_id: str) -> str:
    return f"{release_id}@{socket.gethostname()}/{os.getpid()}"


class ServiceLock:
    """Context manager holding the lease for the duration of a release. Kubernetes only: the flows hold it through
    tasks/prefect_adapter/lease.py, which names the running flow run and ends a dead holder's run on takeover."""

    def __init__(self, kube: Kube, namespace: str, service: str, release_id: str, *, duration_s: int = DURATION_S,
                 annotations: dict[str, str] | None = None, wait_s: float = 0, taker: str = "release"):
        self.kube, self.namespace, self.service = kube, namespace, service
        self.name = f"greenlight-{service}"
        self.me = identity(release_id)
        self.duration_s = duration_s
        self.run_id = (annotations or {}).get(RUN_ID_ANNOTATION) or self.current_run_id()
        self.annotations = {**(annotations or {}), RUN_ID_ANNOTATION: self.run_id}  # who to end if we die
        self.taker = taker  # release | abort | rollback: what a dead holder's run is told took over
        self.wait_s = wait_s
        self._lease: dict | None = None
        self._stop = threading.Event()
        self._lost: str | None = None
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()  # one write at a time: the renewal thread and check() both renew
        self._renewed_at: float | None = None  # monotonic time of the last successful write
        self._last_error = ""

    def _body(self, now: float, acquire: bool) -> dict:
        spec = dict((self._lease or {}).get("spec") or {})
        spec.update(holderIdentity=self.me, leaseDurationSeconds=self.duration_s, renewTime=lease_time(now))
        if acquire:
            spec.update(acquireTime=lease_time(now), leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1)
        meta = {"name": self.name, "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "greenlight"},
                "annotations": {"greenlight.io/service": self.service, **self.annotations}}
        if self._lease:  # a renewal or a takeover: of this very object, never a new one
            # The uid too: a PUT of a Lease without it re-creates a deleted Lease (Leases allow create on update,
            # whatever resourceVersion the body names), so a holder woken after a takeover and a release would
            # hold the lock again; with it, that PUT is refused (409) and the holder knows the lock is lost.
            meta["resourceVersion"] = self._lease["metadata"]["resourceVersion"]
            if self._lease["metadata"].get("uid"):
                meta["uid"] = self._lease["metadata"]["uid"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def _write(self, create: bool, acquire: bool, timeout: tuple[float, float] = TIMEOUT) -> None:
        with self._mutex:
            started = time.monotonic()
            body = self._body(time.time(), acquire)
            api = self.kube.coordination
            if create:
                resp = api.create_namespaced_lease(self.namespace, body, _preload_content=False,
                                                   _request_timeout=timeout)
            else:
                resp = api.replace_namespaced_lease(self.name, self.namespace, body, _preload_content=False,
                                                    _request_timeout=timeout)
            self._lease = json.loads(resp.data)
            self._renewed_at = started  # the apiserver stamped renewTime no earlier than this

    def acquire(self, wait_s: float = 0) -> None:
        """Take the lease; when another release holds it, wait up to `wait_s` for it to be released or expire.
        Transient failures (apiserver restarting) are retried within RETRY's budget by reading and deciding
        again: if a write landed but its answer was lost, the lease then names us and is simply renewed."""
        deadline = started = time.monotonic()
        deadline += wait_s
        conflicts = failures = 0
        optimistic = True  # most releases find no Lease: create it first, read only when that conflicts
        while True:
            self._lease = None if optimistic else read(self.kube, "Lease", self.namespace, self.name)
            d = decide(self._lease, self.me, time.time())
            if d.action is LockAction.HELD:
                if time.monotonic() >= deadline:
                    raise LockHeld(self.service, d.holder, d.expires_in_s)
                time.sleep(min(1.0, max(0.1, deadline - time.monotonic())))
                continue
            previous = self._lease
            try:
                self._write(create=d.action is LockAction.CREATE, acquire=d.action is not LockAction.RENEW)
                break
            except Exception as exc:  # noqa: BLE001 - classified below
                err = classify(exc, f"acquire Lease {self.namespace}/{self.name}")
                if isinstance(exc, ApiException) and exc.status == 409 and optimistic:
                    optimistic = False  # it exists: read it and decide
                    continue
                optimistic = False
                if isinstance(exc, ApiException) and exc.status == 409:
                    conflicts += 1  # someone else wrote it between our read and write: read and decide again
                    if conflicts >= 3:
                        raise PermanentError(f"could not acquire Lease {self.namespace}/{self.name}: "
                                             f"{conflicts} conflicting writes") from exc
                    continue
                failures += 1
                delay = RETRY.delay(failures, time.monotonic() - started, random.random()) if err.retryable else None
                if delay is None:
                    raise err from exc
                log.info("%s; reading the lease again in %.1f s", err, delay)
                time.sleep(delay)
        if d.action is LockAction.TAKE_OVER:
            log.warning("took over the expired lease of %s from %s", self.service, d.holder or "nobody")
            self._end_dead_holder(previous)
        self._thread = threading.Thread(target=self._renew_loop, daemon=True, name=f"lease-{self.service}")
        self._thread.start()

    def current_run_id(self) -> str:
        """The run this lock is held for, named on the Lease (who to end if we die); none here."""
        return ""

    def _end_dead_holder(self, previous: dict | None) -> None:
        """Called after taking `previous` over from a dead holder; nothing to do at the Kubernetes level."""

    def _renew(self) -> bool:
        """One renewal, with a timeout well inside the lease duration. False on a transient failure; sets
        `_lost` when the lease is no longer ours."""
        for _ in range(2):  # a second try only after a 409 that turned out to be our own earlier write
            try:
                self._write(create=False, acquire=False, timeout=(TIMEOUT[0], max(1.0, self.duration_s / 3)))
                self._last_error = ""
                return True
            except ApiException as exc:
                if exc.status == 409 and self._still_mine():
                    continue
                if exc.status in (404, 409):
                    self._lost = f"lease {self.name} was taken or deleted (HTTP {exc.status})"
                    log.error(self._lost)
                    return False
                self._last_error = f"HTTP {exc.status} {exc.reason}"
            except Exception as exc:  # noqa: BLE001 - transient: keep trying until the lease would expire
                self._last_error = f"{type(exc).__name__}: {str(exc)[:160]}"
            break
        log.warning("lease renewal failed (%s); retrying", self._last_error or "conflicting writes")
        return False

    def _still_mine(self) -> bool:
        """After a 409: is the lease still ours (an earlier renewal landed but its answer was lost)? Adopts it."""
        try:
            lease = read(self.kube, "Lease", self.namespace, self.name, policy=RetryPolicy(budget_s=3))
        except Exception:  # noqa: BLE001 - cannot tell: treat as a transient failure next round
            return False
        if lease is not None and decide(lease, self.me, time.time()).action is LockAction.RENEW:
            with self._mutex:
                self._lease = lease
            return True
        return False

    def _renew_loop(self) -> None:
        ok = True
        while not self._stop.wait(self.duration_s / 3 if ok else 1.0):
            ok = self._renew()
            if self._lost:
                return

    def check(self, confirm_s: float | None = None) -> None:
        """Raise if the lock was lost, or cannot be confirmed (call before each change). When our last renewal
        is too old to count on, renew now — retrying for up to `confirm_s` (the retry budget) while the apiserver
        is unreachable. A renewal is a replace guarded by the resourceVersion we last wrote, so it succeeds only
        if nobody took the lease in between: a late success still proves the lock is ours."""
        if self._lost:
            raise PermanentError(f"lost the release lock on Service {self.service!r}: {self._lost}")
        if confidence_s(self._renewed_at, time.monotonic(), self.duration_s) > 0:
            return
        budget = RETRY.budget_s if confirm_s is None else confirm_s
        started, attempt = time.monotonic(), 0
        while not self._renew():
            if self._lost:
                raise PermanentError(f"lost the release lock on Service {self.service!r}: {self._lost}")
            attempt += 1
            delay = RETRY.delay(attempt, time.monotonic() - started, random.random())
            if delay is None or time.monotonic() - started + delay > budget:
                age = time.monotonic() - (self._renewed_at or 0)
                raise TemporaryError(f"cannot confirm the release lock on Service {self.service!r}: not renewed "
                                     f"for {age:.0f} s (lease duration {self.duration_s} s; {self._last_error}); "
                                     "not changing anything without it")
            log.warning("cannot confirm the release lock yet (%s); retrying in %.1f s", self._last_error, delay)
            time.sleep(delay)

    def lost(self) -> str:
        """Why the lock is no longer ours ("" while it is, or when that cannot be told now). When our last renewal
        is too old to count on, one renewal first: a holder frozen past its lease (SIGSTOP, a lost host) learns
        at once that another release took the lease over."""
        if not self._lost and self._lease and confidence_s(self._renewed_at, time.monotonic(), self.duration_s) <= 0:
            self._renew()
        return self._lost or ""

    def release(self) -> None:
        """Stop renewing and delete the lease (guarded by its resourceVersion). Never raises: a lease that cannot
        be deleted expires by itself."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if self._lost or not self._lease:
            return
        rv = self._lease["metadata"]["resourceVersion"]

        def delete() -> None:
            try:
                self.kube.coordination.delete_namespaced_lease(
                    self.name, self.namespace, _request_timeout=TIMEOUT, body={"preconditions": {"resourceVersion": rv}})
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise

        try:
            retrying(f"delete Lease {self.namespace}/{self.name}", delete, policy=RetryPolicy(budget_s=10))
        except Exception as exc:  # noqa: BLE001 - the release's own outcome must not be masked by this
            log.warning("could not delete Lease %s (%s); it expires in %d s", self.name, exc, self.duration_s)

    def __enter__(self) -> "ServiceLock":
        self.acquire(self.wait_s)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def plan_facts(kube: Kube, namespace: str, service: str, permissions: tuple[str, ...], autoscalers: tuple[str, ...],
                warnings: tuple[str, ...]) -> PlanFacts:
    """Preflight's facts plus the Service's Lease as read now (a held one is also a warning)."""
    text, free = lease_fact(read(kube, "Lease", namespace, f"greenlight-{service}"), time.time())
    extra = () if free else (f"Lease greenlight-{service} is {text}",)
    return PlanFacts(permissions=permissions, lease=text, lease_free=free, autoscalers=autoscalers,
                     warnings=tuple(warnings) + extra)
