"""The Service's lock on the real apiserver, contenders released at the same instant (a barrier): of those that
find no Lease, exactly one creates it; of those that find an expired one, exactly one takes it over (the replace is
guarded by resourceVersion). Every other one fails with LockHeld naming the winner. The Prefect-level test
(test_prefect_ops.py) holds its winner at an approval, so it never races; this one does nothing else.
"""

from __future__ import annotations

import threading
import time

import pytest

from prefect_greenlight.tasks.decisions.lease import lease_time
from prefect_greenlight.tasks.errors import LockHeld
from prefect_greenlight.tasks.kube.client import read
from prefect_greenlight.tasks.kube.lease import ServiceLock

SERVICE = "web"
CONTENDERS = 6


def _race(kube, namespace: str) -> tuple[list[ServiceLock], list[LockHeld]]:
    """CONTENDERS threads, each with its own ServiceLock, call acquire() together. Returns winners and refusals
    (any other outcome fails the test)."""
    locks = [ServiceLock(kube, namespace, SERVICE, f"release-{i}") for i in range(CONTENDERS)]
    barrier = threading.Barrier(CONTENDERS)
    outcomes: list[object] = [None] * CONTENDERS

    def contend(i: int) -> None:
        barrier.wait()
        try:
            locks[i].acquire()
            outcomes[i] = locks[i]
        except Exception as exc:  # noqa: BLE001 - recorded, judged below
            outcomes[i] = exc

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(CONTENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [o for o in outcomes if isinstance(o, ServiceLock)]
    refused = [o for o in outcomes if isinstance(o, LockHeld)]
    assert len(winners) + len(refused) == CONTENDERS, outcomes
    return winners, refused


def _expired_lease(namespace: str) -> dict:
    old = time.time() - 600
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": f"greenlight-{SERVICE}", "namespace": namespace},
            "spec": {"holderIdentity": "dead-release@gone/1", "leaseDurationSeconds": 15,
                     "acquireTime": lease_time(old), "renewTime": lease_time(old)}}


@pytest.mark.parametrize("found", ["no lease", "an expired lease"])
def test_of_contenders_at_the_same_instant_exactly_one_holds_the_lock(kube, namespace, found):
    if found == "an expired lease":
        kube.coordination.create_namespaced_lease(namespace, _expired_lease(namespace))
    winners, refused = _race(kube, namespace)
    try:
        assert len(winners) == 1, f"{len(winners)} of {CONTENDERS} contenders hold the lock"
        [winner] = winners
        lease = read(kube, "Lease", namespace, f"greenlight-{SERVICE}")
        assert lease["spec"]["holderIdentity"] == winner.me
        assert all(r.holder == winner.me for r in refused), [str(r) for r in refused]
        assert all("another release holds the lock on Service 'web'" in str(r) for r in refused)
    finally:
        for w in winners:
            w.release()
    assert read(kube, "Lease", namespace, f"greenlight-{SERVICE}") is None, "the winner's release deletes it"
