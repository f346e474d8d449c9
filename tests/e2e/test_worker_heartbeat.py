"""Crashes found by heartbeat (worker/worker.py, tasks/prefect_adapter/heartbeats.py): a greenlight worker killed
(SIGKILL) or frozen (SIGSTOP) while its release waits at an approval leaves the run Paused; no other worker runs
on the host that could notice. The worker's heartbeats stop, and the automation the worker installed marks the run
Crashed within 90 s — no re-run, no second worker involved. A re-run then converges; a frozen worker woken
afterwards (SIGCONT) changes nothing in the cluster."""

from __future__ import annotations

import os
import signal
import time

import pytest
import yaml

from prefect_greenlight.tasks.kube.client import read
from prefect_greenlight.tasks.kube.waiting import wait_endpoints
from prefect_greenlight.tasks.prefect_adapter.heartbeats import AUTOMATION_NAME
from tests.e2e.prefect_ops import ROOT, Worker, api_call, create_pool
from tests.e2e.release_helpers import TUTORIAL1, resource_versions, selector, tutorial1, wait_until
from tests.e2e.sampler import EndpointSampler

SERVICE = "production-svc"
LOGS = ROOT / ".cache" / "test-logs"
BOUND_S = 90
APPROVAL_S = 180  # the SIGSTOP variant's pause times out after the worker is woken: that path changes nothing too


def _spec(namespace: str, **extra) -> dict:
    return {"namespace": namespace, "service": SERVICE, "cleanup": {"delay_s": 1},
            "manifest": yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text()), **extra}


def _states(api: str, run_id: str) -> list[dict]:
    resp = api_call("GET", f"{api}/flow_run_states/?flow_run_id={run_id}")
    resp.raise_for_status()
    return sorted(resp.json(), key=lambda s: s["timestamp"])


def _automation(api: str) -> list[dict]:
    resp = api_call("POST", f"{api}/automations/filter", json={})
    resp.raise_for_status()
    return [a for a in resp.json() if a["name"] == AUTOMATION_NAME]


def _crashed_after(prefect_ops, run: str, since: float) -> float:
    deadline = since + BOUND_S + 30  # wait past the bound to report the figure, then judge it
    while time.monotonic() < deadline and prefect_ops.state(run) != "CRASHED":
        time.sleep(1)
    took = time.monotonic() - since
    assert prefect_ops.state(run) == "CRASHED", f"still {prefect_ops.state(run)} {took:.0f} s after"
    return took


def prefect_api_of(prefect_ops) -> str:
    return prefect_ops.api


def _wake_and_see_it_change_nothing(prefect_ops, kube, namespace: str, first, run: str, paused_at: float) -> None:
    """SIGCONT: the woken release's Lease renewal finds the Lease gone (lost); its pause times out, the run is not
    resumed (it is Crashed), and the failure undoes and records nothing."""
    before = resource_versions(kube, namespace)
    os.killpg(first.proc.pid, signal.SIGCONT)
    woken_after = time.monotonic() - paused_at
    assert woken_after < APPROVAL_S - 20, f"woken {woken_after:.0f} s into a {APPROVAL_S} s pause: too late to tell"
    wait_until("the woken release to give up", lambda: "not rolling back, recording nothing" in
               prefect_ops.logs(run), APPROVAL_S - woken_after + 60, 2)
    time.sleep(5)  # the worker's end of the thread
    after = resource_versions(kube, namespace)
    lease = read(kube, "Lease", namespace, f"greenlight-{SERVICE}")
    assert after == before, (f"the woken worker changed the cluster: {before} -> {after}; Lease {lease}; "
                             f"its run's logs:\n{prefect_ops.logs(run)[-3000:]}\n{first.log()[-3000:]}")
    states = [st["type"] for st in _states(prefect_api_of(prefect_ops), run)]
    after_crash = states[states.index("CRASHED"):]
    assert "RUNNING" not in after_crash, f"forced back to Running: {states}"
    final = prefect_ops.flow_run(run)["state"]
    # The woken engine records the release's end over the automation's Crashed: Failed, saying why
    assert final["type"] == "CRASHED" or (final["type"] == "FAILED" and "marked Crashed while it was paused" in
                                          final["message"] and "taken or deleted" in final["message"]), final
    assert first.proc.poll() is None, "the woken worker goes on serving"
    print(f"woken {woken_after:.0f} s into the pause: its release gave up, nothing changed; states {states}")


@pytest.mark.parametrize("how", ["sigkill", "sigstop"])
def test_a_silent_worker_has_its_paused_release_crashed_by_the_automation(
        how, prefect_ops, prefect_api, cluster, kube, namespace, kubectl):
    pool = f"greenlight-hb-{how}"
    create_pool(prefect_api, pool, "greenlight")
    deployment = prefect_ops.copy_to_pool("blue-green", pool)
    first = Worker(prefect_api, cluster.kubeconfig, LOGS / f"worker-hb-{how}-1.log", pool=pool)
    second = None
    tutorial1(kubectl, kube, namespace)
    try:
        with EndpointSampler(kube, namespace, SERVICE) as sampler:
            run = prefect_ops.run(deployment, {"spec": _spec(namespace, approval={"mode": "manual",
                                                                                    "timeout_s": APPROVAL_S})})
            assert prefect_ops.wait_state(run, {"PAUSED"}, 180) == "PAUSED"
            paused_at = time.monotonic()
            assert len(_automation(prefect_api)) == 1, "the worker installs the automation, once"
            beats = prefect_ops.events("prefect.flow-run.heartbeat", f"prefect.flow-run.{run}", timeout=20)
            assert any(r.get("prefect.work-pool.type") == "greenlight" for b in beats for r in b["related"]), beats
            since = time.monotonic()
            if how == "sigkill":
                first.kill()
            else:
                os.killpg(first.proc.pid, signal.SIGSTOP)
            took = _crashed_after(prefect_ops, run, since)
            print(f"worker {how}: paused run Crashed {took:.1f} s after the signal")
            assert took <= BOUND_S
            message = prefect_ops.flow_run(run)["state"]["message"]
            assert "no heartbeat from its greenlight worker" in message, message
            states = [s["type"] for s in _states(prefect_api, run)]
            assert states[-2:] == ["PAUSED", "CRASHED"] and states.count("RUNNING") == 1, states  # never re-run
            assert len(prefect_ops.flow_runs(deployment)) == 1
            assert selector(kube, namespace, SERVICE) == {"target": "blue-dep"}  # paused before the switch
            second = Worker(prefect_api, cluster.kubeconfig, LOGS / f"worker-hb-{how}-2.log", pool=pool)
            rerun = prefect_ops.run(deployment, {"spec": _spec(namespace, lock_wait_s=60)})
            assert prefect_ops.wait_state(rerun, {"COMPLETED"}, 240) == "COMPLETED", prefect_ops.logs(rerun)[-3000:]
            wait_until("the re-run's Lease released",
                       lambda: read(kube, "Lease", namespace, f"greenlight-{SERVICE}") is None, 30, 0.5)
            if how == "sigstop":
                _wake_and_see_it_change_nothing(prefect_ops, kube, namespace, first, run, paused_at)
        assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
        assert wait_endpoints(kube, namespace, SERVICE, "green-dep", 3, 30).ok
        assert sampler.zero_ready_instants() == 0, sampler.describe()
        print(f"worker {how}: {sampler.requests.summary()}")
    finally:
        if how == "sigstop" and first.proc.poll() is None:
            os.killpg(first.proc.pid, signal.SIGCONT)
        for worker in (first, second):
            if worker is not None:
                worker.stop()
