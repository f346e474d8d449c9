"""greenlight as a Prefect citizen, on the real cluster and a real Prefect server: releases started the way the UI
starts them (a flow run of a deployment, picked up by a process worker), the events they emit, the artifacts
they leave, the history they keep on the Service, invalid parameters refused before any run exists, an "image
pushed" event starting a release, and one release per Service however many runs start at once."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

from prefect_greenlight.tasks.kube.client import read
from tests.e2e.prefect_ops import PREFECT, allowing, prefect_env
from tests.e2e.release_helpers import (
    ROOT,
    TUTORIAL1,
    greenlight,
    greenlight_bg,
    paused_run_id,
    ready,
    replicas,
    selector,
    tutorial1,
    wait_until,
)
from tests.e2e.sampler import EndpointSampler

SERVICE = "production-svc"


def _green_manifest() -> dict:
    return yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text())


def _history(cluster, prefect_api, namespace) -> list[dict]:
    r = greenlight(cluster, prefect_api, "history", "-n", namespace, "--service", SERVICE, "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def _names(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


def _related_runs(event: dict) -> set[str]:
    return {r["prefect.resource.id"] for r in event.get("related", [])
            if r["prefect.resource.id"].startswith("prefect.flow-run.")}


def test_deployment_run_emits_events_writes_reports_and_history(prefect_ops, cluster, prefect_api, kube, namespace,
                                                                 kubectl):
    tutorial1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, SERVICE) as sampler:
        run = prefect_ops.run("blue-green", {"spec": {"namespace": namespace, "service": SERVICE,
                                                      "manifest": _green_manifest(), "cleanup": {"delay_s": 1}}})
        prefect_ops.wait_state(run, {"COMPLETED"}, 180)
    assert selector(kube, namespace, SERVICE) == {"target": "green-dep"} and replicas(kube, namespace, "blue-dep") == 0
    assert sampler.zero_ready_instants() == 0, sampler.describe()

    resource = f"greenlight.service.{namespace}.{SERVICE}"
    wait_until("the completed event", lambda: "greenlight.release.completed" in _names(
        prefect_ops.events("greenlight.release.", resource)), 20, 0.5)
    events = prefect_ops.events("greenlight.release.", resource)
    assert _names(events) == ["greenlight.release.started", "greenlight.release.switched",
                              "greenlight.release.completed"], events
    assert all(f"prefect.flow-run.{run}" in _related_runs(e) for e in events), events
    assert events[-1]["payload"]["deployment"] == "green-dep"
    assert events[0]["resource"]["greenlight.namespace"] == namespace

    artifacts = {a["key"]: a for a in prefect_ops.artifacts(run) if a.get("key")}
    progress = next(a for k, a in artifacts.items() if k.startswith("progress-production-svc-"))
    assert progress["type"] == "progress" and float(progress["data"]) == 100.0
    report = next(a for k, a in artifacts.items() if k.startswith("blue-green-production-svc-"))["data"]
    before, after = report.split("### EndpointSlices before")[1].split("### EndpointSlices after")
    assert "| blue-dep | 3 | 0 |" in before and "green-dep" not in before, report
    assert "| green-dep | 3 | 0 |" in after and "blue-dep" not in after, report
    assert "| switch |" in report and "| cleanup |" in report

    history = _history(cluster, prefect_api, namespace)
    assert [(h["strategy"], h["outcome"], h["from_deployment"], h["to_deployment"]) for h in history] == [
        ("blue-green", "released", "blue-dep", "green-dep")]
    assert history[0]["flow_run_id"] == run and history[0]["images"] == ["scubakiz/servicedemo:1.0"]


def test_rejected_release_records_the_approver_and_emits_rolled_back(cluster, prefect_api, prefect_ops, kube,
                                                                     namespace, kubectl, tmp_path):
    tutorial1(kubectl, kube, namespace)
    log = tmp_path / "release.log"
    with EndpointSampler(kube, namespace, SERVICE) as sampler:
        proc = greenlight_bg(cluster, prefect_api, "blue-green", "-n", namespace, "--service", SERVICE, "--manifest",
                             str(TUTORIAL1 / "green-dep.yaml"), "--approval", "manual", "--approval-timeout", "120",
                             log=log)
        run = paused_run_id(log, proc)
        assert greenlight(cluster, prefect_api, "reject", run, "--reason", "not today", "--approver",
                          "alice").returncode == 0
        assert proc.wait(120) == 1, log.read_text()[-3000:]
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    assert selector(kube, namespace, SERVICE) == {"target": "blue-dep"}

    resource = f"greenlight.service.{namespace}.{SERVICE}"
    wait_until("the failed event", lambda: "greenlight.release.failed" in _names(
        prefect_ops.events("greenlight.release.", resource)), 20, 0.5)
    events = prefect_ops.events("greenlight.release.", resource)
    assert _names(events) == ["greenlight.release.started", "greenlight.release.paused",
                              "greenlight.release.rolled-back", "greenlight.release.failed"], events
    assert events[2]["payload"]["deployment"] == "blue-dep" and "not today" in events[2]["payload"]["reason"]

    [entry] = _history(cluster, prefect_api, namespace)
    assert entry["outcome"] == "rejected" and entry["flow_run_id"] == run
    assert entry["approval"] == "rejected by alice (human): not today"
    approval = next(a for a in prefect_ops.artifacts(run) if (a.get("key") or "").startswith("approval-"))
    assert "rejected by alice (human): not today" in approval["data"]


def test_history_survives_losing_the_prefect_database(cluster, kube, namespace, kubectl, tmp_path):
    """A Prefect server of its own, whose database is deleted after the release: the history stays readable
    from the cluster, with the id of a flow run the new database no longer knows."""
    from tests.conftest import start_prefect_server

    tutorial1(kubectl, kube, namespace)
    home = tmp_path / "prefect-home"
    with start_prefect_server(home) as api:
        with EndpointSampler(kube, namespace, SERVICE) as sampler:
            r = greenlight(cluster, api, "blue-green", "-n", namespace, "--service", SERVICE, "--manifest",
                           str(TUTORIAL1 / "green-dep.yaml"), "--scale-down-delay", "0", "--json")
            assert r.returncode == 0, r.stderr[-3000:]
        assert sampler.zero_ready_instants() == 0, sampler.describe()
    databases = list(home.glob("*.db"))
    assert databases, f"no SQLite database in {home}: {list(home.iterdir())}"
    for db in home.glob("*.db*"):
        db.unlink()
    [entry] = _history(cluster, "http://127.0.0.1:9/api", namespace)  # no Prefect server at all
    assert (entry["outcome"], entry["to_deployment"]) == ("released", "green-dep")
    with start_prefect_server(home) as api:  # a fresh, empty database
        import requests

        assert requests.get(f"{api}/flow_runs/{entry['flow_run_id']}", timeout=10).status_code == 404
    plain = greenlight(cluster, "http://127.0.0.1:9/api", "history", "-n", namespace, "--service", SERVICE)
    assert plain.returncode == 0 and "released" in plain.stdout and entry["flow_run_id"] in plain.stdout


@pytest.mark.parametrize("deployment,parameters,field", [
    ("blue-green", {"spec": {"namespace": "default", "service": "Bad_Name", "image": "nginx:1.27"}}, "Bad_Name"),
    ("blue-green", {"spec": {"namespace": "default", "service": "web", "image": "not an image"}}, "not an image"),
    ("blue-green", {"spec": {"namespace": "default", "service": "web", "image": "nginx:1.27",
                             "cleanup": {"delay_s": -5}}}, "-5"),
    ("blue-green", {"spec": {"namespace": "default", "image": "nginx:1.27"}}, "service"),
    ("canary", {"spec": {"namespace": "default", "service": "web", "stable": "web-v1", "image": "nginx:1.27",
                         "total": -3}}, "-3"),
    ("canary", {"spec": {"namespace": "default", "service": "web", "stable": "web-v1", "image": "nginx:1.27",
                         "steps": "ten"}}, "ten"),
    ("rollback", {"namespace": "default", "service": "web", "cleanup": {"mode": "shred"}}, "shred"),
])
def test_invalid_deployment_parameters_are_rejected_before_any_run(prefect_ops, deployment, parameters, field):
    before = len(prefect_ops.flow_runs(deployment))
    resp = prefect_ops.create_run(deployment, parameters)
    assert resp.status_code == 409, f"{resp.status_code}: {resp.text[:1000]}"
    assert "Validation failed" in resp.text and field in resp.text, resp.text[:2000]
    assert len(prefect_ops.flow_runs(deployment)) == before, "no flow run was created"


def test_image_pushed_event_starts_a_release_with_its_image(prefect_ops, cluster, prefect_api, kube, namespace,
                                                             kubectl):
    tutorial1(kubectl, kube, namespace)
    image = "scubakiz/servicedemo:2.0"
    payload = {"image": image, "service": SERVICE, "namespace": namespace}
    def started() -> str | None:
        for fr in prefect_ops.flow_runs("blue-green"):
            spec = (fr.get("parameters") or {}).get("spec") or {}
            if spec.get("namespace") == namespace and spec.get("image") == image:
                return fr["id"]
        return None

    # the trigger's allow-list (a Prefect Variable, read at run time) names this test's Service only
    with allowing(prefect_api, f"{namespace}/{SERVICE}"), EndpointSampler(kube, namespace, SERVICE) as sampler:
        out = subprocess.run([*PREFECT, "event", "emit", "greenlight.image.pushed", "--resource-id",
                              "greenlight.image.scubakiz/servicedemo", "--payload", json.dumps(payload)],
                             capture_output=True, text=True, timeout=120, env=prefect_env(prefect_api), cwd=ROOT)
        assert out.returncode == 0, out.stdout + out.stderr
        run = wait_until("the triggered flow run", started, 90, 1)
        prefect_ops.wait_state(run, {"COMPLETED"}, 180)
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    green = read(kube, "Deployment", namespace, "green-dep")
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert selector(kube, namespace, SERVICE) == {"target": "green-dep"} and ready(kube, namespace, "green-dep") == 3


def test_two_runs_started_together_make_one_release(prefect_ops, cluster, prefect_api, kube, namespace, kubectl):
    """Two flow runs of one release, created together: one takes the Service's lock and pauses for approval
    (holding it, however late the worker starts the other); the other fails naming the lock holder. Once the
    winner is approved, there is one release and one history entry."""
    tutorial1(kubectl, kube, namespace)
    spec = {"namespace": namespace, "service": SERVICE, "manifest": _green_manifest(), "cleanup": {"delay_s": 1},
            "approval": {"mode": "manual", "timeout_s": 240}}
    with EndpointSampler(kube, namespace, SERVICE) as sampler:
        runs = [prefect_ops.run("blue-green", {"spec": spec}) for _ in range(2)]
        states = {r: prefect_ops.wait_state(r, {"PAUSED", "FAILED", "COMPLETED"}, 180) for r in runs}
        assert sorted(states.values()) == ["FAILED", "PAUSED"], states
        winner = next(r for r, state in states.items() if state == "PAUSED")
        loser = next(r for r, state in states.items() if state == "FAILED")
        prefect_ops.logs_with(loser, "another release holds the lock")
        answer = greenlight(cluster, prefect_api, "approve", winner, "--reason", "e2e", "--approver", "tester")
        assert answer.returncode == 0, answer.stderr[-2000:]
        assert prefect_ops.wait_state(winner, {"COMPLETED", "FAILED"}, 180) == "COMPLETED"
    assert selector(kube, namespace, SERVICE) == {"target": "green-dep"} and ready(kube, namespace, "green-dep") == 3
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    time.sleep(0.5)
    assert [h["outcome"] for h in _history_from(kube, namespace)] == ["released"], "one release, one entry"


def _history_from(kube, namespace) -> list[dict]:
    from prefect_greenlight.cli.status import release_history

    return release_history(kube, namespace, SERVICE)


class _Hook:
    """A local webhook receiver (127.0.0.1) recording every POSTed JSON body."""

    def __init__(self):
        import http.server
        import threading

        bodies = self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                bodies.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_rolled_back_automation_posts_to_a_webhook(cluster, prefect_api, kube, namespace, kubectl):
    """The documented automation (`greenlight webhook --url URL`): a failed release's rolled-back event makes the
    Prefect server POST a JSON body naming the Service to the webhook."""
    hook = _Hook()
    try:
        name = f"greenlight-webhook-{namespace}"[:60]
        r = greenlight(cluster, prefect_api, "webhook", "--url", hook.url, "--name", name, "--json")
        assert r.returncode == 0, r.stderr[-3000:]
        assert json.loads(r.stdout)["events"] == ["greenlight.release.rolled-back"]
        tutorial1(kubectl, kube, namespace)
        with EndpointSampler(kube, namespace, SERVICE) as sampler:
            r = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", SERVICE, "--image",
                           "scubakiz/servicedemo:fault-unhealthy", "--smoke-path", "/health")
            assert r.returncode == 1, r.stderr[-3000:]
        assert sampler.zero_ready_instants() == 0, sampler.describe()
        mine = lambda: [b for b in hook.bodies if b.get("namespace") == namespace]  # noqa: E731
        wait_until("the webhook call", mine, 60, 0.5)
        [body] = mine()
        assert body["event"] == "greenlight.release.rolled-back" and body["service"] == SERVICE
        assert body["deployment"] == "blue-dep" and "smoke" in body["reason"], body
    finally:
        hook.close()
