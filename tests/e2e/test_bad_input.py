"""Bad input: exit code 2, a message naming what is wrong, and nothing changed in the cluster (every
resourceVersion in the namespace compared before and after; no Lease appears)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.e2e.release_helpers import TUTORIAL1, given_ready, greenlight, resource_versions, tutorial1

pytestmark = pytest.mark.usefixtures("prefect_api")


def _green(tmp_path: Path, mutate) -> str:
    doc = yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text())
    mutate(doc)
    path = tmp_path / "green.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _file(tmp_path: Path, text: str, name: str = "f.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GREEN = str(TUTORIAL1 / "green-dep.yaml")
CASES = {
    "malformed-yaml": (lambda t: ["--service", "production-svc", "--manifest", _file(t, "kind: Deployment\n  x: [")],
                       "is not valid YAML"),
    "wrong-kind": (lambda t: ["--service", "production-svc", "--manifest", str(TUTORIAL1 / "production-svc-blue.yaml")],
                   "expected exactly one Deployment, found kinds: Service"),
    "unknown-service": (lambda t: ["--service", "nope-svc", "--manifest", GREEN], "Service 'nope-svc' not found"),
    "selector-matches-both": (lambda t: ["--service", "both-svc", "--manifest", GREEN], "matches both blue-dep"),
    "service-without-selector": (lambda t: ["--service", "nosel-svc", "--manifest", GREEN], "has no selector"),
    "invalid-image-flag": (lambda t: ["--service", "production-svc", "--image", "Not An/Image"],
                           "image: Value error, 'Not An/Image' is not a valid image reference"),
    "invalid-image-in-manifest": (lambda t: ["--service", "production-svc", "--manifest", _green(
        t, lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="bad image"))],
        "containers[0].image 'bad image' is not a valid image reference"),
    "negative-delay": (lambda t: ["--service", "production-svc", "--manifest", GREEN, "--scale-down-delay", "-5"],
                       "cleanup.delay_s: Input should be greater than or equal to 0"),
    "zero-replicas": (lambda t: ["--service", "production-svc", "--manifest", _green(
        t, lambda d: d["spec"].update(replicas=0))], "spec.replicas must be a whole number >= 1"),
    "green-equals-blue": (lambda t: ["--service", "production-svc", "--manifest", str(TUTORIAL1 / "blue-dep.yaml")],
                          "green equals blue"),
    "labels-lack-selector-key": (lambda t: ["--service", "production-svc", "--manifest", _green(
        t, lambda d: (d["spec"]["template"]["metadata"]["labels"].pop("target"),
                      d["spec"]["selector"]["matchLabels"].update(color="green"),
                      d["spec"]["selector"]["matchLabels"].pop("target")))],
        "lack the Service selector key(s) ['target']"),
    "unknown-namespace": (lambda t: ["--service", "production-svc", "--manifest", GREEN, "-n", "no-such-ns"],
                          "namespace 'no-such-ns' not found"),
    "manifest-namespace-mismatch": (lambda t: ["--service", "production-svc", "--manifest", _green(
        t, lambda d: d["metadata"].update(namespace="elsewhere"))], "differs from the release's"),
    "spec-unknown-field": (lambda t: ["--spec", _file(t, "service: production-svc\nimage: nginx:1\nbogus: 1\n")],
                           "bogus: Extra inputs are not permitted"),
    "both-manifest-and-image": (lambda t: ["--service", "production-svc", "--manifest", GREEN, "--image", "nginx"],
                                "not allowed with argument"),
    "no-source": (lambda t: ["--service", "production-svc"], "give exactly one of manifest"),
    "missing-service": (lambda t: ["--manifest", GREEN], "--service is required"),
    "bad-approval-mode": (lambda t: ["--service", "production-svc", "--manifest", GREEN, "--approval", "maybe"],
                          "invalid choice: 'maybe'"),
    "bad-service-name": (lambda t: ["--service", "Bad_Name", "--manifest", GREEN], "service: String should match"),
    "missing-manifest-file": (lambda t: ["--service", "production-svc", "--manifest", "/nonexistent/green.yaml"],
                              "cannot read /nonexistent/green.yaml"),
    "empty-manifest": (lambda t: ["--service", "production-svc", "--manifest", _file(t, "---\n")],
                       "holds no YAML document"),
    "timeout-zero": (lambda t: ["--service", "production-svc", "--manifest", GREEN, "--ready-timeout", "0"],
                     "deadlines.ready_s: Input should be greater than 0"),
    "image-mode-no-color": (lambda t: ["--service", "plain-svc", "--image", "nginx:1"],
                            "no value of the Service selector"),
    "apiserver-rejects-manifest": (lambda t: ["--service", "production-svc", "--manifest", _green(
        t, lambda d: d["spec"]["template"]["spec"]["containers"][0].update(ports=[{"containerPort": 70000}]))],
        "the apiserver rejects green Deployment 'green-dep'"),
    "preview-is-live-service": (lambda t: ["--service", "production-svc", "--manifest", GREEN,
                                           "--preview-service", "production-svc"], "preview_service must differ"),
}


@pytest.fixture(scope="module")
def setup(kube, cluster):
    """One namespace for every case: none of them may change it, which each case checks."""
    import subprocess
    import uuid

    namespace = f"t-bad-input-{uuid.uuid4().hex[:5]}"
    kube.core.create_namespace({"metadata": {"name": namespace}})
    given_ready_sa(kube, namespace)

    def kubectl(*args):
        subprocess.run([cluster.kubectl, f"--kubeconfig={cluster.kubeconfig}", "-n", namespace, *args],
                       check=True, capture_output=True, timeout=60)

    tutorial1(kubectl, kube, namespace)
    extra = [
        {"metadata": {"name": "both-svc"}, "spec": {"selector": {"app": "status"}, "ports": [{"port": 80}]}},
        {"metadata": {"name": "nosel-svc"}, "spec": {"ports": [{"port": 80}]}},
        {"metadata": {"name": "plain-svc"}, "spec": {"selector": {"target": "plain"}, "ports": [{"port": 80}]}},
    ]
    for svc in extra:
        kube.core.create_namespaced_service(namespace, {"apiVersion": "v1", "kind": "Service", **svc})
    labels = {"target": "plain"}
    kube.apps.create_namespaced_deployment(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "plain"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}})
    given_ready(kube, namespace, "plain")
    yield namespace
    kube.core.delete_namespace(namespace)


def given_ready_sa(kube, namespace: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while not kube.core.list_namespaced_service_account(namespace).items:
        assert time.monotonic() < deadline, f"no default ServiceAccount in {namespace}"
        time.sleep(0.1)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_and_changes_nothing(case, setup, kube, cluster, prefect_api, tmp_path):
    namespace = setup
    args_of, expected = CASES[case]
    args = args_of(tmp_path)
    if "-n" not in args:
        args += ["-n", namespace]
    before = resource_versions(kube, namespace)
    proc = greenlight(cluster, prefect_api, "blue-green", *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert expected in proc.stderr, proc.stderr[-2000:]
    assert resource_versions(kube, namespace) == before
