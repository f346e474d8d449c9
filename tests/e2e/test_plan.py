"""The plan (`--dry-run`) on the real cluster: it changes nothing — the resourceVersion of every object of every
listable namespaced kind is the same before and after — and the real run that follows runs exactly the planned
steps, in the planned order (compared from the run's timeline)."""

from __future__ import annotations

import json
import time
from datetime import UTC

import pytest
import yaml

from tests.e2e.release_helpers import TUTORIAL1, greenlight, tutorial1
from tests.e2e.sampler import EndpointSampler

pytestmark = pytest.mark.usefixtures("prefect_api")


def _every_object(kubectl) -> list[dict]:
    """Every object in the namespace, of every namespaced kind that can be listed (Events, Leases,
    EndpointSlices, Pods, ... included)."""
    kinds = kubectl("api-resources", "--namespaced=true", "--verbs=list", "-o", "name").stdout.split()
    assert "leases.coordination.k8s.io" in kinds and "events" in kinds, kinds
    return json.loads(kubectl("get", ",".join(kinds), "-o", "json", "--ignore-not-found").stdout)["items"]


def every_resource_version(kubectl) -> dict[str, str]:
    """kind/name -> resourceVersion of every object in the namespace."""
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in _every_object(kubectl)}


def settled_resource_versions(kubectl, timeout: float = 60) -> dict[str, str]:
    """every_resource_version once the namespace has stopped changing: nothing terminating (a cleanup's pods
    take 3-4 s to go on kwok) and two snapshots 1.5 s apart that agree."""
    deadline = time.monotonic() + timeout
    last = every_resource_version(kubectl)
    while True:
        time.sleep(1.5)
        objects = _every_object(kubectl)
        now = {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in objects}
        if now == last and not any(o["metadata"].get("deletionTimestamp") for o in objects):
            return now
        assert time.monotonic() < deadline, f"namespace still changing after {timeout:.0f} s"
        last = now


def _dry_run(cluster, prefect_api, namespace, *extra):
    return greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                      "--manifest", str(TUTORIAL1 / "green-dep.yaml"), "--dry-run", *extra)


def test_blue_green_plan_changes_nothing_and_the_run_follows_it(cluster, prefect_api, kube, namespace, kubectl):
    tutorial1(kubectl, kube, namespace)
    before = settled_resource_versions(kubectl)
    text = _dry_run(cluster, prefect_api, namespace, "--smoke-path", "/health", "--scale-down-delay", "1")
    assert text.returncode == 0, text.stderr[-3000:]
    r = _dry_run(cluster, prefect_api, namespace, "--smoke-path", "/health", "--scale-down-delay", "1", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    assert every_resource_version(kubectl) == before, "a dry run changed something"

    plan = json.loads(r.stdout)["plan"]
    names = [s["step"] for s in plan["steps"]]
    assert names == ["preflight", "apply", "wait-ready", "smoke-test", "approval", "switch", "verify-endpoints",
                     "post-switch", "cleanup"]
    for i, name in enumerate(names, 1):
        assert f"{i:>2}. {name}" in text.stdout, text.stdout
    apply, smoke, switch = plan["steps"][1], plan["steps"][3], plan["steps"][5]
    assert "metadata.name: 'blue-dep' -> 'green-dep'" in apply["details"], apply
    assert any(d.startswith("spec.template.spec.containers[") and ".env[IMAGE_COLOR].value: 'blue' -> 'green'" in d
               for d in apply["details"]), apply["details"]
    assert smoke["details"][0].startswith("GET :80/health on 3 of 3 pod(s)"), smoke
    assert switch["patch"][:2] == [{"op": "test", "path": "/spec/selector/target", "value": "blue-dep"},
                                   {"op": "replace", "path": "/spec/selector/target", "value": "green-dep"}]
    assert plan["facts"]["lease_free"] and "get services" in plan["facts"]["permissions_checked"]
    assert "lease greenlight-production-svc: free" in text.stdout

    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        run = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", "production-svc",
                         "--manifest", str(TUTORIAL1 / "green-dep.yaml"), "--smoke-path", "/health",
                         "--scale-down-delay", "1", "--json")
        assert run.returncode == 0, run.stderr[-4000:]
        assert [s["step"] for s in json.loads(run.stdout)["steps"]] == names

        # then the rollback's plan: nothing changes, and the rollback runs the planned steps
        before = settled_resource_versions(kubectl)
        rb = greenlight(cluster, prefect_api, "rollback", "-n", namespace, "--service", "production-svc",
                        "--scale-down-delay", "1", "--dry-run", "--json")
        assert rb.returncode == 0, rb.stderr[-3000:]
        assert every_resource_version(kubectl) == before, "a rollback dry run changed something"
        rb_plan = json.loads(rb.stdout)["plan"]
        assert rb_plan["steps"][1]["change"] == "scale blue-dep from 0 to 3", rb_plan["steps"][1]
        rb_run = greenlight(cluster, prefect_api, "rollback", "-n", namespace, "--service", "production-svc",
                            "--scale-down-delay", "1", "--json")
        assert rb_run.returncode == 0, rb_run.stderr[-3000:]
        assert [s["step"] for s in json.loads(rb_run.stdout)["steps"]] == rb_plan["step_names"]
    assert sampler.zero_ready_instants() == 0, sampler.describe()


def test_plan_names_the_holder_of_a_held_lease(cluster, prefect_api, kube, namespace, kubectl):
    tutorial1(kubectl, kube, namespace)
    from datetime import datetime

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kube.coordination.create_namespaced_lease(namespace, {
        "metadata": {"name": "greenlight-production-svc"},
        "spec": {"holderIdentity": "other-release@host/7", "leaseDurationSeconds": 300, "renewTime": now}})
    before = every_resource_version(kubectl)
    r = _dry_run(cluster, prefect_api, namespace, "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    facts = json.loads(r.stdout)["plan"]["facts"]
    assert not facts["lease_free"] and facts["lease"].startswith("held by other-release@host/7"), facts
    assert any("held by other-release@host/7" in w for w in facts["warnings"]), facts
    assert every_resource_version(kubectl) == before


def test_canary_plan_changes_nothing_and_the_canary_follows_it(cluster, prefect_api, kube, namespace, kubectl):
    from tests.e2e.test_canary import CANARY, SVC, V1, canary_args, given_tutorial2_canary

    given_tutorial2_canary(kubectl, kube, namespace)
    args = canary_args(namespace, "--steps", "10,50,100", "--pause", "1", "--json")
    before = settled_resource_versions(kubectl)
    r = greenlight(cluster, prefect_api, *args, "--dry-run")
    assert r.returncode == 0, r.stderr[-3000:]
    assert every_resource_version(kubectl) == before, "a canary dry run changed something"
    plan = json.loads(r.stdout)["plan"]
    assert plan["step_names"] == ["preflight", "step-10", "analysis-10", "pause-10", "step-50", "analysis-50",
                                  "pause-50", "step-100", "analysis-100", "cleanup"]
    steps = {s["step"]: s for s in plan["steps"]}
    assert "exactly 5 ready my-app-v2 / 5 ready my-app-v1" in steps["step-50"]["gate"], steps["step-50"]
    assert steps["step-50"]["change"] == "scale my-app-v2 1 -> 5 and wait until ready; then scale my-app-v1 9 -> 5"
    assert CANARY.exists() and V1 in steps["cleanup"]["change"]

    with EndpointSampler(kube, namespace, SVC) as sampler:
        run = greenlight(cluster, prefect_api, *args)
        assert run.returncode == 0, run.stderr[-4000:]
    assert [s["step"] for s in json.loads(run.stdout)["steps"]] == plan["step_names"]
    assert sampler.min_ready_after_start() >= 10, sampler.describe()


def test_plan_deployment_shows_the_plan_as_an_artifact_and_changes_nothing(prefect_ops, cluster, kube, namespace,
                                                                            kubectl):
    tutorial1(kubectl, kube, namespace)
    manifest = yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text())
    before = settled_resource_versions(kubectl)
    run = prefect_ops.run("blue-green-plan", {"spec": {"namespace": namespace, "service": "production-svc",
                                                       "manifest": manifest}})
    prefect_ops.wait_state(run, {"COMPLETED"}, 180)
    assert every_resource_version(kubectl) == before, "the plan deployment changed something"
    plans = [a for a in prefect_ops.artifacts(run) if (a.get("key") or "").startswith("plan-production-svc-")]
    assert len(plans) == 1 and plans[0]["type"] == "markdown", prefect_ops.artifacts(run)
    md = plans[0]["data"]
    for i, name in enumerate(["preflight", "apply", "wait-ready", "smoke-test", "approval", "switch",
                              "verify-endpoints", "post-switch", "cleanup"], 1):
        assert f"| {i} | `{name}` |" in md, md
    assert '"op": "test"' in md and "Lease `greenlight-production-svc`: free" in md
    assert not prefect_ops.events("greenlight.release.", f"greenlight.service.{namespace}.production-svc")


def test_plan_with_a_preview_service_and_a_timed_approval_is_what_the_run_does(cluster, prefect_api, kube, namespace,
                                                                                kubectl):
    tutorial1(kubectl, kube, namespace)
    extra = ("--image", "scubakiz/servicedemo:2.0", "--preview-service", "staging-svc", "--approval", "timed",
             "--auto-approve-after", "1", "--post-switch-window", "2", "--cleanup", "keep", "--json")
    args = ("blue-green", "-n", namespace, "--service", "production-svc", *extra)
    before = settled_resource_versions(kubectl)
    r = greenlight(cluster, prefect_api, *args, "--dry-run")
    assert r.returncode == 0, r.stderr[-3000:]
    assert every_resource_version(kubectl) == before, "a dry run changed something"
    plan = json.loads(r.stdout)["plan"]
    assert plan["step_names"] == ["preflight", "apply", "wait-ready", "preview", "smoke-test", "approval", "switch",
                                  "verify-endpoints", "post-switch", "cleanup"]
    steps = {s["step"]: s for s in plan["steps"]}
    assert steps["preview"]["change"].startswith("create Service staging-svc") and \
        steps["preview"]["undo"] == "delete preview Service staging-svc", steps["preview"]
    assert steps["approval"]["gate"] == "timed: approved after 1 s unless someone rejects first"
    assert any(d.endswith("'scubakiz/servicedemo:1.0' -> 'scubakiz/servicedemo:2.0'") for d in
               steps["apply"]["details"]), steps["apply"]["details"]
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        run = greenlight(cluster, prefect_api, *args)
        assert run.returncode == 0, run.stderr[-4000:]
    assert [s["step"] for s in json.loads(run.stdout)["steps"]] == plan["step_names"]
    assert sampler.zero_ready_instants() == 0, sampler.describe()
