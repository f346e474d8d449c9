"""Safe to repeat, canary (issue 13): a canary killed in a pause and run again resumes at its recorded step with its
RECORDED total, not the shrunken stable's; `greenlight abort` after a kill restores that total. On the real local
cluster through the real CLI, under the EndpointSampler (EndpointSlices and ClusterIP traffic).
"""

from __future__ import annotations

import json
import time

import pytest

from prefect_greenlight.tasks.decisions.lease import DURATION_S, SKEW_S
from prefect_greenlight.tasks.kube.client import read
from prefect_greenlight.tasks.kube.waiting import wait_endpoints
from tests.e2e.fault_helpers import deployment, poll, require_local, run_cli, start_cli
from tests.e2e.release_helpers import (
    TUTORIAL2,
    flow_run_final,
    given_applied,
    given_ready,
    paused_run_id,
    ready,
    replicas,
)
from tests.e2e.sampler import EndpointSampler

pytestmark = pytest.mark.usefixtures("prefect_api")
SVC, V1, V2 = "my-app-service", "my-app-v1", "my-app-v2"
LEASE_EXPIRY_S = DURATION_S + SKEW_S


def given_v1(kubectl, kube, namespace) -> None:
    given_applied(kubectl, TUTORIAL2 / "v1-deployment.yaml", TUTORIAL2 / "canary-service.yaml")
    given_ready(kube, namespace, V1)
    assert wait_endpoints(kube, namespace, SVC, V1, 10, 60).ok


def canary(namespace: str, pause: str, *extra: str) -> list[str]:
    return ["canary", "-n", namespace, "--service", SVC, "--stable", V1, "--manifest",
            str(TUTORIAL2 / "v2-canary-deployment.yaml"), "--steps", "30,100", "--no-analysis", "--pause", pause,
            *extra]


def progress(kube, namespace) -> dict[str, str]:
    ann = read(kube, "Service", namespace, SVC)["metadata"].get("annotations") or {}
    return {k.removeprefix("greenlight.io/canary-"): v for k, v in ann.items() if k.startswith("greenlight.io/canary-")}


def kill_in_pause(cluster, prefect_api, kube, namespace, tmp_path, name: str, *extra: str) -> tuple[str, float]:
    """Start a canary that pauses 300 s after its first step (30 %: 3 / 7), SIGKILL it once Prefect has it PAUSED."""
    cli = start_cli(cluster, prefect_api, *canary(namespace, "300", *extra), log=tmp_path / f"{name}.log")
    run_id = paused_run_id(cli.log, cli.proc)
    killed_at = cli.kill()
    assert (replicas(kube, namespace, V2), replicas(kube, namespace, V1)) == (3, 7)
    p = progress(kube, namespace)
    assert (p["total"], p["steps"], p["step"], p["state"]) == ("10", "30,100", "1/2", "paused-timed"), p
    return run_id, killed_at


def test_a_killed_canary_resumes_at_its_step_with_the_recorded_total(cluster, prefect_api, kube, namespace,
                                                                     kubectl, tmp_path):
    require_local(cluster)
    given_v1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, SVC) as sampler:
        dead_run, _ = kill_in_pause(cluster, prefect_api, kube, namespace, tmp_path, "first")
        # another total (or other steps) than the unfinished canary's: refused, nothing changed
        other = run_cli(cluster, prefect_api, *canary(namespace, "0", "--total", "7"), timeout=120)
        assert other.returncode == 2, other.stderr[-3000:]
        assert "--total 7 differs from the recorded total 10" in other.stderr, other.stderr[-3000:]
        assert (replicas(kube, namespace, V2), replicas(kube, namespace, V1)) == (3, 7)

        again = run_cli(cluster, prefect_api, *canary(namespace, "1", "--json", "--lock-wait",
                                                     str(LEASE_EXPIRY_S + 20)), timeout=300)
        assert again.returncode == 0, again.stderr[-4000:]
        assert "resuming the unfinished canary my-app-v2 of stable my-app-v1" in again.stderr, again.stderr[-3000:]
        assert "at step 1/2 (30 %) with the recorded total 10" in again.stderr, again.stderr[-3000:]
        result = json.loads(again.stdout)
        assert result["total"] == 10
        # the killed run, PAUSED until now, is Crashed, naming what took over
        state, message = flow_run_final(dead_run, prefect_api)
        assert state == "CRASHED" and "expired unrenewed and was taken over by release" in message, (state, message)
        assert [(s["percent"], s["canary_ready"], s["stable_ready"]) for s in result["splits"]] == \
            [(30, 3, 7), (100, 10, 0)]
    assert ready(kube, namespace, V2) == 10 and deployment(kube, namespace, V1) is None
    assert wait_endpoints(kube, namespace, SVC, V2, 10, 10).ok
    assert progress(kube, namespace)["state"] == "promoted"
    assert sampler.zero_ready_instants() == 0 and sampler.min_ready_after_start() >= 10, sampler.describe()
    print(f"\n[repeat canary] killed paused, resumed: ClusterIP requests {sampler.requests.sent()}, "
          f"min ready {sampler.min_ready_after_start()}")


def test_abort_after_a_resumed_canary_is_killed_restores_the_recorded_total(cluster, prefect_api, kube, namespace,
                                                                           kubectl, tmp_path):
    """Killed, resumed (which before took its total from the shrunken stable: 7), killed again: the abort brings
    stable back to the recorded 10."""
    require_local(cluster)
    given_v1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, SVC) as sampler:
        kill_in_pause(cluster, prefect_api, kube, namespace, tmp_path, "first")
        kill_in_pause(cluster, prefect_api, kube, namespace, tmp_path, "second", "--lock-wait",
                      str(LEASE_EXPIRY_S + 20))
        killed_at = time.monotonic()
        poll("the second run's Lease to expire", lambda: time.monotonic() - killed_at > LEASE_EXPIRY_S, 60, 0.5)
        abort = run_cli(cluster, prefect_api, "abort", "-n", namespace, "--service", SVC, timeout=300)
        assert abort.returncode == 0, abort.stderr[-3000:]
        assert "my-app-v1 back to 10 ready pods" in abort.stdout + abort.stderr, abort.stderr[-3000:]
    assert ready(kube, namespace, V1) == 10 and replicas(kube, namespace, V1) == 10
    assert replicas(kube, namespace, V2) == 0
    assert wait_endpoints(kube, namespace, SVC, V1, 10, 10).ok
    assert progress(kube, namespace)["state"] == "aborted"
    assert sampler.zero_ready_instants() == 0 and sampler.min_ready_after_start() >= 10, sampler.describe()
    print(f"\n[repeat canary] killed twice, aborted: ClusterIP requests {sampler.requests.sent()}, "
          f"min ready {sampler.min_ready_after_start()}")


def test_abort_of_a_paused_canary_whose_process_is_gone_cancels_its_run(cluster, prefect_api, kube, namespace,
                                                                      kubectl, tmp_path):
    """Killed in its pause; `abort` rejects the run through Prefect, but no process reads the answer: once the
    Lease expires the abort restores stable itself and ends the dead run Cancelled (not Running forever)."""
    require_local(cluster)
    given_v1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, SVC) as sampler:
        dead_run, _ = kill_in_pause(cluster, prefect_api, kube, namespace, tmp_path, "first")
        abort = run_cli(cluster, prefect_api, "abort", "-n", namespace, "--service", SVC, timeout=300)
        assert abort.returncode == 0, abort.stderr[-3000:]
        # the abort waits for the dead run's Lease to expire; on a loaded host the abort's own start can take
        # longer than the Lease's 15 s, and then it finds it expired already: the same takeover either way
        said = abort.stdout + abort.stderr
        assert ("let its lock expire without aborting" in said or "took over the expired lease" in said), said[-3000:]
        state, message = flow_run_final(dead_run, prefect_api)
        assert state == "CANCELLED" and "taken over by abort" in message, (state, message)
        promote = run_cli(cluster, prefect_api, "promote", dead_run, timeout=60)
        assert promote.returncode == 1 and "is Cancelled, not paused: nothing answered" in promote.stderr, \
            promote.stderr[-3000:]
    assert ready(kube, namespace, V1) == 10 and replicas(kube, namespace, V2) == 0
    assert wait_endpoints(kube, namespace, SVC, V1, 10, 10).ok
    assert sampler.zero_ready_instants() == 0 and sampler.min_ready_after_start() >= 10, sampler.describe()
    print(f"\n[repeat canary] paused run gone, aborted: ClusterIP requests {sampler.requests.sent()}, "
          f"min ready {sampler.min_ready_after_start()}")
