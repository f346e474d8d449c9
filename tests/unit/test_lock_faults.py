"""ServiceLock against a fake Lease API that can lose answers, refuse connections and let others write:
a write that landed but whose answer was lost is recognised as ours (not taken for a lost lock), a lease taken by
someone else is lost, an overdue lease is confirmed by renewing before the next change (or refused), and
releasing never masks the release's own outcome. Plus `confidence_s`, the pure part, at fixed instants."""

from __future__ import annotations

import json
import time

import pytest
import urllib3
from kubernetes.client.rest import ApiException

from prefect_greenlight.tasks.decisions.lease import SKEW_S, confidence_s
from prefect_greenlight.tasks.errors import PermanentError, TemporaryError
from prefect_greenlight.tasks.kube.lease import ServiceLock

REFUSED = urllib3.exceptions.NewConnectionError(None, "[Errno 111] Connection refused")
LOST = urllib3.exceptions.ReadTimeoutError(None, "/leases", "Read timed out.")


class Resp:
    def __init__(self, obj: dict):
        self.data = json.dumps(obj).encode()


class FakeLeases:
    """One namespace's Leases with resourceVersion checks, as the apiserver does them: a replace of a missing Lease
    creates it (Leases allow create on update) unless the body names a uid (then 409). `faults` is consumed one per
    write: None (normal), REFUSED (raised, nothing applied) or ("lost", exc) (applied, then `exc` raised: the
    answer never came)."""

    def __init__(self):
        self.lease: dict | None = None
        self.rv = 0
        self.faults: list = []
        self.down = False

    def _fault(self):
        return self.faults.pop(0) if self.faults else None

    def _store(self, body: dict, uid: str = "uid-0") -> dict:
        self.rv += 1
        self.lease = json.loads(json.dumps(body))
        self.lease["metadata"].update(resourceVersion=str(self.rv), uid=uid)
        return self.lease

    def _write(self, body: dict, create: bool):
        fault = self._fault()
        if self.down or fault is REFUSED:
            raise REFUSED
        if create and self.lease is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        uid = body["metadata"].get("uid")
        if not create and self.lease is None and uid is None:
            create = True  # create on update
        elif not create and (self.lease is None or body["metadata"].get("resourceVersion") != str(self.rv)
                             or uid not in (None, self.lease["metadata"]["uid"])):
            raise ApiException(status=409, reason="Conflict")
        stored = self._store(body, f"uid-{self.rv + 1}" if create else self.lease["metadata"]["uid"])
        if isinstance(fault, tuple):
            raise fault[1]
        return Resp(stored)

    # the CoordinationV1Api methods ServiceLock and prefect_greenlight.tasks.kube.client.read use
    def read_namespaced_lease(self, name, namespace, **_):
        if self.down:
            raise REFUSED
        if self.lease is None:
            raise ApiException(status=404, reason="Not Found")
        return Resp(self.lease)

    def create_namespaced_lease(self, namespace, body, **_):
        return self._write(body, create=True)

    def replace_namespaced_lease(self, name, namespace, body, **_):
        return self._write(body, create=False)

    def delete_namespaced_lease(self, name, namespace, **_):
        if self.down:
            raise REFUSED
        self.lease = None

    def someone_else_takes_it(self):
        other = json.loads(json.dumps(self.lease))
        other["spec"]["holderIdentity"] = "other@host/1"
        other["metadata"]["resourceVersion"] = str(self.rv)
        self._store(other, other["metadata"]["uid"])


class FakeKube:
    def __init__(self):
        self.coordination = FakeLeases()


@pytest.fixture
def kube():
    return FakeKube()


def held(kube) -> ServiceLock:
    lock = ServiceLock(kube, "ns", "web", "rel-1")
    lock.acquire()
    lock._stop.set()  # no background renewals: the test renews by hand
    return lock


def test_a_renewal_whose_answer_was_lost_is_still_ours(kube):
    lock = held(kube)
    kube.coordination.faults = [("lost", LOST)]
    assert lock._renew() is False, "the answer never came: a transient failure"
    assert lock._renew() is True, "409 on the stale resourceVersion, but the lease still names us: adopted"
    assert lock._lost is None
    assert kube.coordination.lease["spec"]["holderIdentity"] == lock.me
    lock.check()


def test_a_lease_taken_by_someone_else_is_lost(kube):
    lock = held(kube)
    kube.coordination.someone_else_takes_it()
    assert lock._renew() is False
    assert lock._lost and "taken or deleted (HTTP 409)" in lock._lost
    with pytest.raises(PermanentError, match="lost the release lock on Service 'web'"):
        lock.check()


def test_a_holder_woken_after_its_lease_was_taken_and_released_does_not_recreate_it(kube):
    """A worker frozen (SIGSTOP) past the lease's expiry: another release took the lease over and deleted it when
    done. The woken holder's renewal is refused (its PUT names the old uid) instead of re-creating the lease."""
    lock = held(kube)
    kube.coordination.someone_else_takes_it()
    kube.coordination.delete_namespaced_lease("greenlight-web", "ns")
    assert lock._renew() is False and lock._lost
    assert kube.coordination.lease is None
    with pytest.raises(PermanentError, match="lost the release lock"):
        lock.check()


def test_lost_says_why_once_a_frozen_holders_lease_was_taken_and_nothing_while_held(kube):
    lock = held(kube)
    assert lock.lost() == ""
    kube.coordination.someone_else_takes_it()
    assert lock.lost() == "", "still trusted within the lease duration: no request"
    lock._renewed_at = time.monotonic() - 60  # frozen for a minute
    assert "taken or deleted (HTTP 409)" in lock.lost()
    assert kube.coordination.lease["spec"]["holderIdentity"] == "other@host/1"


def test_an_overdue_lease_is_confirmed_by_renewing_before_a_change(kube):
    lock = held(kube)
    lock._renewed_at = time.monotonic() - 60  # renewals failed for a minute
    rv = kube.coordination.rv
    lock.check()
    assert kube.coordination.rv == rv + 1, "check() renewed"


def test_an_overdue_lease_that_cannot_be_renewed_refuses_the_change(kube):
    lock = held(kube)
    lock._renewed_at = time.monotonic() - 60
    kube.coordination.down = True
    with pytest.raises(TemporaryError, match=r"cannot confirm the release lock on Service 'web': not renewed for "
                                             r"6\d s \(lease duration 15 s; NewConnectionError"):
        lock.check(confirm_s=0)


def test_an_overdue_lease_is_confirmed_once_the_apiserver_is_back(kube):
    """The apiserver was down past the lease's duration (approval answered meanwhile): check() keeps trying and
    goes on when the guarded renewal succeeds — nobody took the lease in between."""
    lock = held(kube)
    lock._renewed_at = time.monotonic() - 60
    kube.coordination.faults = [REFUSED, REFUSED]
    rv = kube.coordination.rv
    lock.check(confirm_s=10)
    assert kube.coordination.rv == rv + 1 and lock._lost is None


def test_an_overdue_lease_taken_meanwhile_is_lost_not_retried(kube):
    lock = held(kube)
    lock._renewed_at = time.monotonic() - 60
    kube.coordination.someone_else_takes_it()
    with pytest.raises(PermanentError, match="lost the release lock"):
        lock.check(confirm_s=10)


def test_a_fresh_lease_is_not_renewed_by_check(kube):
    lock = held(kube)
    rv = kube.coordination.rv
    kube.coordination.down = True
    lock.check()
    assert kube.coordination.rv == rv


def test_acquire_recognises_its_own_create_after_a_lost_answer(kube, monkeypatch):
    monkeypatch.setattr("prefect_greenlight.tasks.kube.lease.time.sleep", lambda s: None)
    kube.coordination.faults = [("lost", LOST)]
    lock = ServiceLock(kube, "ns", "web", "rel-1")
    lock.acquire()
    lock._stop.set()
    assert kube.coordination.lease["spec"]["holderIdentity"] == lock.me
    assert kube.coordination.rv == 2, "created (answer lost), then renewed as ours — not a second create"


def test_acquire_waits_out_a_short_outage(kube, monkeypatch):
    monkeypatch.setattr("prefect_greenlight.tasks.kube.lease.time.sleep", lambda s: None)
    kube.coordination.faults = [REFUSED, REFUSED]
    lock = ServiceLock(kube, "ns", "web", "rel-1")
    lock.acquire()
    lock._stop.set()
    assert kube.coordination.lease["spec"]["holderIdentity"] == lock.me


def test_release_never_raises(kube):
    lock = held(kube)
    kube.coordination.delete_namespaced_lease = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom"))
    lock.release()  # logged, not raised: the lease expires by itself


@pytest.mark.parametrize("renewed_at, now, expected", [
    (None, 100.0, 0.0),                       # never written: confirm first
    (100.0, 100.0, 15 - SKEW_S),              # just renewed
    (100.0, 110.0, 5 - SKEW_S),
    (100.0, 100.0 + 15 - SKEW_S, 0.0),        # others may take it over SKEW_S later: stop trusting it now
    (100.0, 130.0, -15 - SKEW_S),
])
def test_confidence(renewed_at, now, expected):
    assert confidence_s(renewed_at, now, 15) == pytest.approx(expected)
