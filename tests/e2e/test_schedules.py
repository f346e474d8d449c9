"""Scheduled releases fire: Prefect's own scheduler creates the flow run at the set time and the greenlight worker
releases it, under ClusterIP traffic, on both ends of the supported Prefect range (the lowest one's server needs
SQLAlchemy < 2.1 for its scheduler: constraints/prefect-lowest.txt).

- A recurring schedule: a deployment of the blue-green flow with an active interval schedule whose parameters
  are the release spec (what a `schedules:` entry of prefect.yaml creates).
- A one-off release at a set time: `prefect deployment run blue-green-release/blue-green --start-in ...`, the
  README's command, exactly.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from tests.e2e.prefect_ops import PREFECT, api_call, prefect_env
from tests.e2e.release_helpers import ROOT, TUTORIAL1, selector, tutorial1, wait_until

SERVICE = "production-svc"
LEAD_S = 20  # the schedule's first run lies this far ahead: the scheduler must create it, not the test


def _spec(namespace: str) -> dict:
    return {"namespace": namespace, "service": SERVICE,
            "manifest": yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text()),
            "cleanup": {"mode": "keep", "delay_s": 0}}


def _scheduled_deployment(prefect_ops, namespace: str, first_run: datetime) -> str:
    """A deployment of the blue-green flow on the greenlight pool, with an hourly schedule starting at
    `first_run`, the release spec as the schedule's parameters; returns its id."""
    base = prefect_ops.deployments["blue-green"]
    body = {"name": f"scheduled-{namespace}", "flow_id": base["flow_id"], "work_pool_name": "greenlight",
            "entrypoint": base["entrypoint"], "pull_steps": base["pull_steps"], "path": base.get("path"),
            "parameter_openapi_schema": base["parameter_openapi_schema"], "enforce_parameter_schema": True,
            "schedules": [{"schedule": {"interval": 3600, "anchor_date": first_run.isoformat(), "timezone": "UTC"},
                           "active": True, "parameters": {"spec": _spec(namespace)}}]}
    resp = api_call("POST", f"{prefect_ops.api}/deployments/", json=body)
    assert resp.status_code in (200, 201), f"{resp.status_code}: {resp.text[:2000]}"
    return resp.json()["id"]


def _runs_of(prefect_ops, deployment_id: str) -> list[dict]:
    resp = api_call("POST", f"{prefect_ops.api}/flow_runs/filter",
                    json={"deployments": {"id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_ASC"})
    resp.raise_for_status()
    return resp.json()


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _then_released_at_its_time(prefect_ops, kube, namespace: str, run: dict, scheduled: datetime,
                               traffic_check) -> None:
    assert prefect_ops.wait_state(run["id"], {"COMPLETED"}, 240) == "COMPLETED"
    started = _when(prefect_ops.flow_run(run["id"])["start_time"])
    assert started >= scheduled - timedelta(seconds=1), f"started {started}, scheduled for {scheduled}"
    assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
    result = traffic_check.result
    assert not result.failed(), result.summary()


@pytest.mark.both_ends
def test_an_active_schedule_makes_prefects_scheduler_start_the_release(prefect_ops, kube, namespace, kubectl,
                                                                     traffic):
    tutorial1(kubectl, kube, namespace)
    first_run = datetime.now(timezone.utc) + timedelta(seconds=LEAD_S)
    deployment_id = _scheduled_deployment(prefect_ops, namespace, first_run)
    try:
        with traffic(namespace, SERVICE, 8080, rate=20, duration_s=LEAD_S + 120) as check:
            runs = wait_until("the scheduler's runs", lambda: _runs_of(prefect_ops, deployment_id), LEAD_S, 0.5)
            first = runs[0]
            assert first["auto_scheduled"] is True and first["state"]["type"] == "SCHEDULED", first
            assert abs(_when(first["expected_start_time"]) - first_run) < timedelta(seconds=1), first
            assert first["parameters"]["spec"]["namespace"] == namespace
            assert selector(kube, namespace, SERVICE) == {"target": "blue-dep"}  # nothing before its time
            assert prefect_ops.wait_state(first["id"], {"COMPLETED"}, LEAD_S + 120) == "COMPLETED"
        _then_released_at_its_time(prefect_ops, kube, namespace, first, first_run, check)
    finally:
        api_call("DELETE", f"{prefect_ops.api}/deployments/{deployment_id}")  # and its later scheduled runs


@pytest.mark.both_ends
def test_a_one_off_release_at_a_set_time(prefect_ops, prefect_api, kube, namespace, kubectl, traffic):
    """The README's command for a release at a set time, as written there (`--start-in`; `--start-at` takes a
    date and time)."""
    tutorial1(kubectl, kube, namespace)
    asked = datetime.now(timezone.utc)
    with traffic(namespace, SERVICE, 8080, rate=20, duration_s=LEAD_S + 120) as check:
        out = subprocess.run([*PREFECT, "deployment", "run", "blue-green-release/blue-green",
                              "--start-in", f"{LEAD_S} seconds", "--params", json.dumps({"spec": _spec(namespace)})],
                             capture_output=True, text=True, env=prefect_env(prefect_api), cwd=ROOT, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        run_id = next(line.split()[-1] for line in out.stdout.splitlines() if "UUID:" in line)
        run = prefect_ops.flow_run(run_id)
        scheduled = _when(run["expected_start_time"])
        assert run["state"]["type"] == "SCHEDULED" and scheduled >= asked + timedelta(seconds=LEAD_S - 2), run
        assert selector(kube, namespace, SERVICE) == {"target": "blue-dep"}
        assert prefect_ops.wait_state(run_id, {"COMPLETED"}, LEAD_S + 120) == "COMPLETED"
    _then_released_at_its_time(prefect_ops, kube, namespace, run, scheduled, check)
