"""Rollback on an alert (issue 24): `prefect event emit greenlight.alert` with the namespace and Service in its
payload starts the `alert-rollback` deployment through the trigger of prefect.yaml (deployed by the session as
users deploy it). Under ClusterIP traffic:

- inside the Service's rollback window (and allow-listed): rolled back to the warm blue, no pod started, the
  history records the alert that asked;
- outside any window (blue kept, but the release had no window): nothing changes, and a
  `greenlight.release.refused` event says why; a Service outside the allow-list is refused even inside a window.
"""

from __future__ import annotations

import json
import subprocess

import yaml

from prefect_greenlight.tasks.kube.client import list_objects, read
from tests.e2e.prefect_ops import PREFECT, allowing, prefect_env
from tests.e2e.release_helpers import ROOT, TUTORIAL1, greenlight, ready, selector, tutorial1, wait_until

SERVICE = "production-svc"


def _release(prefect_ops, kube, namespace: str, window_s: float) -> None:
    spec = {"namespace": namespace, "service": SERVICE,
            "manifest": yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text()),
            "cleanup": {"mode": "keep" if not window_s else "scale-to-zero", "delay_s": 2},
            "rollback_window_s": window_s}
    run = prefect_ops.run("blue-green", {"spec": spec})
    assert prefect_ops.wait_state(run, {"COMPLETED"}, 180) == "COMPLETED", prefect_ops.logs(run)[-3000:]
    assert selector(kube, namespace, SERVICE) == {"target": "green-dep"} and ready(kube, namespace, "blue-dep") == 3


def _alert(api: str, namespace: str, name: str) -> None:
    payload = {"namespace": namespace, "service": SERVICE, "alertname": name}
    out = subprocess.run([*PREFECT, "event", "emit", "greenlight.alert", "--resource-id",
                          f"greenlight.alert.{namespace}", "--payload", json.dumps(payload)],
                         capture_output=True, text=True, timeout=120, env=prefect_env(api), cwd=ROOT, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def _alert_run(prefect_ops, namespace: str, seen: set[str]) -> str:
    def new() -> list[str]:
        return [r["id"] for r in prefect_ops.flow_runs("alert-rollback")
                if (r.get("parameters") or {}).get("namespace") == namespace and r["id"] not in seen]

    [run] = wait_until("the alert's rollback run", new, 90, 1)
    seen.add(run)
    return run


def _pod_uids(kube, namespace: str) -> set[str]:
    return {p["metadata"]["uid"] for p in list_objects(kube, "Pod", namespace)}


def test_an_alert_inside_the_window_rolls_back_and_the_history_says_which_alert_asked(
        prefect_ops, prefect_api, cluster, kube, namespace, kubectl, traffic):
    tutorial1(kubectl, kube, namespace)
    with allowing(prefect_api, f"{namespace}/{SERVICE}"), traffic(namespace, SERVICE, 8080, rate=20,
                                                                   duration_s=200) as check:
        _release(prefect_ops, kube, namespace, 120)
        pods = _pod_uids(kube, namespace)
        _alert(prefect_api, namespace, "HighErrorRate")
        run = _alert_run(prefect_ops, namespace, set())
        assert prefect_ops.wait_state(run, {"COMPLETED"}, 150) == "COMPLETED", prefect_ops.logs(run)[-3000:]
        assert selector(kube, namespace, SERVICE) == {"target": "blue-dep"} and ready(kube, namespace,
                                                                                       "blue-dep") == 3
        assert not (_pod_uids(kube, namespace) - pods), "the alert's rollback started a pod"
    assert not check.result.failed(), check.result.summary()
    history = json.loads(greenlight(cluster, prefect_api, "history", "-n", namespace, "--service", SERVICE,
                                    "--json").stdout)
    assert history[-1]["strategy"] == "rollback" and history[-1]["outcome"] == "rolled-back", history[-1]
    assert history[-1]["asked_by"].startswith("alert HighErrorRate (event "), history[-1]
    assert history[-1]["flow_run_id"] == run


def test_an_alert_outside_the_window_changes_nothing_and_an_event_says_why(
        prefect_ops, prefect_api, kube, namespace, kubectl, traffic):
    tutorial1(kubectl, kube, namespace)
    resource, seen = f"greenlight.service.{namespace}.{SERVICE}", set()
    with traffic(namespace, SERVICE, 8080, rate=20, duration_s=150) as check:
        _release(prefect_ops, kube, namespace, 0)  # blue kept as it is, but no rollback window
        before = read(kube, "Service", namespace, SERVICE)["metadata"]["resourceVersion"]
        # Given a Service outside the allow-list, Then the alert is refused (its run fails), nothing changes
        _alert(prefect_api, namespace, "NotListed")
        run = _alert_run(prefect_ops, namespace, seen)
        assert prefect_ops.wait_state(run, {"FAILED"}, 90) == "FAILED"
        with allowing(prefect_api, f"{namespace}/{SERVICE}"):
            # Given an allow-listed Service without an open window, When an alert fires, Then nothing changes
            _alert(prefect_api, namespace, "LatencyHigh")
            run = _alert_run(prefect_ops, namespace, seen)
            assert prefect_ops.wait_state(run, {"COMPLETED"}, 90) == "COMPLETED", prefect_ops.logs(run)[-3000:]
            refused = wait_until("two refused events", lambda: (
                e if len(e := prefect_ops.events("greenlight.release.refused", resource)) >= 2 else None), 30, 0.5)
        assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
        assert read(kube, "Service", namespace, SERVICE)["metadata"]["resourceVersion"] == before
    assert not check.result.failed(), check.result.summary()
    listed, window = refused[0]["payload"], refused[1]["payload"]
    assert "not in the allow-list" in listed["reason"] and listed["asked_by"].startswith("NotListed"), listed
    assert window["rule"] == "rollback-window" and window["refusal"] == "no-window", window
    assert window["reason"].startswith("alert LatencyHigh (event ") and "outside its rollback window" in \
        window["reason"] and "nothing was changed" in window["reason"], window
    assert read(kube, "Deployment", namespace, "blue-dep")["spec"]["replicas"] == 3
