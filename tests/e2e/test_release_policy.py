"""Release windows and freezes (issue 24), on the local cluster under ClusterIP traffic: the policy is the Prefect
Variable greenlight_release_policy (each test's rules name only its own namespace, so the session's other tests
are not frozen).

- Outside its release window, and inside a freeze, `greenlight blue-green` exits 2 before anything changes (every
  resourceVersion in the namespace as it was, no Lease) and a `greenlight.release.refused` event names the rule;
  `--override-freeze REASON` lets it through, and the history and the events record the reason.
- A release scheduled with `prefect deployment run ... --start-in` (the README's command) that lands in a freeze is
  refused the same way: its run fails, nothing changes, the event names the freeze.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import yaml

from prefect_greenlight.tasks.decisions.policy import POLICY_VARIABLE
from tests.e2e.prefect_ops import PREFECT, allow_variable, prefect_env, set_allow_variable
from tests.e2e.release_helpers import (
    ROOT,
    TUTORIAL1,
    greenlight,
    resource_versions,
    selector,
    tutorial1,
    wait_until,
)

SERVICE = "production-svc"


@contextmanager
def policy(api: str, value: dict) -> Iterator[None]:
    before = allow_variable(api, POLICY_VARIABLE)
    set_allow_variable(api, value, POLICY_VARIABLE)
    try:
        yield
    finally:
        set_allow_variable(api, before, POLICY_VARIABLE)


def _freeze(namespace: str) -> dict:
    now = datetime.now(timezone.utc)
    return {"name": f"freeze-{namespace[-6:]}", "services": [f"{namespace}/*"], "reason": "e2e change freeze",
            "from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}


def _release(cluster, api: str, namespace: str, *extra: str):
    return greenlight(cluster, api, "blue-green", "-n", namespace, "--service", SERVICE, "--manifest",
                      str(TUTORIAL1 / "green-dep.yaml"), "--cleanup", "keep", "--scale-down-delay", "0", "--json",
                      *extra)


def _refused(prefect_ops, namespace: str, count: int) -> list[dict]:
    resource = f"greenlight.service.{namespace}.{SERVICE}"

    def found() -> list[dict] | None:
        events = prefect_ops.events("greenlight.release.refused", resource)
        return events if len(events) >= count else None

    return wait_until(f"{count} refused event(s)", found, 30, 0.5)


def test_outside_its_window_and_in_a_freeze_a_release_is_refused_and_an_override_lets_it_through(
        prefect_ops, prefect_api, cluster, kube, namespace, kubectl, traffic):
    tutorial1(kubectl, kube, namespace)
    closed_hour = (datetime.now(timezone.utc).hour + 12) % 24
    window = {"name": f"night-{namespace[-6:]}", "services": [f"{namespace}/{SERVICE}"],
              "cron": f"* {closed_hour} * * *", "timezone": "UTC"}
    freeze = _freeze(namespace)
    with traffic(namespace, SERVICE, 8080, rate=20, duration_s=150) as check:
        before = resource_versions(kube, namespace)
        # Given a release window that is closed now, When a release starts, Then it is refused before any change
        with policy(prefect_api, {"windows": [window]}):
            out = _release(cluster, prefect_api, namespace)
        assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
        assert f"outside-window {window['name']}" in out.stderr and "the next opens at" in out.stderr, out.stderr
        # Given a freeze, When a release starts, Then refused, naming the freeze and its reason
        with policy(prefect_api, {"windows": [], "freezes": [freeze]}):
            out = _release(cluster, prefect_api, namespace)
            assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
            assert f"freeze {freeze['name']}" in out.stderr and "e2e change freeze" in out.stderr, out.stderr
            assert resource_versions(kube, namespace) == before, "nothing changed, no Lease"
            # the plan says what the policy says (a dry run is never refused: it changes nothing)
            plan = _release(cluster, prefect_api, namespace, "--dry-run")
            assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-2000:]
            facts = json.loads(plan.stdout)["plan"]["facts"]
            assert facts["policy"].startswith("the release would be refused") and freeze["name"] in facts["policy"]
            events = _refused(prefect_ops, namespace, 2)
            assert [(e["payload"]["refusal"], e["payload"]["rule"]) for e in events] == [
                ("outside-window", window["name"]), ("freeze", freeze["name"])], events
            # When someone overrides the freeze with a reason, Then it releases, recorded in history and events
            out = _release(cluster, prefect_api, namespace, "--override-freeze", "hotfix INC-4711")
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert json.loads(out.stdout)["outcome"] == "released"
        assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
    assert not check.result.failed(), check.result.summary()
    history = json.loads(greenlight(cluster, prefect_api, "history", "-n", namespace, "--service", SERVICE,
                                    "--json").stdout)
    assert history[-1]["outcome"] == "released"
    assert history[-1]["override"] == f"freeze {freeze['name']} overridden: hotfix INC-4711", history[-1]
    resource = f"greenlight.service.{namespace}.{SERVICE}"
    started = prefect_ops.events("greenlight.release.started", resource, timeout=20)
    assert started and started[-1]["payload"]["override"] == history[-1]["override"], started


def test_a_scheduled_release_landing_in_a_freeze_is_refused_with_an_event_naming_the_rule(
        prefect_ops, prefect_api, kube, namespace, kubectl):
    tutorial1(kubectl, kube, namespace)
    freeze = _freeze(namespace)
    spec = {"namespace": namespace, "service": SERVICE,
            "manifest": yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text()),
            "cleanup": {"mode": "keep", "delay_s": 0}}
    before = resource_versions(kube, namespace)
    with policy(prefect_api, {"freezes": [freeze]}):
        # the README's one-off schedule, exactly: the run waits in Scheduled, then Prefect's worker starts it
        out = subprocess.run([*PREFECT, "deployment", "run", "blue-green-release/blue-green", "--start-in",
                              "5 seconds", "--params", json.dumps({"spec": spec})], capture_output=True, text=True,
                             timeout=120, env=prefect_env(prefect_api), cwd=ROOT, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        [run] = wait_until("the scheduled run", lambda: [
            r for r in prefect_ops.flow_runs("blue-green")
            if ((r.get("parameters") or {}).get("spec") or {}).get("namespace") == namespace], 30, 0.5)
        assert run["state"]["type"] == "SCHEDULED", run["state"]
        assert prefect_ops.wait_state(run["id"], {"FAILED"}, 120) == "FAILED"
        [event] = _refused(prefect_ops, namespace, 1)
    assert event["payload"]["rule"] == freeze["name"] and event["payload"]["refusal"] == "freeze", event
    assert "e2e change freeze" in event["payload"]["reason"]
    related = [r["prefect.resource.id"] for r in event.get("related", [])]
    assert f"prefect.flow-run.{run['id']}" in related, related
    assert resource_versions(kube, namespace) == before and selector(kube, namespace, SERVICE) == {
        "target": "blue-dep"}
