"""Pick-up on events (worker/pickup.py, worker/listening.py): a greenlight worker whose poll is 30 s apart takes a new
deployment run within seconds of its creation — the run's `prefect.flow-run.Scheduled` event wakes it, not the poll —
exactly once (one Pending), and the release completes.

Why it cannot be the poll: BaseWorker polls once as it starts, then after an interval drawn around
PREFECT_WORKER_QUERY_SECONDS (here GREENLIGHT_WORKER_POLL_S = 30 s) and never below `lower_clamp_multiple(1.3)` of it
(22.5 s; prefect/utilities/services.py critical_service_loop, jitter_range=0.3). The run is Pending less than that
after the worker was launched."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import yaml
from prefect.utilities.math import lower_clamp_multiple

from prefect_greenlight.tasks.kube.waiting import wait_endpoints
from tests.e2e.prefect_ops import ROOT, Worker, api_call, create_pool
from tests.e2e.release_helpers import TUTORIAL1, selector, tutorial1, wait_until

SERVICE = "production-svc"
LOGS = ROOT / ".cache" / "test-logs"
POLL_S = 30
PICKUP_BOUND_S = 5.0  # created -> Pending; measured 2026-12-05: see the test's printout
EARLIEST_SECOND_POLL_S = POLL_S * lower_clamp_multiple(1.3)  # 22.5 s (clamped_poisson_interval's lower bound)


def _states(api: str, run_id: str) -> list[dict]:
    resp = api_call("GET", f"{api}/flow_run_states/?flow_run_id={run_id}")
    resp.raise_for_status()
    return sorted(resp.json(), key=lambda s: s["timestamp"])


def _first(states: list[dict], state_type: str) -> float:
    return next(datetime.fromisoformat(s["timestamp"]).timestamp() for s in states if s["type"] == state_type)


def _scheduled_event(prefect_ops, prefect_api: str, pool: str, run: str) -> dict:
    """What the pick-up relies on, as this server emits it: the run's first event is `prefect.flow-run.Scheduled`
    (state type SCHEDULED), with the run's work pool among its related resources."""
    resp = api_call("GET", f"{prefect_api}/work_pools/{pool}")
    resp.raise_for_status()
    events = prefect_ops.events("prefect.flow-run.", f"prefect.flow-run.{run}", timeout=10)
    first = events[0]
    assert first["event"] == "prefect.flow-run.Scheduled", [e["event"] for e in events]
    assert first["resource"]["prefect.state-type"] == "SCHEDULED", first["resource"]
    pools = [r for r in first["related"] if r["prefect.resource.role"] == "work-pool"]
    assert [r["prefect.resource.id"] for r in pools] == [f"prefect.work-pool.{resp.json()['id']}"], first["related"]
    return first


@pytest.mark.both_ends
def test_a_new_run_is_taken_on_its_event_not_at_the_next_poll(prefect_ops, prefect_api, cluster, kube, namespace,
                                                                 kubectl):
    pool = "greenlight-pickup"
    create_pool(prefect_api, pool, "greenlight")
    deployment = prefect_ops.copy_to_pool("blue-green", pool)
    tutorial1(kubectl, kube, namespace)
    launched = time.time()
    # The session's workers poll every second (PREFECT_WORKER_QUERY_SECONDS=1): unset here, so that the
    # greenlight worker's own GREENLIGHT_WORKER_POLL_S applies.
    worker = Worker(prefect_api, cluster.kubeconfig, LOGS / "worker-pickup.log", pool=pool,
                    env={"GREENLIGHT_WORKER_POLL_S": str(POLL_S), "PREFECT_WORKER_QUERY_SECONDS": None})
    try:
        wait_until("the worker subscribed to its pool's events",
                   lambda: "pick-up on events: subscribed" in worker.log() or worker.proc.poll() is not None, 60, 0.2)
        assert "pick-up on events: subscribed" in worker.log(), worker.log()[-3000:]
        spec = {"namespace": namespace, "service": SERVICE, "cleanup": {"delay_s": 1},
                "manifest": yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text())}
        run = prefect_ops.run(deployment, {"spec": spec})
        assert prefect_ops.wait_state(run, {"COMPLETED"}, 180) == "COMPLETED", prefect_ops.logs(run)[-3000:]

        created = datetime.fromisoformat(prefect_ops.flow_run(run)["created"]).timestamp()
        states = _states(prefect_api, run)
        pending = _first(states, "PENDING")
        print(f"pick-up on events: created -> Pending {pending - created:.2f} s, -> Running "
              f"{_first(states, 'RUNNING') - created:.2f} s; run created {created - launched:.1f} s after the worker "
              f"was launched (its second poll comes {EARLIEST_SECOND_POLL_S:.1f} s after launch at the earliest)")
        assert pending - created <= PICKUP_BOUND_S, states
        assert pending - launched < EARLIEST_SECOND_POLL_S, "too late to tell the event from the poll"
        names = [s["name"] for s in states]
        # taken once, through the Pending proposal (BaseWorker's Submitting, also of type PENDING, follows it)
        assert names.count("Pending") == 1 and names[:3] == ["Scheduled", "Pending", "Submitting"], names
        _scheduled_event(prefect_ops, prefect_api, pool, run)
        assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
        assert wait_endpoints(kube, namespace, SERVICE, "green-dep", 3, 30).ok
        assert "subscribing again" not in worker.log() and "could not fetch" not in worker.log(), worker.log()[-3000:]
    finally:
        worker.stop()
