"""Safe to repeat (issue 13): every greenlight command run a second time, on the real local cluster through the real
CLI, either finishes what the first left or changes nothing. Each scenario runs under the EndpointSampler (which
also sends ClusterIP traffic and judges it when its block ends).
"""

from __future__ import annotations

import json
import time

import pytest

from prefect_greenlight.tasks.decisions.lease import DURATION_S, SKEW_S
from prefect_greenlight.tasks.kube.waiting import wait_endpoints
from tests.e2e.fault_helpers import deployment, poll, require_local, run_cli, start_cli
from tests.e2e.release_helpers import (
    TUTORIAL1,
    flow_run_final,
    greenlight,
    manifest_with,
    paused_run_id,
    ready,
    replicas,
    resource_versions,
    selector,
    tutorial1,
)
from tests.e2e.sampler import EndpointSampler

pytestmark = pytest.mark.usefixtures("prefect_api")
SVC, BLUE, GREEN = "production-svc", "blue-dep", "green-dep"
LEASE_EXPIRY_S = DURATION_S + SKEW_S


def rollback(cluster, prefect_api, namespace, *extra: str):
    return greenlight(cluster, prefect_api, "rollback", "-n", namespace, "--service", SVC, "--scale-down-delay", "1",
                      *extra)


def test_a_second_rollback_changes_nothing_and_to_goes_forward_again(cluster, prefect_api, kube, namespace,
                                                                      kubectl):
    tutorial1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, SVC) as sampler:
        r = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", SVC, "--manifest",
                       str(TUTORIAL1 / "green-dep.yaml"), "--scale-down-delay", "1")
        assert r.returncode == 0, r.stderr[-4000:]
        first = rollback(cluster, prefect_api, namespace)
        assert first.returncode == 0, first.stderr[-4000:]
        assert selector(kube, namespace, SVC) == {"target": BLUE} and replicas(kube, namespace, GREEN) == 0

        # Given the Service is back on blue-dep, When rollback runs again, Then nothing changes
        before = resource_versions(kube, namespace)
        second = rollback(cluster, prefect_api, namespace, "--json")
        assert second.returncode == 0, second.stderr[-4000:]
        assert json.loads(second.stdout)["outcome"] == "already-serves"
        assert "Deployment blue-dep already serves Service production-svc" in second.stderr, second.stderr[-3000:]
        assert "give --to green-dep" in second.stderr, second.stderr[-3000:]
        assert resource_versions(kube, namespace) == before, "a repeated rollback changed the cluster"

        # a Deployment that does not exist: bad input, nothing changed
        bad = rollback(cluster, prefect_api, namespace, "--to", "no-such-dep")
        assert bad.returncode == 2 and "no-such-dep" in bad.stderr, bad.stderr[-3000:]
        assert resource_versions(kube, namespace) == before

        # forward again only when asked for by name
        forward = rollback(cluster, prefect_api, namespace, "--to", GREEN)
        assert forward.returncode == 0, forward.stderr[-4000:]
        assert selector(kube, namespace, SVC) == {"target": GREEN}
        assert ready(kube, namespace, GREEN) == 3 and replicas(kube, namespace, BLUE) == 0
        assert wait_endpoints(kube, namespace, SVC, GREEN, 3, 10).ok
        again = rollback(cluster, prefect_api, namespace, "--to", GREEN)
        assert again.returncode == 0 and "Deployment green-dep already serves" in again.stderr, again.stderr[-3000:]
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    assert sampler.requests.sent() > 0
    print(f"\n[repeat] rollback twice + --to: ClusterIP requests {sampler.requests.sent()}, "
          f"zero-ready instants {sampler.zero_ready_instants()}, min ready {sampler.min_ready_after_start()}")


# ------------------------------------------------------------------------------------------ repeated release
IMAGE_V2 = "scubakiz/servicedemo:2.0"


def release(cluster, prefect_api, namespace, *how: str, delay: str = "1"):
    return greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", SVC, *how,
                      "--scale-down-delay", delay, "--json")


@pytest.mark.parametrize("mode", ["manifest", "image"])
def test_a_repeated_release_is_already_live_and_changes_nothing(cluster, prefect_api, kube, namespace, kubectl,
                                                                 tmp_path, mode):
    tutorial1(kubectl, kube, namespace)
    how = ["--manifest", str(TUTORIAL1 / "green-dep.yaml")] if mode == "manifest" else ["--image", IMAGE_V2]
    with EndpointSampler(kube, namespace, SVC) as sampler:
        first = release(cluster, prefect_api, namespace, *how)
        assert first.returncode == 0, first.stderr[-4000:]
        assert selector(kube, namespace, SVC) == {"target": GREEN} and replicas(kube, namespace, BLUE) == 0

        # Given the release finished, When the same command runs again, Then it is already live, nothing changed
        before = resource_versions(kube, namespace)
        again = release(cluster, prefect_api, namespace, *how)
        assert again.returncode == 0, again.stderr[-4000:]
        assert json.loads(again.stdout)["outcome"] == "already-live"
        assert "already live: Deployment green-dep serves Service production-svc with the same pod template" in \
            again.stderr, again.stderr[-3000:]
        assert resource_versions(kube, namespace) == before, "a repeated release changed the cluster"

        if mode == "manifest":  # another pod template under the live name: refused, nothing changed
            other = manifest_with(TUTORIAL1 / "green-dep.yaml", tmp_path, image=IMAGE_V2)
            refused = release(cluster, prefect_api, namespace, "--manifest", str(other))
            assert refused.returncode == 2, refused.stderr[-3000:]
            assert "already serves Service 'production-svc' with another pod template" in refused.stderr
            assert IMAGE_V2 in refused.stderr, refused.stderr[-3000:]
            assert resource_versions(kube, namespace) == before
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    print(f"\n[repeat] {mode} release twice: ClusterIP requests {sampler.requests.sent()}, "
          f"zero-ready instants {sampler.zero_ready_instants()}, min ready {sampler.min_ready_after_start()}")


def test_image_mode_killed_after_the_switch_resumes_then_is_already_live(cluster, prefect_api, kube, namespace,
                                                                        kubectl, tmp_path):
    """Image mode re-derived green from the now-live green; the re-run must resume green's release instead."""
    require_local(cluster)
    tutorial1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, SVC) as sampler:
        cli = start_cli(cluster, prefect_api, "blue-green", "-n", namespace, "--service", SVC, "--image", IMAGE_V2,
                        "--scale-down-delay", "60", log=tmp_path / "first.log")
        poll("the release to wait out its scale-down delay", lambda: cli.seen("scale-down delay"), 120, 0.05)
        cli.kill()
        assert selector(kube, namespace, SVC) == {"target": GREEN} and replicas(kube, namespace, BLUE) == 3
        resumed = run_cli(cluster, prefect_api, "blue-green", "-n", namespace, "--service", SVC, "--image", IMAGE_V2,
                          "--scale-down-delay", "1", "--lock-wait", str(LEASE_EXPIRY_S + 20), timeout=240)
        assert resumed.returncode == 0, resumed.stderr[-4000:]
        assert "resuming after the switch" in resumed.stderr, resumed.stderr[-3000:]
        # nothing derived again from the live green (that would be blue-dep with the new image, released anew)
        assert "applied Deployment" not in resumed.stderr, resumed.stderr[-3000:]
        blue_images = [c["image"] for c in deployment(kube, namespace, BLUE)["spec"]["template"]["spec"]["containers"]]
        assert blue_images == ["scubakiz/servicedemo:1.0"]
        assert selector(kube, namespace, SVC) == {"target": GREEN}
        assert ready(kube, namespace, GREEN) == 3 and replicas(kube, namespace, BLUE) == 0
        before = resource_versions(kube, namespace)
        third = release(cluster, prefect_api, namespace, "--image", IMAGE_V2)
        assert third.returncode == 0 and "already live" in third.stderr, third.stderr[-3000:]
        assert resource_versions(kube, namespace) == before
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    print(f"\n[repeat] image mode killed after the switch: ClusterIP requests {sampler.requests.sent()}, "
          f"zero-ready instants {sampler.zero_ready_instants()}, min ready {sampler.min_ready_after_start()}")


# ------------------------------------------------------------------------------------------ dead paused runs
def test_a_release_killed_in_its_approval_pause_is_not_answered_and_the_next_run_ends_it(
        cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    """Killed while Paused for approval: `approve` says the process is gone (exit 1) and answers nothing; the same
    release run again takes the Lease over, sets the dead run Crashed naming itself, and releases."""
    require_local(cluster)
    tutorial1(kubectl, kube, namespace)
    manifest = str(TUTORIAL1 / "green-dep.yaml")
    with EndpointSampler(kube, namespace, SVC) as sampler:
        cli = start_cli(cluster, prefect_api, "blue-green", "-n", namespace, "--service", SVC, "--manifest", manifest,
                        "--approval", "manual", "--approval-timeout", "300", "--scale-down-delay", "1",
                        log=tmp_path / "first.log")
        dead_run = paused_run_id(cli.log, cli.proc)
        killed_at = cli.kill()
        poll("the dead run's Lease to expire", lambda: time.monotonic() - killed_at > LEASE_EXPIRY_S + 1, 60, 0.5)
        answer = run_cli(cluster, prefect_api, "approve", dead_run, "--approver", "tester", timeout=60)
        assert answer.returncode == 1, answer.stderr[-3000:]
        assert f"flow run {dead_run} is paused but its Lease greenlight-{SVC} expired" in answer.stderr, \
            answer.stderr[-3000:]
        assert "nothing answered" in answer.stderr and "approved flow run" not in answer.stdout
        assert flow_run_final(dead_run, prefect_api)[0] == "PAUSED", "nothing was answered"
        assert selector(kube, namespace, SVC) == {"target": BLUE}

        again = release(cluster, prefect_api, namespace, "--manifest", manifest)
        assert again.returncode == 0, again.stderr[-4000:]
        state, message = flow_run_final(dead_run, prefect_api)
        assert state == "CRASHED", (state, message)
        assert "died: its Lease greenlight-production-svc expired unrenewed and was taken over by release" in message
        assert "(flow run " in message, message
        reject = run_cli(cluster, prefect_api, "reject", dead_run, timeout=60)
        assert reject.returncode == 1 and "is Crashed, not paused: nothing answered" in reject.stderr, \
            reject.stderr[-3000:]
    assert selector(kube, namespace, SVC) == {"target": GREEN} and ready(kube, namespace, GREEN) == 3
    assert replicas(kube, namespace, BLUE) == 0
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    print(f"\n[repeat] killed in the approval pause: ClusterIP requests {sampler.requests.sent()}, "
          f"zero-ready instants {sampler.zero_ready_instants()}, min ready {sampler.min_ready_after_start()}")
