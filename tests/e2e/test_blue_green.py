"""Blue-green releases on the real cluster, through the real CLI, each watched by the availability sampler:
the Service must never have zero ready endpoints and must never route to a version that failed."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from prefect_greenlight.tasks.kube.client import read
from prefect_greenlight.tasks.kube.observe import ready_pods_of
from prefect_greenlight.tasks.kube.waiting import wait_endpoints
from tests.e2e.release_helpers import (
    TUTORIAL1,
    TUTORIAL2,
    greenlight,
    greenlight_bg,
    page_of_pod,
    paused_run_id,
    ready,
    replicas,
    selector,
    tutorial1,
    tutorial2,
    wait_until,
)
from tests.e2e.sampler import EndpointSampler
from tests.e2e.traffic_checks import assert_failures_only_while_serving

pytestmark = pytest.mark.usefixtures("prefect_api")


def _bg(cluster, prefect_api, namespace, tmp_path, *extra, name="release"):
    log = tmp_path / f"{name}.log"
    proc = greenlight_bg(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                         "--manifest", str(TUTORIAL1 / "green-dep.yaml"), *extra, log=log)
    return proc, log


@pytest.mark.both_ends
def test_tutorial1_released_blue_to_green_then_rolled_back(cluster, prefect_api, kube, namespace, kubectl):
    tutorial1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        r = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                       "--manifest", str(TUTORIAL1 / "green-dep.yaml"), "--scale-down-delay", "1", "--json")
        assert r.returncode == 0, r.stderr[-4000:]
        result = json.loads(r.stdout)
        assert result["outcome"] == "released" and result["live_deployment"] == "green-dep"
        assert [s["step"] for s in result["steps"]] == ["preflight", "apply", "wait-ready", "smoke-test", "approval",
                                                        "switch", "verify-endpoints", "post-switch", "cleanup"]
        assert selector(kube, namespace, "production-svc") == {"target": "green-dep"}
        assert replicas(kube, namespace, "blue-dep") == 0, "default cleanup scales blue to zero"
        pods = ready_pods_of(kube, namespace, "green-dep")
        assert len(pods) == 3
        assert "IMAGE_COLOR: green" in page_of_pod(kube, namespace, pods[0]["metadata"]["name"])
        ann = read(kube, "Service", namespace, "production-svc")["metadata"]["annotations"]
        assert ann["greenlight.io/live-deployment"] == "green-dep"
        assert ann["greenlight.io/previous-deployment"] == "blue-dep"
        st = greenlight(cluster, prefect_api, "status", "-n", namespace, "--service", "production-svc", "--json")
        assert st.returncode == 0 and json.loads(st.stdout)["live_deployment"] == "green-dep", st.stderr[-2000:]

        r = greenlight(cluster, prefect_api, "rollback", "-n", namespace, "--service", "production-svc",
                       "--scale-down-delay", "1")
        assert r.returncode == 0, r.stderr[-4000:]
    assert selector(kube, namespace, "production-svc") == {"target": "blue-dep"}
    assert ready(kube, namespace, "blue-dep") == 3
    assert replicas(kube, namespace, "green-dep") == 0
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    assert {"blue-dep", "green-dep"} <= {k for c in sampler.ready_by_deployment() for k in c}, sampler.describe()


def test_tutorial2_released_and_rolled_back(cluster, prefect_api, kube, namespace, kubectl):
    tutorial2(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, "my-app-service") as sampler:
        r = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "my-app-service",
                       "--manifest", str(TUTORIAL2 / "green-deployment.yaml"), "--cleanup", "delete",
                       "--scale-down-delay", "1")
        assert r.returncode == 0, r.stderr[-4000:]
        assert selector(kube, namespace, "my-app-service") == {"app": "my-app", "version": "green"}
        assert read(kube, "Deployment", namespace, "my-app-blue") is None, "cleanup: delete"
        # blue was deleted: rollback recreates it from the manifest recorded on the Service
        r = greenlight(cluster, prefect_api, "rollback", "-n", namespace, "--service", "my-app-service",
                       "--scale-down-delay", "0")
        assert r.returncode == 0, r.stderr[-4000:]
    assert selector(kube, namespace, "my-app-service") == {"app": "my-app", "version": "blue"}
    assert ready(kube, namespace, "my-app-blue") == 3
    assert sampler.zero_ready_instants() == 0, sampler.describe()


def test_image_mode_derives_green_from_live_blue(cluster, prefect_api, kube, namespace, kubectl):
    tutorial1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        r = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                       "--image", "scubakiz/servicedemo:2.0", "--scale-down-delay", "0")
        assert r.returncode == 0, r.stderr[-4000:]
    green = read(kube, "Deployment", namespace, "green-dep")
    blue = read(kube, "Deployment", namespace, "blue-dep")
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == "scubakiz/servicedemo:2.0"
    assert green["spec"]["selector"]["matchLabels"] == {"target": "green-dep"}
    # everything else kept: env, node selector, ports, other labels
    g_tpl, b_tpl = green["spec"]["template"], blue["spec"]["template"]
    assert g_tpl["spec"]["containers"][0]["env"] == b_tpl["spec"]["containers"][0]["env"]
    assert g_tpl["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert g_tpl["metadata"]["labels"] == {**b_tpl["metadata"]["labels"], "target": "green-dep"}
    assert selector(kube, namespace, "production-svc") == {"target": "green-dep"}
    assert sampler.zero_ready_instants() == 0, sampler.describe()


@pytest.mark.parametrize("fault,reason", [("pullerror", "ImagePullBackOff"), ("crashloop", "CrashLoopBackOff"),
                                          ("neverready", "not ready within")])
def test_failing_green_fails_fast_and_is_cleaned_up(cluster, prefect_api, kube, namespace, kubectl, fault, reason):
    tutorial1(kubectl, kube, namespace)
    blue_rv = read(kube, "Deployment", namespace, "blue-dep")["metadata"]["resourceVersion"]
    started = time.monotonic()
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        r = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                       "--image", f"scubakiz/servicedemo:fault-{fault}", "--ready-timeout", "15")
    took = time.monotonic() - started
    assert r.returncode == 1, r.stderr[-4000:]
    assert reason in r.stderr
    # "fail fast": far below the 600 s progress deadline (and, but for never-ready, below our own 15 s one)
    assert took < 60, f"took {took:.0f} s"
    assert selector(kube, namespace, "production-svc") == {"target": "blue-dep"}
    assert read(kube, "Deployment", namespace, "green-dep") is None, "green created by the release is deleted"
    assert read(kube, "Deployment", namespace, "blue-dep")["metadata"]["resourceVersion"] == blue_rv
    assert ready(kube, namespace, "blue-dep") == 3
    assert sampler.zero_ready_instants() == 0 and sampler.instants_serving({"green-dep"}) == 0, sampler.describe()


def test_unhealthy_smoke_test_prevents_the_switch(cluster, prefect_api, kube, namespace, kubectl):
    tutorial1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        r = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                       "--image", "scubakiz/servicedemo:fault-unhealthy", "--smoke-path", "/health")
    assert r.returncode == 1 and "smoke test" in r.stderr and "HTTP 500" in r.stderr, r.stderr[-3000:]
    assert selector(kube, namespace, "production-svc") == {"target": "blue-dep"}
    assert read(kube, "Deployment", namespace, "green-dep") is None
    assert sampler.zero_ready_instants() == 0 and sampler.instants_serving({"green-dep"}) == 0, sampler.describe()


def test_post_switch_failure_rolls_back_automatically(cluster, prefect_api, kube, namespace, kubectl):
    tutorial1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, "production-svc", expect_failures=True) as sampler:
        r = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                       "--image", "scubakiz/servicedemo:fault-failafter-8", "--smoke-path", "/health",
                       "--post-switch-window", "30", "--scale-down-delay", "0")
    assert r.returncode == 1, r.stderr[-3000:]
    assert "post-switch" in r.stderr and "ok: switch Service production-svc back to blue-dep" in r.stderr
    assert selector(kube, namespace, "production-svc") == {"target": "blue-dep"}
    assert ready(kube, namespace, "blue-dep") == 3
    assert read(kube, "Deployment", namespace, "green-dep") is None
    assert sampler.instants_serving({"green-dep"}) > 0, "green did serve before it failed"
    assert sampler.instants[-1].ready_uids() and sampler.zero_ready_instants() == 0, sampler.describe()
    # green answers 500 from 8 s after its pods were created until the rollback: those requests fail, no others
    assert_failures_only_while_serving(sampler, "green-dep") > 0


@pytest.mark.parametrize("answer", ["approve", "reject"])
def test_manual_approval_with_preview_service(cluster, prefect_api, kube, namespace, kubectl, tmp_path, answer):
    tutorial1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        proc, log = _bg(cluster, prefect_api, namespace, tmp_path, "--approval", "manual", "--approval-timeout",
                        "120", "--scale-down-delay", "0", "--preview-service", "staging-svc")
        run_id = paused_run_id(log, proc)
        # paused: the live Service still on blue, the preview Service already on green's ready pods
        assert selector(kube, namespace, "production-svc") == {"target": "blue-dep"}, "no switch before approval"
        assert "only green-dep: 3 ready" in wait_endpoints(kube, namespace, "staging-svc", "green-dep", 3, 10).message
        r = greenlight(cluster, prefect_api, answer, run_id, "--reason", "e2e", "--approver", "tester")
        assert r.returncode == 0, r.stderr[-2000:]
        assert proc.wait(120) == (0 if answer == "approve" else 1), log.read_text()[-3000:]
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    if answer == "approve":
        assert selector(kube, namespace, "production-svc") == {"target": "green-dep"}
        note = json.loads(read(kube, "Service", namespace, "production-svc")["metadata"]["annotations"][
            "greenlight.io/approval"])
        assert note["by"] == "tester" and "approved by tester (human): e2e" in note["reason"]
        assert selector(kube, namespace, "staging-svc") == {"target": "green-dep"}
    else:
        assert "rejected by tester" in log.read_text()
        assert selector(kube, namespace, "production-svc") == {"target": "blue-dep"}
        assert read(kube, "Deployment", namespace, "green-dep") is None
        assert read(kube, "Service", namespace, "staging-svc") is None, "the preview it created is undone"
        assert sampler.instants_serving({"green-dep"}) == 0, sampler.describe()


def test_approval_timeout_counts_as_rejection(cluster, prefect_api, kube, namespace, kubectl):
    tutorial1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        r = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                       "--manifest", str(TUTORIAL1 / "green-dep.yaml"), "--approval", "manual",
                       "--approval-timeout", "3")
    assert r.returncode == 1 and "no answer within" in r.stderr, r.stderr[-3000:]
    assert sampler.zero_ready_instants() == 0 and sampler.instants_serving({"green-dep"}) == 0
    assert selector(kube, namespace, "production-svc") == {"target": "blue-dep"}
    assert read(kube, "Deployment", namespace, "green-dep") is None


def test_second_release_on_the_same_service_is_refused_until_the_first_ends(
        cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    tutorial1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        first, log = _bg(cluster, prefect_api, namespace, tmp_path, "--approval", "manual",
                         "--approval-timeout", "120")
        run_id = paused_run_id(log, first)
        second = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                            "--image", "scubakiz/servicedemo:3.0")
        assert second.returncode == 1 and "another release holds the lock" in second.stderr, second.stderr[-3000:]
        assert greenlight(cluster, prefect_api, "reject", run_id).returncode == 0
        assert first.wait(120) == 1
        again = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                           "--image", "scubakiz/servicedemo:3.0", "--scale-down-delay", "0")
        assert again.returncode == 0, again.stderr[-3000:]
    assert selector(kube, namespace, "production-svc") == {"target": "green-dep"}
    assert sampler.zero_ready_instants() == 0, sampler.describe()


def test_killed_after_switch_rerun_converges(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    tutorial1(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        proc, log = _bg(cluster, prefect_api, namespace, tmp_path, "--scale-down-delay", "120")
        wait_until("the switch", lambda: selector(kube, namespace, "production-svc") == {"target": "green-dep"}, 90)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert replicas(kube, namespace, "blue-dep") == 3, "blue is untouched before the scale-down delay"
        r = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                       "--manifest", str(TUTORIAL1 / "green-dep.yaml"), "--scale-down-delay", "1",
                       "--lock-wait", "40", "--json")
        assert r.returncode == 0, r.stderr[-4000:]
        assert "resuming after the switch" in r.stderr
    assert selector(kube, namespace, "production-svc") == {"target": "green-dep"}
    assert ready(kube, namespace, "green-dep") == 3 and replicas(kube, namespace, "blue-dep") == 0
    assert sampler.zero_ready_instants() == 0, sampler.describe()
