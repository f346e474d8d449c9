"""Given/When/Then helpers for the e2e tier: build objects from dicts, create them, wait on the API with a
deadline, and talk to pods over port-forward. Every wait is bounded and, on timeout, fails naming what it waited
for and the last state it saw (so a failure reads like `kubectl get pod -o yaml`, not like a bare timeout).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
import yaml

from prefect_greenlight.tasks.kube.client import Kube
from prefect_greenlight.tasks.kube.portforward import Target, Tunnel

T = TypeVar("T")

# The first tutorial's image: real on kind/real clusters, answered by the app plane on the local one.
IMAGE = "scubakiz/servicedemo:1.0"
PORT = 80


def fault_image(marker: str) -> str:
    """An image reference carrying a fault marker (see tests/README.md). Only the local cluster knows them."""
    return f"scubakiz/servicedemo:fault-{marker}"


# ------------------------------------------------------------------------------------------------- given
def container(image: str = IMAGE, color: str = "white") -> dict:
    return {"name": "app", "image": image, "ports": [{"containerPort": PORT, "protocol": "TCP"}],
            "env": [{"name": "IMAGE_COLOR", "value": color},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}


def deployment_manifest(name: str, replicas: int = 3, image: str = IMAGE, color: str = "white",
                        labels: dict[str, str] | None = None) -> dict:
    labels = {"target": name, **(labels or {})}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"target": name}},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container(image, color)]}}}}


def service_manifest(name: str, selector: dict[str, str], port: int = 8080) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector, "ports": [{"name": "web", "port": port, "targetPort": PORT}]}}


def given_deployment(kube: Kube, namespace: str, name: str, **kwargs: Any) -> dict:
    manifest = deployment_manifest(name, **kwargs)
    kube.apps.create_namespaced_deployment(namespace, manifest, _request_timeout=(5, 30))
    return manifest


def given_service(kube: Kube, namespace: str, name: str, selector: dict[str, str]) -> dict:
    manifest = service_manifest(name, selector)
    kube.core.create_namespaced_service(namespace, manifest, _request_timeout=(5, 30))
    return manifest


def given_pod(kube: Kube, namespace: str, name: str, image: str, color: str = "white"):
    """A bare pod (no controller), so the status under test is exactly what the kubelet wrote."""
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [container(image, color)], "restartPolicy": "Always",
                     "terminationGracePeriodSeconds": 1}}
    return kube.core.create_namespaced_pod(namespace, body, _request_timeout=(5, 30))


# -------------------------------------------------------------------------------------------------- wait
def wait_for(what: str, probe: Callable[[], T], timeout: float = 30, interval: float = 0.2,
             explain: Callable[[], str] | None = None) -> T:
    """Poll `probe` until it returns something truthy and return that. On timeout: AssertionError naming `what`,
    the last probe result or error, and `explain()` (the observed state)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - "not yet"; reported if it never settles
            last = exc
        if time.monotonic() >= deadline:
            detail = ""
            if explain is not None:
                try:
                    detail = "\n" + explain()
                except Exception as exc:  # noqa: BLE001
                    detail = f"\n(could not read state: {exc})"
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last probe: {last!r}{detail}")
        time.sleep(interval)


def sleep_until(t: float) -> None:
    """Sleep until monotonic time `t` (no-op if it is past)."""
    time.sleep(max(0.0, t - time.monotonic()))


# ----------------------------------------------------------------------------------------------- observe
def read_pod(kube: Kube, namespace: str, name: str):
    return kube.core.read_namespaced_pod(name, namespace, _request_timeout=(5, 30))


def is_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def container_status(pod):
    """The single container's status (None until the kubelet reported one)."""
    statuses = pod.status.container_statuses or []
    return statuses[0] if statuses else None


def waiting_reason(pod) -> str | None:
    cs = container_status(pod)
    return cs.state.waiting.reason if cs and cs.state and cs.state.waiting else None


def pod_status_yaml(kube: Kube, pod) -> str:
    """`kubectl get pod -o yaml`'s status block, for failure messages and reports."""
    status = kube.api.sanitize_for_serialization(pod.status) or {}
    keep = {k: status[k] for k in ("phase", "conditions", "containerStatuses", "podIP") if k in status}
    return f"pod {pod.metadata.namespace}/{pod.metadata.name} status:\n" + yaml.safe_dump(keep, sort_keys=False)


class PodWatch:
    """One pod observed by polling the API: `then(what, predicate)` waits for a state and returns the pod."""

    def __init__(self, kube: Kube, namespace: str, name: str):
        self.kube, self.namespace, self.name = kube, namespace, name

    def get(self):
        return read_pod(self.kube, self.namespace, self.name)

    def explain(self) -> str:
        return pod_status_yaml(self.kube, self.get())

    def then(self, what: str, predicate: Callable[[Any], Any], timeout: float = 30, interval: float = 0.1):
        return wait_for(f"pod {self.namespace}/{self.name}: {what}",
                        lambda: p if predicate(p := self.get()) else None, timeout, interval, explain=self.explain)


def pods_of(kube: Kube, namespace: str, deployment: str) -> list:
    """Live (not terminating) pods selected by a Deployment's selector."""
    dep = kube.apps.read_namespaced_deployment(deployment, namespace, _request_timeout=(5, 30))
    selector = ",".join(f"{k}={v}" for k, v in sorted(dep.spec.selector.match_labels.items()))
    pods = kube.core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=(5, 30)).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def ready_pods(kube: Kube, namespace: str, deployment: str, count: int, timeout: float = 60) -> list:
    """Wait until the Deployment has exactly `count` live pods, all Ready with a pod IP; return them."""
    def probe():
        pods = pods_of(kube, namespace, deployment)
        if len(pods) == count and all(is_ready(p) and p.status.pod_ip for p in pods):
            return pods
        return None

    def explain() -> str:
        return "\n".join(pod_status_yaml(kube, p) for p in pods_of(kube, namespace, deployment)) or "no pods"

    return wait_for(f"{count} Ready pods of Deployment {namespace}/{deployment}", probe, timeout, explain=explain)


def is_ip(value: str | None) -> bool:
    try:
        ipaddress.ip_address(value or "")
        return True
    except ValueError:
        return False


def slice_endpoints(kube: Kube, namespace: str, service: str) -> dict[str, bool]:
    """Every endpoint in the Service's EndpointSlices: targetRef uid -> ready."""
    slices = kube.discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}", _request_timeout=(5, 30)).items
    out: dict[str, bool] = {}
    for s in slices:
        for ep in s.endpoints or []:
            if ep.target_ref is not None and ep.target_ref.kind == "Pod":
                out[ep.target_ref.uid] = bool(ep.conditions and ep.conditions.ready)
    return out


def wait_endpoints(kube: Kube, namespace: str, service: str, pods: list, timeout: float = 30) -> dict[str, bool]:
    """Wait until the Service's EndpointSlices list exactly `pods`, each ready."""
    want = {p.metadata.uid: True for p in pods}
    names = {p.metadata.uid: p.metadata.name for p in pods}
    return wait_for(f"EndpointSlices of Service {namespace}/{service} to list exactly {sorted(names.values())}",
                    lambda: (got := slice_endpoints(kube, namespace, service)) == want and got, timeout,
                    explain=lambda: f"slices list {slice_endpoints(kube, namespace, service)}; want {want}")


# -------------------------------------------------------------------------------------------------- http
def http_get(kube: Kube, namespace: str, pod: str, path: str = "/", timeout: float = 10) -> requests.Response:
    """GET `path` on the pod's port 80 through an in-process port-forward (prefect_greenlight.tasks.kube.portforward.Tunnel)."""
    with Tunnel(kube, Target(namespace, pod, PORT)) as tunnel:
        try:
            return requests.get(tunnel.url(path), timeout=timeout, headers={"Connection": "close"})
        except requests.RequestException as exc:
            raise AssertionError(f"GET {path} on {namespace}/{pod} via port-forward failed: {exc}; "
                                 f"tunnel errors: {tunnel.errors}") from exc


def timed_gets(kube: Kube, namespace: str, pod: str, paths: list[str], timeout: float = 10) -> list[tuple[int, float]]:
    """GET each path over ONE kept-alive connection through one port-forward stream; (status, seconds) per
    request. The first request pays for opening the stream; later ones time only the pod's answer."""
    out = []
    with Tunnel(kube, Target(namespace, pod, PORT)) as tunnel, requests.Session() as session:
        for path in paths:
            start = time.monotonic()
            try:
                resp = session.get(tunnel.url(path), timeout=timeout)
            except requests.RequestException as exc:
                raise AssertionError(f"GET {path} on {namespace}/{pod} failed: {exc}; tunnel: {tunnel.errors}") from exc
            out.append((resp.status_code, time.monotonic() - start))
    return out


def assert_page_names(resp: requests.Response, pod, color: str) -> None:
    """The pod's page names the pod, its image and its IMAGE_COLOR."""
    assert resp.status_code == 200, f"{pod.metadata.name}: HTTP {resp.status_code}: {resp.text[:200]}"
    image = pod.spec.containers[0].image
    for needle in (f"Pod: {pod.metadata.name}", f"Image: {image}", f"IMAGE_COLOR: {color}"):
        assert needle in resp.text, f"{needle!r} not in the page of {pod.metadata.name}:\n{resp.text}"
