"""The worker in the cluster (deployments/worker.yaml, rbac-cluster.yaml, Dockerfile): the manifests pass the
apiserver's own validation (server-side dry run), and the worker installed from the wheel in a fresh virtualenv,
started with the Dockerfile's command and in-cluster credentials as a pod has them (the ServiceAccount's token and
CA at /var/run/secrets/kubernetes.io/serviceaccount in a mount namespace of its own, the apiserver from
KUBERNETES_SERVICE_HOST/PORT, no kubeconfig anywhere), answers its health endpoint and runs a release — and a
release into a namespace its ServiceAccount has no Role in is refused, the apiserver naming that ServiceAccount."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlparse

import requests
import yaml

from tests.e2e.prefect_ops import ROOT, create_pool, prefect_env
from tests.e2e.release_helpers import TUTORIAL1, selector, tutorial1, wait_until
from tests.e2e.sampler import EndpointSampler
from tests.e2e.test_packaging import _fresh_venv_with_wheel

DEPLOYMENTS = ROOT / "deployments"
SA_DIR = "/run/secrets/kubernetes.io/serviceaccount"  # /var/run is /run
SERVICE = "production-svc"


def _dry_run(kubectl, text: str) -> str:
    out = kubectl("apply", "--dry-run=server", "-f", "-", stdin=text)
    return out.stdout


def test_the_manifests_pass_a_server_side_dry_run(kubectl, namespace):
    applied = _dry_run(kubectl, (DEPLOYMENTS / "rbac.yaml").read_text() + "\n---\n"
                       + (DEPLOYMENTS / "worker.yaml").read_text())
    assert "deployment.apps/greenlight-worker created (server dry run)" in applied, applied
    assert "rolebinding.rbac.authorization.k8s.io/greenlight-release created (server dry run)" in applied, applied
    # the ClusterRole variant, its ServiceAccount placed in this test's namespace instead of `greenlight`
    cluster_wide = (DEPLOYMENTS / "rbac-cluster.yaml").read_text().replace("namespace: greenlight",
                                                                          f"namespace: {namespace}")
    applied = _dry_run(kubectl, cluster_wide)
    for kind in ("serviceaccount/greenlight", "clusterrole.rbac.authorization.k8s.io/greenlight-release",
                 "clusterrolebinding.rbac.authorization.k8s.io/greenlight-release"):
        assert f"{kind} created (server dry run)" in applied or f"{kind} configured (server dry run)" in applied, \
            applied
    broken = (DEPLOYMENTS / "worker.yaml").read_text().replace("containerPort: 8080", "containerPort: 80800")
    refused = kubectl("apply", "--dry-run=server", "-f", "-", stdin=broken, check=False)
    assert refused.returncode != 0 and "80800" in refused.stderr, "the dry run does validate"


def _pod_credentials(cluster, kubectl, tmp_path: Path) -> Path:
    """What the kubelet mounts into a pod of the ServiceAccount `greenlight`: its token, the cluster's CA, the
    namespace."""
    kubectl("apply", "-f", str(DEPLOYMENTS / "rbac.yaml"))
    token = kubectl("create", "token", "greenlight", "--duration=1h").stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())["clusters"][0]["cluster"]
    mounted = tmp_path / "serviceaccount"
    mounted.mkdir()
    (mounted / "token").write_text(token)
    shutil.copy(admin["certificate-authority"], mounted / "ca.crt")
    (mounted / "namespace").write_text(kubectl("config", "view", "--minify", "-o",
                                               "jsonpath={..namespace}", check=False).stdout or "default")
    return mounted


def _in_cluster_worker(cluster, prefect_api: str, venv: Path, mounted: Path, pool: str, port: int,
                       home: Path, log: Path) -> subprocess.Popen:
    """`greenlight worker --pool P --with-healthcheck` (the Dockerfile's CMD) as a pod runs it: its own mount
    namespace with the credentials where the kubelet puts them, the apiserver from the environment."""
    server = urlparse(yaml.safe_load(Path(cluster.kubeconfig).read_text())["clusters"][0]["cluster"]["server"])
    env = {k: v for k, v in prefect_env(prefect_api).items() if k != "KUBECONFIG"}
    env.update(HOME=str(home), KUBERNETES_SERVICE_HOST=server.hostname, KUBERNETES_SERVICE_PORT=str(server.port),
               PREFECT_WORKER_WEBSERVER_PORT=str(port), PREFECT_HOME=str(home / "prefect"))
    command = shlex.join([str(venv / "bin" / "greenlight"), "worker", "--pool", pool, "--with-healthcheck"])
    script = (f"mount -t tmpfs tmpfs /run && mkdir -p {SA_DIR} && cp {shlex.quote(str(mounted))}/* {SA_DIR}/ "
              f"&& exec {command}")
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], env=env,
                            cwd=home, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _health(port: int) -> int:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code
    except requests.RequestException:
        return 0


def test_the_worker_from_the_wheel_runs_a_release_with_in_cluster_credentials(
        prefect_ops, prefect_api, cluster, kube, namespace, kubectl, tmp_path):
    from tests.conftest import _free_port

    assert not Path(SA_DIR).exists(), "this host is a pod: the test would not prove where the credentials came from"
    venv = _fresh_venv_with_wheel(tmp_path)
    mounted = _pod_credentials(cluster, kubectl, tmp_path)
    pool = "greenlight-in-cluster"
    create_pool(prefect_api, pool, "greenlight")
    deployment = prefect_ops.copy_to_pool("blue-green", pool)
    home = tmp_path / "home"
    home.mkdir()
    port = _free_port()
    log = ROOT / ".cache" / "test-logs" / "worker-in-cluster.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    worker = _in_cluster_worker(cluster, prefect_api, venv, mounted, pool, port, home, log)
    other = f"t-no-role-{uuid.uuid4().hex[:5]}"
    kube.core.create_namespace({"metadata": {"name": other, "labels": {"greenlight-test": "true"}}})
    try:
        wait_until("the worker's health endpoint", lambda: _health(port) == 200, 90, 0.5)
        tutorial1(kubectl, kube, namespace)
        spec = {"namespace": namespace, "service": SERVICE, "cleanup": {"delay_s": 1},
                "manifest": yaml.safe_load((TUTORIAL1 / "green-dep.yaml").read_text())}
        with EndpointSampler(kube, namespace, SERVICE) as sampler:
            run = prefect_ops.run(deployment, {"spec": spec})
            assert prefect_ops.wait_state(run, {"COMPLETED"}, 240) == "COMPLETED", log.read_text()[-3000:]
        assert selector(kube, namespace, SERVICE) == {"target": "green-dep"}
        assert sampler.zero_ready_instants() == 0, sampler.describe()
        refused = prefect_ops.run(deployment, {"spec": {**spec, "namespace": other}})
        assert prefect_ops.wait_state(refused, {"FAILED"}, 120) == "FAILED"
        message = prefect_ops.flow_run(refused)["state"]["message"]  # the apiserver names who asked
        assert "forbidden" in message and f"system:serviceaccount:{namespace}:greenlight" in message, message
        assert _health(port) == 200
        assert not Path(SA_DIR).exists(), "the worker's mount namespace leaked into the host"
    finally:
        _stop(worker)
        kube.core.delete_namespace(other, propagation_policy="Background")
