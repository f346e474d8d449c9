"""Cancel in the UI means abort: a release cancelled through the API (as the UI's Cancel and `prefect flow-run
cancel` do) while a process worker runs it rolls back exactly as a failure does, verified, and the run ends
Cancelled with the undo steps in its report — blue-green in its post-switch window and paused for an approval
(manual or timed), a canary in each kind of pause (until approved, timed, after an inconclusive analysis) — with no
failed request through the ClusterIP. (A pipeline cancelled at its gate: tests/e2e/test_pipeline.py.)"""

from __future__ import annotations

import json

import pytest
import yaml

from prefect_greenlight.tasks.kube.client import read
from prefect_greenlight.tasks.kube.waiting import wait_endpoints
from tests.e2e.release_helpers import (
    TUTORIAL1,
    TUTORIAL2,
    given_applied,
    given_ready,
    greenlight,
    ready,
    replicas,
    selector,
    tutorial1,
    wait_until,
)
from tests.e2e.sampler import EndpointSampler

SERVICE = "production-svc"
SVC, V1, V2 = "my-app-service", "my-app-v1", "my-app-v2"


def _report(prefect_ops, run: str, prefix: str) -> str:
    return next(a for a in prefect_ops.artifacts(run) if (a.get("key") or "").startswith(prefix))["data"]


def _history(cluster, prefect_api, namespace, service) -> list[dict]:
    r = greenlight(cluster, prefect_api, "history", "-n", namespace, "--service", service, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def _events(prefect_ops, namespace, service) -> list[str]:
    return [e["event"] for e in prefect_ops.events("greenlight.release.", f"greenlight.service.{namespace}.{service}")]


@pytest.mark.both_ends
@pytest.mark.parametrize("where", ["post-switch", "timed-approval", "approval"])
def test_cancelled_blue_green_rolls_back_and_ends_cancelled(where, prefect_ops, cluster, prefect_api, kube, namespace,
                                                            kubectl):
    tutorial1(kubectl, kube, namespace)
    spec = {"namespace": namespace, "service": SERVICE,
            "manifest": yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text()), "cleanup": {"delay_s": 1}}
    if where == "post-switch":
        spec["post_switch"] = {"window_s": 120, "interval_s": 1}
    elif where == "timed-approval":
        spec["approval"] = {"mode": "timed", "auto_after_s": 120}
    else:
        spec["approval"] = {"mode": "manual", "timeout_s": 120}
    with EndpointSampler(kube, namespace, SERVICE) as sampler:
        run = prefect_ops.run("blue-green", {"spec": spec})
        if where == "post-switch":  # cancelled while green serves: the undo must switch back first
            wait_until("the post-switch window", lambda: "post-switch round 1:" in prefect_ops.logs(run), 120, 0.5)
            assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
        else:
            prefect_ops.wait_state(run, {"PAUSED"}, 120)
        prefect_ops.cancel(run)
        assert prefect_ops.wait_state(run, {"CANCELLED"}, 90) == "CANCELLED"
        # rolled back, verified: the Service on blue, its slices blue's 3 ready pods, green gone
        assert selector(kube, namespace, SERVICE) == {"target": "blue-dep"}
        assert wait_endpoints(kube, namespace, SERVICE, "blue-dep", 3, 10).ok
        assert ready(kube, namespace, "blue-dep") == 3
        wait_until("green removed", lambda: read(kube, "Deployment", namespace, "green-dep") is None, 30, 0.5)
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    print(f"cancel at {where}: {sampler.requests.summary()}")

    phase = "post-switch" if where == "post-switch" else "approval"
    report = _report(prefect_ops, run, "blue-green-production-svc-")
    assert "blue-green release `" in report and ": cancelled" in report, report
    assert f"release cancelled during {phase}: the flow run was cancelled in Prefect" in report, report
    assert "| rollback |" in report and "- ok: " in report and "FAILED" not in report, report
    if where == "post-switch":
        assert "switch Service production-svc back to blue-dep" in report, report
    prefect_ops.logs_with(run, f"release cancelled during {phase}")
    [entry] = _history(cluster, prefect_api, namespace, SERVICE)
    assert (entry["outcome"], entry["flow_run_id"]) == ("cancelled", run), entry
    wait_until("the rolled-back event", lambda: "greenlight.release.rolled-back" in _events(
        prefect_ops, namespace, SERVICE), 20, 0.5)
    assert "greenlight.release.failed" not in _events(prefect_ops, namespace, SERVICE)
    assert read(kube, "Lease", namespace, f"greenlight-{SERVICE}") is None  # released: the next release may start


CANARY_PAUSES = {  # each kind of canary pause, as the spec asks for it
    "timed": {"pause_s": 120},
    "approval": {"steps": [{"set_weight": 10}, {"pause": {}}, {"set_weight": 100}], "approval_timeout_s": 120},
    "inconclusive": {"analysis": {"http": None, "count": 1, "inconclusive_timeout_s": 120, "prometheus": [
        {"url": "http://127.0.0.1:9", "query": "up", "threshold": 1, "timeout_s": 2}]}},
}


@pytest.mark.both_ends
@pytest.mark.parametrize("pause", sorted(CANARY_PAUSES))
def test_cancelled_canary_aborts_to_stable_and_ends_cancelled(pause, prefect_ops, cluster, prefect_api, kube,
                                                              namespace, kubectl):
    given_applied(kubectl, TUTORIAL2 / "v1-deployment.yaml", TUTORIAL2 / "canary-service.yaml")
    given_ready(kube, namespace, V1)
    assert wait_endpoints(kube, namespace, SVC, V1, 10, 60).ok
    spec = {"namespace": namespace, "service": SVC, "stable": V1, **CANARY_PAUSES[pause],
            "manifest": yaml.safe_load((TUTORIAL2 / "v2-canary-deployment.yaml").read_text())}
    with EndpointSampler(kube, namespace, SVC) as sampler:
        run = prefect_ops.run("canary", {"spec": spec})

        def paused_at_10() -> bool:
            ann = (read(kube, "Service", namespace, SVC) or {}).get("metadata", {}).get("annotations") or {}
            return (ann.get("greenlight.io/canary-percent"), ann.get("greenlight.io/canary-state")) == (
                "10", f"paused-{pause}")

        wait_until("the canary paused at 10 %", paused_at_10, 120, 0.3)
        prefect_ops.cancel(run)
        assert prefect_ops.wait_state(run, {"CANCELLED"}, 90) == "CANCELLED"
        assert ready(kube, namespace, V1) == 10 and replicas(kube, namespace, V1) == 10
        assert replicas(kube, namespace, V2) in (0, None)
        assert wait_endpoints(kube, namespace, SVC, V1, 10, 10).ok
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    assert sampler.min_ready_after_start() >= 10, sampler.describe()
    print(f"cancel mid-canary: {sampler.requests.summary()}")
    ann = read(kube, "Service", namespace, SVC)["metadata"]["annotations"]
    assert ann["greenlight.io/canary-state"] == "aborted"
    report = _report(prefect_ops, run, "canary-my-app-service-")
    assert "canary release `" in report and ": cancelled" in report, report
    assert "release cancelled during steps: the flow run was cancelled in Prefect" in report, report
    assert f"- ok: abort: {V1} back to 10, then {V2} to 0" in report, report
    [entry] = _history(cluster, prefect_api, namespace, SVC)
    assert (entry["outcome"], entry["flow_run_id"]) == ("cancelled", run), entry
    assert read(kube, "Lease", namespace, f"greenlight-{SVC}") is None
