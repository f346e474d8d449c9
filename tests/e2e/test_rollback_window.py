"""The rollback window (issue 24), through the greenlight worker and Prefect's scheduler, under ClusterIP traffic:

- released with `rollback_window_s`: the release completes at once (it does not sleep the window), blue stays
  scaled and ready without traffic, and a run of the window-cleanup deployment is Scheduled for the window's end;
- `greenlight rollback` inside the window is a selector switch only: the target still has its 3 replicas, no pod
  is started, the Service ends on the version asked for; the scheduled run then changes nothing (how fast the
  switch is, against a bare client's PATCH, is a benchmark: `bench.run window`, BENCHMARKS.md P2w);
- left alone, the scheduled run scales blue to 0 at the window's end — also when the worker that ran the release
  was SIGKILLed and another one started in between (the run lives in the Prefect server);
- a second release inside the window first takes the warm version out of service (as Argo does), keeps its own
  blue warm, and the first window's scheduled run then does nothing.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import yaml

from prefect_greenlight.tasks.decisions.window import WINDOW, read_window
from prefect_greenlight.tasks.kube.client import list_objects, read
from tests.e2e.prefect_ops import Worker, api_call, create_pool
from tests.e2e.release_helpers import ROOT, TUTORIAL1, greenlight, ready, replicas, selector, tutorial1, wait_until

SERVICE = "production-svc"
LOGS = ROOT / ".cache" / "test-logs"


def _spec(namespace: str, window_s: float) -> dict:
    return {"namespace": namespace, "service": SERVICE,
            "manifest": yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text()),
            "cleanup": {"mode": "scale-to-zero", "delay_s": 2}, "rollback_window_s": window_s}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _released_with_window(prefect_ops, kube, namespace: str, deployment: str, window_s: float) -> dict:
    """Given a release with a window, Then it completed well before the window's end, blue warm, its clean-up
    Scheduled for the window's end. Returns the window's end and its scheduled run."""
    t0 = time.monotonic()
    run = prefect_ops.run(deployment, {"spec": _spec(namespace, window_s)})
    assert prefect_ops.wait_state(run, {"COMPLETED"}, 180) == "COMPLETED", prefect_ops.logs(run)[-3000:]
    took = time.monotonic() - t0
    assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
    assert ready(kube, namespace, "blue-dep") == 3 and replicas(kube, namespace, "blue-dep") == 3, "blue kept warm"
    window = read_window(read(kube, "Service", namespace, SERVICE))
    assert window is not None and window.warm == "blue-dep" and window.cleanup_run, window
    cleanup = prefect_ops.flow_run(window.cleanup_run)
    assert cleanup["state"]["type"] == "SCHEDULED", cleanup["state"]
    assert abs(_when(cleanup["expected_start_time"]) - _when(window.until)) < timedelta(seconds=1), cleanup
    assert _when(window.until) - datetime.now(timezone.utc) > timedelta(seconds=window_s - took - 5)
    return {"until": window.until, "run": window.cleanup_run}


SWITCHES = ("blue-dep", "green-dep", "blue-dep", "green-dep", "blue-dep")  # rollback, forward again, ...: on blue


def _warm_switch(cluster, api: str, namespace: str, to: str, first: bool) -> None:
    """`greenlight rollback` (then `--to` forward again and back), both versions warm: the target kept its pods."""
    args = [] if first else ["--to", to]
    out = greenlight(cluster, api, "rollback", "-n", namespace, "--service", SERVICE, "--json", "--cleanup", "keep",
                     *args)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["outcome"] == "rolled-back" and result["live_deployment"] == to, result
    steps = {s["step"]: s for s in result["steps"]}
    assert steps["restore"]["detail"] == f"{to} still has 3 replicas", steps["restore"]
    assert [s["step"] for s in result["steps"]] == ["read-record", "restore", "wait-ready", "switch",
                                                     "verify-endpoints", "autoscaler", "cleanup"], result["steps"]


def _pod_uids(kube, namespace: str) -> set[str]:
    return {p["metadata"]["uid"] for p in list_objects(kube, "Pod", namespace)}


def test_a_rollback_inside_the_window_is_a_selector_switch_only_and_the_scheduled_run_then_changes_nothing(
        prefect_ops, prefect_api, cluster, kube, namespace, kubectl, traffic):
    tutorial1(kubectl, kube, namespace)
    with traffic(namespace, SERVICE, 8080, rate=40, duration_s=220) as check:
        window = _released_with_window(prefect_ops, kube, namespace, "blue-green", 90)
        status = greenlight(cluster, prefect_api, "status", "-n", namespace, "--service", SERVICE)
        assert f"rollback window: open until {window['until']}: blue-dep kept warm" in status.stdout, status.stdout
        assert f"then scale-to-zero by flow run {window['run']}" in status.stdout, status.stdout
        pods_before = _pod_uids(kube, namespace)
        for i, to in enumerate(SWITCHES):
            _warm_switch(cluster, prefect_api, namespace, to, i == 0)
        new_pods = _pod_uids(kube, namespace) - pods_before
        assert not new_pods, f"the rollback started {len(new_pods)} pod(s)"
        assert selector(kube, namespace, SERVICE) == {"target": "blue-dep"} and ready(kube, namespace,
                                                                                       "blue-dep") == 3
        # When the window ends, Then its scheduled run finds the Service rolled back and changes nothing
        assert prefect_ops.wait_state(window["run"], {"COMPLETED"}, 120) == "COMPLETED"
        prefect_ops.logs_with(window["run"], "nothing taken out of service: the Service serves blue-dep again")
        assert replicas(kube, namespace, "blue-dep") == 3 and ready(kube, namespace, "blue-dep") == 3
        assert WINDOW not in (read(kube, "Service", namespace, SERVICE)["metadata"].get("annotations") or {})
    assert not check.result.failed(), check.result.summary()


def test_after_the_window_its_scheduled_run_scales_blue_down_also_when_the_worker_restarted_in_between(
        prefect_ops, prefect_api, cluster, kube, namespace, kubectl, traffic):
    pool = f"window-{namespace[-6:]}"
    create_pool(prefect_api, pool, "greenlight")
    deployment = prefect_ops.copy_to_pool("blue-green", pool)
    cleanup = prefect_ops.copy_to_pool("window-cleanup", pool)
    env = {"GREENLIGHT_WINDOW_CLEANUP_DEPLOYMENT": f"blue-green-window-cleanup/{cleanup}"}
    first = Worker(prefect_api, cluster.kubeconfig, LOGS / f"worker-{pool}-1.log", pool=pool, env=env)
    second = None
    tutorial1(kubectl, kube, namespace)
    try:
        with traffic(namespace, SERVICE, 8080, rate=40, duration_s=150) as check:
            window = _released_with_window(prefect_ops, kube, namespace, deployment, 30)
            assert prefect_ops.flow_run(window["run"])["deployment_id"] == prefect_ops.deployments[cleanup]["id"]
            first.kill()  # SIGKILL: the worker that ran the release is gone; the scheduled run waits in the server
            time.sleep(3)
            assert prefect_ops.state(window["run"]) == "SCHEDULED"
            second = Worker(prefect_api, cluster.kubeconfig, LOGS / f"worker-{pool}-2.log", pool=pool, env=env)
            assert ready(kube, namespace, "blue-dep") == 3, "blue warm until the window's end"
            assert prefect_ops.wait_state(window["run"], {"COMPLETED"}, 120) == "COMPLETED", second.log()[-3000:]
            started = _when(prefect_ops.flow_run(window["run"])["start_time"])
            assert started >= _when(window["until"]) - timedelta(seconds=2), (started, window["until"])
            wait_until("blue scaled to 0", lambda: replicas(kube, namespace, "blue-dep") == 0, 30, 0.5)
            assert selector(kube, namespace, SERVICE) == {"target": "green-dep"} and ready(kube, namespace,
                                                                                            "green-dep") == 3
            prefect_ops.logs_with(window["run"], "closed: scaled Deployment blue-dep to 0")
            assert WINDOW not in (read(kube, "Service", namespace, SERVICE)["metadata"].get("annotations") or {})
            time.sleep(8)  # blue's pods drain (kwok deletes them 6-7 s after): traffic keeps running meanwhile
    finally:
        for w in (first, second):
            if w is not None:
                w.stop()
    assert not check.result.failed(), check.result.summary()


def _third(namespace: str, window_s: float) -> dict:
    """A release to a third Deployment, v3-dep (the tutorial's green manifest renamed)."""
    spec = _spec(namespace, window_s)
    doc = spec["manifest"]
    doc["metadata"]["name"] = "v3-dep"
    doc["spec"]["selector"]["matchLabels"]["target"] = "v3-dep"
    doc["spec"]["template"]["metadata"]["labels"]["target"] = "v3-dep"
    doc["spec"]["template"]["spec"]["containers"][0]["image"] = "scubakiz/servicedemo:2.0"
    return spec


def test_a_second_release_inside_the_window_first_takes_the_warm_version_out_then_keeps_its_own_blue_warm(
        prefect_ops, kube, namespace, kubectl, traffic):
    """Argo Rollouts' behaviour: a newer update during scaleDownDelaySeconds scales the older version down at once,
    so one previous version is kept warm, not two. The first window's scheduled run then does nothing."""
    tutorial1(kubectl, kube, namespace)
    with traffic(namespace, SERVICE, 8080, rate=40, duration_s=150) as check:
        first = _released_with_window(prefect_ops, kube, namespace, "blue-green", 40)
        run = prefect_ops.run("blue-green", {"spec": _third(namespace, 300)})
        assert prefect_ops.wait_state(run, {"COMPLETED"}, 180) == "COMPLETED", prefect_ops.logs(run)[-3000:]
        assert selector(kube, namespace, SERVICE) == {"target": "v3-dep"}
        assert replicas(kube, namespace, "blue-dep") == 0, "the first window's warm blue went first"
        assert ready(kube, namespace, "green-dep") == 3 and ready(kube, namespace, "v3-dep") == 3
        second = read_window(read(kube, "Service", namespace, SERVICE))
        assert second.warm == "green-dep" and second.live == "v3-dep" and second.cleanup_run != first["run"]
        prefect_ops.logs_with(run, "closed: scaled Deployment blue-dep to 0")
        assert prefect_ops.state(first["run"]) == "SCHEDULED"
        # When the first window's end comes, Then its run finds no window of its release and changes nothing
        assert prefect_ops.wait_state(first["run"], {"COMPLETED"}, 90) == "COMPLETED"
        prefect_ops.logs_with(first["run"], "nothing to do")
        assert ready(kube, namespace, "green-dep") == 3 and read_window(
            read(kube, "Service", namespace, SERVICE)) == second
    resp = api_call("DELETE", f"{prefect_ops.api}/flow_runs/{second.cleanup_run}")  # the namespace goes with the test
    assert resp.status_code in (200, 204), resp.text
    assert not check.result.failed(), check.result.summary()
