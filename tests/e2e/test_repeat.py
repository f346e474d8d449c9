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
from tests.e2e.prefect_ops import api_call
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


# ---------------------------------------------------------------------------------------- clean-up failure
def freeze_blue(kubectl, namespace: str, tmp_path) -> str:
    """A ValidatingAdmissionPolicy (bound to this namespace only) that denies every update and delete of blue-dep,
    its scale included: the clean-up after the switch fails as it would under a cluster policy or a lost
    permission. Returns the policy's name (cluster-scoped; the test deletes it)."""
    name = f"freeze-blue-{namespace}"[:63]
    doc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
           "metadata": {"name": name},
           "spec": {"failurePolicy": "Fail",
                    "matchConstraints": {"resourceRules": [{
                        "apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE", "DELETE"],
                        "resources": ["deployments", "deployments/scale"]}]},
                    "validations": [{"expression": f"request.name != '{BLUE}'",
                                     "message": f"{BLUE} is frozen by the test's admission policy"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": name},
               "spec": {"policyName": name, "validationActions": ["Deny"],
                        "matchResources": {"namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": namespace}}}}}
    path = tmp_path / "freeze-blue.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [doc, binding]}))
    kubectl("apply", "-f", str(path))
    poll("the admission policy to deny blue's scale", lambda: kubectl(
        "scale", f"deployment/{BLUE}", "--replicas=2", "--dry-run=server", check=False).returncode != 0, 30, 0.5)
    return name


def release_events(prefect_api: str, namespace: str, name: str) -> list[dict]:
    body = {"filter": {"event": {"name": [f"greenlight.release.{name}"]},
                       "resource": {"id": [f"greenlight.service.{namespace}.{SVC}"]}, "order": "ASC"}, "limit": 50}
    resp = api_call("POST", f"{prefect_api}/events/filter", json=body)
    resp.raise_for_status()
    return resp.json()["events"]


def report_markdown(prefect_api: str, run_id: str) -> str:
    resp = api_call("POST", f"{prefect_api}/artifacts/filter", json={"artifacts": {
        "flow_run_id": {"any_": [run_id]}, "type": {"any_": ["markdown"]}}})
    resp.raise_for_status()
    return "\n".join(a.get("data") or "" for a in resp.json())


def test_a_failed_clean_up_after_the_switch_is_recorded_and_a_rerun_finishes_it(cluster, prefect_api, kube,
                                                                               namespace, kubectl, tmp_path):
    require_local(cluster)
    tutorial1(kubectl, kube, namespace)
    manifest = str(TUTORIAL1 / "green-dep.yaml")
    policy = freeze_blue(kubectl, namespace, tmp_path)
    try:
        with EndpointSampler(kube, namespace, SVC) as sampler:
            first = release(cluster, prefect_api, namespace, "--manifest", manifest)
            assert first.returncode == 1, first.stderr[-4000:]
            assert "released; clean-up failed: " in first.stderr and "frozen by the test's admission policy" in \
                first.stderr, first.stderr[-3000:]
            assert "rolling back" not in first.stderr, "nothing is rolled back after a verified switch"
            assert selector(kube, namespace, SVC) == {"target": GREEN} and ready(kube, namespace, GREEN) == 3
            assert replicas(kube, namespace, BLUE) == 3

            history = json.loads(greenlight(cluster, prefect_api, "history", "-n", namespace, "--service", SVC,
                                            "--json").stdout)
            assert [(e["outcome"], e["reason"][:27]) for e in history] == \
                [("cleanup-failed", "released; clean-up failed: ")], history
            failed = poll("the final failed event", lambda: release_events(prefect_api, namespace, "failed"), 30, 0.5)
            assert failed[-1]["payload"]["reason"].startswith("released; clean-up failed: "), failed[-1]["payload"]
            assert failed[-1]["payload"]["deployment"] == GREEN, "the event names what serves: green"
            assert not release_events(prefect_api, namespace, "rolled-back")
            report = report_markdown(prefect_api, history[-1]["flow_run_id"])
            assert "cleanup-failed" in report and "released; clean-up failed: " in report, report[-2000:]

            kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", policy)
            poll("blue's scale to be allowed again", lambda: kubectl(
                "scale", f"deployment/{BLUE}", "--replicas=2", "--dry-run=server", check=False).returncode == 0,
                 30, 0.5)
            again = release(cluster, prefect_api, namespace, "--manifest", manifest)
            assert again.returncode == 0, again.stderr[-4000:]
            assert "resuming after the switch" in again.stderr, again.stderr[-3000:]
            assert replicas(kube, namespace, BLUE) == 0 and ready(kube, namespace, GREEN) == 3
            history = json.loads(greenlight(cluster, prefect_api, "history", "-n", namespace, "--service", SVC,
                                            "--json").stdout)
            assert [e["outcome"] for e in history] == ["cleanup-failed", "released"], history
            third = release(cluster, prefect_api, namespace, "--manifest", manifest)
            assert third.returncode == 0 and json.loads(third.stdout)["outcome"] == "already-live", \
                third.stderr[-3000:]
        assert sampler.zero_ready_instants() == 0, sampler.describe()
        print(f"\n[repeat] clean-up failed, re-run finished it: ClusterIP requests {sampler.requests.sent()}, "
              f"zero-ready instants {sampler.zero_ready_instants()}, min ready {sampler.min_ready_after_start()}")
    finally:
        kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", policy, "--ignore-not-found")
