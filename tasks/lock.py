"""One release per Service at a time: a coordination.k8s.io/v1 Lease named `greenlight-<service>`, renewed by a
background thread while the release runs (also across an approval pause, because the process lives on).

A second release fails fast naming the holder. A lease whose holder stopped renewing expires after
`leaseDurationSeconds` (plus a clock-skew margin) and may then be taken over; the takeover is a replace guarded
by resourceVersion, so of two contenders exactly one wins. A holder whose renewal finds the lease taken knows it
lost the lock and stops before its next change.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

from kubernetes.client.rest import ApiException

from tasks.errors import LockHeld, PermanentError
from tasks.kube import TIMEOUT, Kube, classify, read

log = logging.getLogger(__name__)
DURATION_S = 15
SKEW_S = 2.0


class LockAction(str, Enum):
    CREATE = "create"
    RENEW = "renew"
    TAKE_OVER = "take-over"
    HELD = "held"


@dataclass(frozen=True)
class LockDecision:
    action: LockAction
    holder: str = ""
    expires_in_s: float = 0.0


def _micro(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def decide(lease: dict | None, me: str, now: float) -> LockDecision:
    """What to do with the Service's lease as read now."""
    if lease is None:
        return LockDecision(LockAction.CREATE)
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if holder == me:
        return LockDecision(LockAction.RENEW, holder)
    if not holder:
        return LockDecision(LockAction.TAKE_OVER, holder)
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime")) or 0.0
    expires_in = renewed + int(spec.get("leaseDurationSeconds") or DURATION_S) + SKEW_S - now
    if expires_in > 0:
        return LockDecision(LockAction.HELD, holder, expires_in)
    return LockDecision(LockAction.TAKE_OVER, holder, expires_in)


def identity(release_id: str) -> str:
    return f"{release_id}@{socket.gethostname()}/{os.getpid()}"


class ServiceLock:
    """Context manager holding the lease for the duration of a release."""

    def __init__(self, kube: Kube, namespace: str, service: str, release_id: str, *, duration_s: int = DURATION_S,
                 annotations: dict[str, str] | None = None, wait_s: float = 0):
        self.kube, self.namespace, self.service = kube, namespace, service
        self.name = f"greenlight-{service}"
        self.me = identity(release_id)
        self.duration_s = duration_s
        self.annotations = annotations or {}
        self.wait_s = wait_s
        self._lease: dict | None = None
        self._stop = threading.Event()
        self._lost: str | None = None
        self._thread: threading.Thread | None = None

    def _body(self, now: float, acquire: bool) -> dict:
        spec = dict((self._lease or {}).get("spec") or {})
        spec.update(holderIdentity=self.me, leaseDurationSeconds=self.duration_s, renewTime=_micro(now))
        if acquire:
            spec.update(acquireTime=_micro(now), leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1)
        meta = {"name": self.name, "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "greenlight"},
                "annotations": {"greenlight.io/service": self.service, **self.annotations}}
        if self._lease:
            meta["resourceVersion"] = self._lease["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def _write(self, create: bool, acquire: bool) -> None:
        body = self._body(time.time(), acquire)
        api = self.kube.coordination
        if create:
            resp = api.create_namespaced_lease(self.namespace, body, _preload_content=False, _request_timeout=TIMEOUT)
        else:
            resp = api.replace_namespaced_lease(self.name, self.namespace, body, _preload_content=False,
                                                _request_timeout=TIMEOUT)
        self._lease = json.loads(resp.data)

    def acquire(self, wait_s: float = 0) -> None:
        """Take the lease; when another release holds it, wait up to `wait_s` for it to be released or expire."""
        deadline = time.monotonic() + wait_s
        attempts, acquired = 0, False
        while attempts < 3 and not acquired:
            self._lease = read(self.kube, "Lease", self.namespace, self.name)
            d = decide(self._lease, self.me, time.time())
            if d.action is LockAction.HELD:
                if time.monotonic() >= deadline:
                    raise LockHeld(self.service, d.holder, d.expires_in_s)
                time.sleep(min(1.0, max(0.1, deadline - time.monotonic())))
                continue
            attempts += 1
            try:
                self._write(create=d.action is LockAction.CREATE, acquire=d.action is not LockAction.RENEW)
                acquired = True
                if d.action is LockAction.TAKE_OVER:
                    log.warning("took over the expired lease of %s from %s", self.service, d.holder or "nobody")
            except ApiException as exc:
                if exc.status != 409:
                    raise classify(exc, f"acquire Lease {self.namespace}/{self.name}") from exc
                # someone else wrote it between our read and write: read again and decide again
        if not acquired:
            raise PermanentError(f"could not acquire Lease {self.namespace}/{self.name}: 3 conflicting writes")
        self._thread = threading.Thread(target=self._renew_loop, daemon=True, name=f"lease-{self.service}")
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.duration_s / 3):
            try:
                self._write(create=False, acquire=False)
            except ApiException as exc:
                if exc.status in (404, 409):
                    self._lost = f"lease {self.name} was taken or deleted (HTTP {exc.status})"
                    log.error(self._lost)
                    return
                log.warning("lease renewal failed (HTTP %s); retrying", exc.status)
            except Exception as exc:  # noqa: BLE001 - transient: keep trying until the lease would expire
                log.warning("lease renewal failed (%s); retrying", exc)

    def check(self) -> None:
        """Raise if the lock was lost (call before each change)."""
        if self._lost:
            raise PermanentError(f"lost the release lock on Service {self.service!r}: {self._lost}")

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if self._lost or not self._lease:
            return
        try:
            self.kube.coordination.delete_namespaced_lease(
                self.name, self.namespace, _request_timeout=TIMEOUT,
                body={"preconditions": {"resourceVersion": self._lease["metadata"]["resourceVersion"]}})
        except ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("could not delete Lease %s: HTTP %s (it expires in %d s)", self.name, exc.status,
                            self.duration_s)

    def __enter__(self) -> "ServiceLock":
        self.acquire(self.wait_s)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
