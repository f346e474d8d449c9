"""No run stays Paused forever (tasks/decisions/lease.py, tasks/prefect_adapter/dead_runs.py): the final state a dead
holder's flow run gets, whether a paused run can still take an answer, and ServiceLock (tasks/prefect_adapter/lease.py)
ending the dead holder's run when it takes an expired Lease over (against the fake Lease API of test_lock_faults)."""

from __future__ import annotations

import time

import pytest

from prefect_greenlight.tasks.decisions.lease import (
    RUN_ID_ANNOTATION,
    DeadRunEnd,
    answerable,
    dead_run_message,
    end_of_dead_run,
    lease_run_id,
    lease_time,
)
from prefect_greenlight.tasks.prefect_adapter.lease import ServiceLock
from tests.unit.test_lock_faults import FakeKube

NOW = 1_800_000_000.0


@pytest.mark.parametrize("state,taker,end", [
    ("PAUSED", "release", DeadRunEnd.CRASHED),        # the approval pause of a killed process
    ("RUNNING", "release", DeadRunEnd.CRASHED),       # killed mid-step
    ("RUNNING", "abort", DeadRunEnd.CANCELLED),       # rejected by abort (Running again), its process gone
    ("PAUSED", "rollback", DeadRunEnd.CANCELLED),
    ("paused", "release", DeadRunEnd.CRASHED),        # case does not matter
    ("PENDING", "release", DeadRunEnd.CRASHED),
    ("COMPLETED", "release", None),                   # already final: left alone
    ("FAILED", "abort", None),
    ("CRASHED", "release", None),
    ("CANCELLED", "rollback", None),
    ("", "release", None),
])
def test_end_of_dead_run(state, taker, end):
    assert end_of_dead_run(state, taker) is end


def test_the_message_names_what_took_over():
    assert dead_run_message("greenlight-web", "r1@host/41", "release", "r2@host/42", "run-2") == (
        "the release process r1@host/41 died: its Lease greenlight-web expired unrenewed and was taken over by "
        "release r2@host/42 (flow run run-2)")
    anonymous = dead_run_message("greenlight-web", "", "abort", "abort-r1@h/3", "")
    assert anonymous.endswith("taken over by abort abort-r1@h/3") and "process ? died" in anonymous


def lease(run_id: str = "run-1", renewed: float = NOW - 1, holder: str = "r1@host/41") -> dict:
    return {"metadata": {"name": "greenlight-web", "annotations": {RUN_ID_ANNOTATION: run_id} if run_id else {}},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": lease_time(renewed)}}


@pytest.mark.parametrize("case,the_lease,ok,why", [
    ("renewed a second ago by the paused run", lease(), True, "its process r1@host/41 renews Lease greenlight-web"),
    ("a lease without a run id (older greenlight), renewed", lease(""), True, "renews"),
    ("expired unrenewed: the process is gone", lease(renewed=NOW - 60), False,
     "its Lease greenlight-web expired 43 s ago unrenewed: the release process r1@host/41 is gone"),
    ("taken over by another run", lease("run-2", holder="r2@host/42"), False,
     "held by another run: r2@host/42 (flow run run-2)"),
    ("no Lease at all", None, False, "its Lease greenlight-web is gone"),
])
def test_answerable(case, the_lease, ok, why):
    verdict = answerable(the_lease, "greenlight-web", "run-1", NOW)
    assert verdict.ok is ok and why in verdict.why, verdict.why


def test_lease_run_id():
    assert lease_run_id(lease("abc")) == "abc" and lease_run_id(None) == "" and lease_run_id({}) == ""


def test_taking_over_an_expired_lease_ends_the_dead_holders_run(monkeypatch):
    ended: list[tuple] = []
    monkeypatch.setattr("prefect_greenlight.tasks.prefect_adapter.lease.end_dead_run",
                        lambda previous, taker, me, run_id: ended.append((lease_run_id(previous), taker, run_id)) or "")
    kube = FakeKube()
    kube.coordination._store(lease("dead-run", renewed=time.time() - 3600))  # expired an hour ago
    lock = ServiceLock(kube, "ns", "web", "rel-2", taker="abort", annotations={RUN_ID_ANNOTATION: "my-run"})
    lock.acquire()
    lock._stop.set()
    assert ended == [("dead-run", "abort", "my-run")]
    assert kube.coordination.lease["metadata"]["annotations"][RUN_ID_ANNOTATION] == "my-run", "the Lease names us"


def test_a_fresh_lease_ends_nobody(monkeypatch):
    ended: list = []
    monkeypatch.setattr("prefect_greenlight.tasks.prefect_adapter.lease.end_dead_run", lambda *a: ended.append(a) or "")
    lock = ServiceLock(FakeKube(), "ns", "web", "rel-1")
    lock.acquire()
    lock._stop.set()
    assert ended == []
