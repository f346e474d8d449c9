"""Given/When/Then helpers for release e2e tests: set up the tutorials, run the real CLI as a subprocess, read
what the Service serves, and snapshot resourceVersions to prove "nothing changed"."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from prefect_greenlight.tasks.kube.client import Kube, list_objects, read
from prefect_greenlight.tasks.kube.portforward import Target, Tunnel
from tests.e2e.helpers import is_ready, pods_of, slice_endpoints
from tests.e2e.prefect_ops import api_call
from tests.json_schema import check_cli_json

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL1 = ROOT / "examples" / "tutorial1"
TUTORIAL2 = ROOT / "examples" / "tutorial2"


def cli_env(cluster, prefect_api: str) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": cluster.kubeconfig, "PREFECT_API_URL": prefect_api,
            "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "INFO"}


def greenlight(cluster, prefect_api: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run `greenlight ARGS` to completion; returns the process (exit code, stdout, stderr). A --json output must
    follow its JSON Schema (docs/schema/output.schema.json)."""
    proc = subprocess.run([sys.executable, "-m", "prefect_greenlight.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=cli_env(cluster, prefect_api), cwd=ROOT)
    check_cli_json(args, proc.stdout)
    return proc


def greenlight_bg(cluster, prefect_api: str, *args: str, log: Path) -> subprocess.Popen:
    """Start `greenlight ARGS` in the background, output to `log`."""
    return subprocess.Popen([sys.executable, "-m", "prefect_greenlight.cli", *args], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, env=cli_env(cluster, prefect_api), cwd=ROOT,
                            start_new_session=True)


def given_applied(kubectl, *paths: Path) -> None:
    for p in paths:
        kubectl("apply", "-f", str(p))


def given_ready(kube: Kube, namespace: str, *deployments: str, timeout: float = 60) -> None:
    """Each Deployment rolled out with every replica ready, AND every Service selecting its pods listing each of
    them ready in its EndpointSlices (the slices lag the Deployment's status by a moment: a sampler started in
    between would see the starting state one pod short)."""
    deadline = time.monotonic() + timeout
    for name in deployments:
        while True:
            d = read(kube, "Deployment", namespace, name)
            st = (d or {}).get("status", {})
            if d and st.get("observedGeneration", 0) >= d["metadata"]["generation"] and \
                    st.get("readyReplicas", 0) == d["spec"]["replicas"] == st.get("updatedReplicas", 0):
                break
            assert time.monotonic() < deadline, f"{name} not ready: {st}"
            time.sleep(0.2)
        while (missing := unlisted_pods(kube, namespace, d)):
            assert time.monotonic() < deadline, f"{name} ready but not yet in its Services' EndpointSlices: {missing}"
            time.sleep(0.2)


def unlisted_pods(kube: Kube, namespace: str, deployment: dict) -> list[str]:
    """'Service: pod' for each ready pod of `deployment` that a Service selecting it does not list ready yet."""
    labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    pods = [p for p in pods_of(kube, namespace, deployment["metadata"]["name"]) if is_ready(p)]
    missing = []
    for svc in kube.core.list_namespaced_service(namespace, _request_timeout=(5, 30)).items:
        selector = svc.spec.selector or {}
        if not selector or not selector.items() <= labels.items():
            continue
        listed = slice_endpoints(kube, namespace, svc.metadata.name)
        missing += [f"{svc.metadata.name}: {p.metadata.name}" for p in pods if not listed.get(p.metadata.uid)]
    return missing


def tutorial1(kubectl, kube: Kube, namespace: str) -> None:
    """The first tutorial's starting point: blue-dep (3 replicas) behind production-svc."""
    given_applied(kubectl, TUTORIAL1 / "blue-dep.yaml", TUTORIAL1 / "production-svc-blue.yaml")
    given_ready(kube, namespace, "blue-dep")


def tutorial2(kubectl, kube: Kube, namespace: str) -> None:
    """The second tutorial's blue/green starting point: my-app-blue behind my-app-service."""
    given_applied(kubectl, TUTORIAL2 / "blue-deployment.yaml", TUTORIAL2 / "service.yaml")
    given_ready(kube, namespace, "my-app-blue")


def manifest_with(path: Path, tmp_path: Path, image: str | None = None, **changes) -> Path:
    """A copy of a manifest with another image (first container) and/or top-level spec changes."""
    doc = yaml.safe_load(path.read_text())
    if image:
        doc["spec"]["template"]["spec"]["containers"][0]["image"] = image
    doc["spec"].update(changes)
    out = tmp_path / f"{path.stem}-{abs(hash((image, tuple(changes.items())))) % 10**6}.yaml"
    out.write_text(yaml.safe_dump(doc))
    return out


def selector(kube: Kube, namespace: str, service: str) -> dict:
    return (read(kube, "Service", namespace, service) or {}).get("spec", {}).get("selector") or {}


def replicas(kube: Kube, namespace: str, name: str) -> int | None:
    d = read(kube, "Deployment", namespace, name)
    return None if d is None else int(d["spec"].get("replicas", 0))


def ready(kube: Kube, namespace: str, name: str) -> int:
    d = read(kube, "Deployment", namespace, name)
    return int(((d or {}).get("status") or {}).get("readyReplicas") or 0)


def page_of_pod(kube: Kube, namespace: str, pod: str, port: int = 80) -> str:
    with Tunnel(kube, Target(namespace, pod, port)) as t:
        return requests.get(t.url("/"), timeout=10).text


def resource_versions(kube: Kube, namespace: str) -> dict[str, str]:
    """kind/name -> resourceVersion of everything a release could touch."""
    out = {}
    for kind in ("Deployment", "ReplicaSet"):
        for o in list_objects(kube, kind, namespace):
            out[f"{kind}/{o['metadata']['name']}"] = o["metadata"]["resourceVersion"]
    for svc in kube.core.list_namespaced_service(namespace).items:
        out[f"Service/{svc.metadata.name}"] = svc.metadata.resource_version
    for lease in kube.coordination.list_namespaced_lease(namespace).items:
        out[f"Lease/{lease.metadata.name}"] = lease.metadata.resource_version
    return out


def flow_run_state(run_id: str, api: str | None = None) -> str:
    """The flow run's state type (PAUSED, RUNNING, ...) from the Prefect API (the session's, by default)."""
    resp = api_call("GET", f"{api or os.environ['PREFECT_API_URL']}/flow_runs/{run_id}")
    resp.raise_for_status()
    return ((resp.json().get("state") or {}).get("type")) or ""


def flow_run_final(run_id: str, api: str | None = None) -> tuple[str, str]:
    """(state type, state message) of a flow run, from the Prefect API."""
    resp = api_call("GET", f"{api or os.environ['PREFECT_API_URL']}/flow_runs/{run_id}")
    resp.raise_for_status()
    state = resp.json().get("state") or {}
    return state.get("type") or "", state.get("message") or ""


def paused_run_id(log: Path, proc: subprocess.Popen, timeout: float = 120, api: str | None = None) -> str:
    """The flow run id a background release prints when it pauses ("greenlight approve <uuid>"), once Prefect
    records the run as PAUSED: the line is printed before the pause is committed, and a process killed in between
    leaves a run that is still Running."""
    import re

    def found():
        assert proc.poll() is None, f"release ended early:\n{log.read_text()[-3000:]}"
        m = re.search(r"greenlight approve ([0-9a-f-]{36})", log.read_text())
        return m.group(1) if m and flow_run_state(m.group(1), api) == "PAUSED" else None
    return wait_until("the release to pause (its flow run PAUSED in Prefect)", found, timeout, 0.3)


def wait_until(what: str, check, timeout: float = 60, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)
