"""Least privilege: a full blue-green release and rollback, and a canary, with nothing but the token of the
`greenlight` ServiceAccount bound to deployments/rbac.yaml's Role; a Role missing one verb is refused before
anything changes, naming the missing permission; a release with a Job hook needs deployments/rbac-hooks.yaml too,
and nothing more."""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client

from tests.e2e.release_helpers import (
    ROOT,
    TUTORIAL1,
    TUTORIAL2,
    given_applied,
    given_ready,
    greenlight,
    resource_versions,
    selector,
    tutorial1,
)
from tests.e2e.sampler import EndpointSampler

pytestmark = pytest.mark.usefixtures("prefect_api")


def service_account_kubeconfig(cluster, kubectl, tmp_path) -> str:
    """A kubeconfig holding only the ServiceAccount's token (no client certificate)."""
    kubectl("apply", "-f", str(ROOT / "deployments" / "rbac.yaml"))
    token = kubectl("create", "token", "greenlight", "--duration=1h").stdout.strip()
    admin = yaml.safe_load(open(cluster.kubeconfig))
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "sa",
              "clusters": admin["clusters"],
              "users": [{"name": "greenlight", "user": {"token": token}}],
              "contexts": [{"name": "sa", "context": {"cluster": admin["clusters"][0]["name"], "user": "greenlight"}}]}
    path = tmp_path / "sa.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_blue_green_release_and_rollback_with_only_the_role(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    tutorial1(kubectl, kube, namespace)
    sa = service_account_kubeconfig(cluster, kubectl, tmp_path)
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        r = greenlight(cluster, prefect_api, "blue-green", "--kubeconfig", sa, "-n", namespace, "--service",
                       "production-svc", "--manifest", str(TUTORIAL1 / "green-dep.yaml"), "--scale-down-delay", "0",
                       "--preview-service", "staging-svc", "--post-switch-window", "2")
        assert r.returncode == 0, r.stderr[-3000:]
        assert selector(kube, namespace, "production-svc") == {"target": "green-dep"}
        r = greenlight(cluster, prefect_api, "rollback", "--kubeconfig", sa, "-n", namespace, "--service",
                       "production-svc", "--scale-down-delay", "0", "--cleanup", "delete")
        assert r.returncode == 0, r.stderr[-3000:]
        assert selector(kube, namespace, "production-svc") == {"target": "blue-dep"}
    assert sampler.zero_ready_instants() == 0, sampler.describe()


def test_release_with_an_hpa_and_rollback_with_only_the_role(cluster, prefect_api, kube, namespace, kubectl,
                                                            tmp_path):
    """The HPA handling (list, carry over, hold release, retire, re-create) needs nothing beyond the Role."""
    tutorial1(kubectl, kube, namespace)
    kubectl("autoscale", "deployment/blue-dep", "--min=2", "--max=6", "--cpu-percent=60", "--name=web")
    sa = service_account_kubeconfig(cluster, kubectl, tmp_path)
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        r = greenlight(cluster, prefect_api, "blue-green", "--kubeconfig", sa, "-n", namespace, "--service",
                       "production-svc", "--manifest", str(TUTORIAL1 / "green-dep.yaml"), "--scale-down-delay", "0")
        assert r.returncode == 0, r.stderr[-3000:]
        hpas = kube.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items
        assert [(h.metadata.name, h.spec.scale_target_ref.name) for h in hpas] == [("green-dep", "green-dep")]
        r = greenlight(cluster, prefect_api, "rollback", "--kubeconfig", sa, "-n", namespace, "--service",
                       "production-svc", "--scale-down-delay", "0")
        assert r.returncode == 0, r.stderr[-3000:]
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    hpas = kube.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items
    assert [(h.metadata.name, h.spec.scale_target_ref.name) for h in hpas] == [("web", "blue-dep")]


def test_canary_with_only_the_role(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    given_applied(kubectl, TUTORIAL2 / "v1-deployment.yaml", TUTORIAL2 / "canary-service.yaml")
    given_ready(kube, namespace, "my-app-v1")
    sa = service_account_kubeconfig(cluster, kubectl, tmp_path)
    with EndpointSampler(kube, namespace, "my-app-service") as sampler:
        r = greenlight(cluster, prefect_api, "canary", "--kubeconfig", sa, "-n", namespace, "--service",
                       "my-app-service", "--stable", "my-app-v1", "--manifest",
                       str(TUTORIAL2 / "v2-canary-deployment.yaml"), "--steps", "50,100")
        assert r.returncode == 0, r.stderr[-3000:]
    assert sampler.zero_ready_instants() == 0, sampler.describe()


def test_a_missing_verb_is_named_before_anything_changes(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    tutorial1(kubectl, kube, namespace)
    sa = service_account_kubeconfig(cluster, kubectl, tmp_path)
    role = kube.api.sanitize_for_serialization(
        client.RbacAuthorizationV1Api(kube.api).read_namespaced_role("greenlight-release", namespace))
    role["metadata"] = {"name": "greenlight-release", "namespace": namespace}
    for rule in role["rules"]:
        if rule.get("resources") == ["services"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "patch"]
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(role))
    before = resource_versions(kube, namespace)
    r = greenlight(cluster, prefect_api, "blue-green", "--kubeconfig", sa, "-n", namespace, "--service",
                   "production-svc", "--manifest", str(TUTORIAL1 / "green-dep.yaml"))
    assert r.returncode == 2, r.stderr[-3000:]
    assert "lack 1 permission(s)" in r.stderr and "patch services" in r.stderr, r.stderr[-3000:]
    after = resource_versions(kube, namespace)
    assert {k: v for k, v in after.items() if not k.startswith("Role")} == before


def test_a_release_with_a_job_hook_needs_exactly_the_hooks_role(cluster, prefect_api, kube, namespace, kubectl,
                                                                 tmp_path):
    """Job hooks need deployments/rbac-hooks.yaml beside the release Role: without it the release is refused
    naming each missing permission, nothing changed; with it a release with a pre-switch Job hook completes."""
    from tests.e2e.fault_helpers import require_local
    from tests.e2e.test_hooks import hook_jobs, job_file

    require_local(cluster)  # the Job's image completes by a kwok fault marker
    tutorial1(kubectl, kube, namespace)
    sa = service_account_kubeconfig(cluster, kubectl, tmp_path)
    args = ("blue-green", "--kubeconfig", sa, "-n", namespace, "--service", "production-svc", "--manifest",
            str(TUTORIAL1 / "green-dep.yaml"), "--scale-down-delay", "0", "--hook-job",
            f"pre-switch={job_file(tmp_path, 'migrate', 'tools:fault-exit0-1')}")
    before = resource_versions(kube, namespace)
    r = greenlight(cluster, prefect_api, *args)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "lack 6 permission(s)" in r.stderr, r.stderr[-3000:]
    for p in ("create jobs.batch", "get jobs.batch", "list jobs.batch", "watch jobs.batch", "delete jobs.batch",
              "get pods/log"):
        assert p in r.stderr, (p, r.stderr[-3000:])
    assert resource_versions(kube, namespace) == before
    kubectl("apply", "-f", str(ROOT / "deployments" / "rbac-hooks.yaml"))
    with EndpointSampler(kube, namespace, "production-svc") as sampler:
        r = greenlight(cluster, prefect_api, *args)
        assert r.returncode == 0, r.stderr[-3000:]
    assert selector(kube, namespace, "production-svc") == {"target": "green-dep"}
    [job] = hook_jobs(kube, namespace).values()
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"]["conditions"])
    assert "$ alembic upgrade head" in r.stderr, "the pods' log read with the ServiceAccount's pods/log"
    assert sampler.zero_ready_instants() == 0, sampler.describe()
