"""Is the local cluster fully working (not just answering /readyz)? After an apiserver restart every client of it
(controller-manager, scheduler, kwok, the app plane, kube-proxy, the pod-IP server) reconnects with its own
backoff; later tests need all of them.
`python -m tests.cluster.launcher restart-apiserver` waits for it; tests call probe_workloads themselves.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.cluster import netplane
from tests.cluster.launcher import STATE, _client, log, wait_until


def probe_workloads(kubeconfig: Path, timeout_s: float = 90) -> float:
    """Prove every controller works (not just that /readyz answers): in a throw-away namespace, the default
    ServiceAccount appears (controller-manager), a Deployment gets a Ready pod (Deployment/ReplicaSet controllers,
    scheduler, kwok), its Service's EndpointSlice lists it ready (EndpointSlice controller) and the app plane has
    made its PortForward (appd's watch), and, when the cluster has its network namespace, kube-proxy routes the
    Service's ClusterIP to the pod and the pod-IP server answers there. Returns the seconds it took."""
    from kubernetes import client

    t0 = time.monotonic()
    ns = f"greenlight-probe-{os.getpid()}-{int(time.time() * 1000) % 100000}"
    api = _client(kubeconfig)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    custom, discovery = client.CustomObjectsApi(api), client.DiscoveryV1Api(api)
    wait_until("probe namespace", lambda: core.create_namespace(
        {"metadata": {"name": ns, "labels": {"greenlight-probe": "true"}}}, _request_timeout=(2, 10)), 30, 0.2)
    try:
        wait_until("the probe's default ServiceAccount",
                   lambda: core.list_namespaced_service_account(ns, _request_timeout=(2, 10)).items, timeout_s)
        labels = {"app": "probe"}
        apps.create_namespaced_deployment(ns, {
            "metadata": {"name": "probe"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "app", "image": "greenlight/probe:1", "ports": [{"containerPort": 80}]}]}}}})
        core.create_namespaced_service(ns, {"metadata": {"name": "probe"}, "spec": {
            "selector": labels, "ports": [{"port": 80, "targetPort": 80}]}})

        def serving() -> bool:
            d = apps.read_namespaced_deployment("probe", ns, _request_timeout=(2, 10))
            slices = discovery.list_namespaced_endpoint_slice(
                ns, label_selector="kubernetes.io/service-name=probe", _request_timeout=(2, 10)).items
            ready = [e for s in slices for e in (s.endpoints or []) if e.conditions and e.conditions.ready]
            pods = core.list_namespaced_pod(ns, _request_timeout=(2, 10)).items
            forwards = custom.list_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1", ns, "portforwards",
                                                            _request_timeout=(2, 10))["items"]
            return (d.status.ready_replicas or 0) == 1 and len(ready) == 1 and bool(pods) \
                and {f["metadata"]["name"] for f in forwards} >= {p.metadata.name for p in pods}

        wait_until("a probe Deployment served through its Service", serving, timeout_s)
        pod = core.list_namespaced_pod(ns, _request_timeout=(2, 10)).items[0].metadata.name
        wait_until("HTTP through port-forward to the probe pod (kwok sees the app plane's PortForward)",
                   lambda: _port_forward_get(kubeconfig, ns, pod), timeout_s, 0.5)
        _probe_cluster_ip(core, ns, timeout_s)
    finally:
        try:
            core.delete_namespace(ns, propagation_policy="Background", _request_timeout=(2, 10))
        except Exception as exc:  # noqa: BLE001 - a leftover probe namespace is harmless
            log(f"could not delete probe namespace {ns}: {exc}")
    took = time.monotonic() - t0
    log(f"controllers, scheduler, kwok, the app plane and the Service data path work ({took:.1f} s)")
    return took


def _probe_cluster_ip(core, ns: str, timeout_s: float) -> None:
    """GET /health through the probe Service's ClusterIP inside the namespace: kube-proxy -> pod-IP server."""
    netns = netplane.netns_name(STATE)
    if not netplane.netns_exists(netns):
        return
    ip = core.read_namespaced_service("probe", ns, _request_timeout=(2, 10)).spec.cluster_ip
    pod_ip = core.list_namespaced_pod(ns, _request_timeout=(2, 10)).items[0].status.pod_ip
    wait_until("kube-proxy routing the probe Service to its pod",
               lambda: netplane.programmed_endpoints(netns, ns, "probe") == {f"{pod_ip}:80"}, timeout_s, 0.2)
    wait_until("HTTP through the probe Service's ClusterIP (kube-proxy, pod-IP server)",
               lambda: netplane.netns_http_status(netns, ip, 80) == 200, timeout_s, 0.3)


def _port_forward_get(kubeconfig: Path, namespace: str, pod: str, port: int = 80) -> bool:
    """GET /health on the pod through the apiserver's port-forward: apiserver -> kwok -> app plane."""
    from kubernetes import client
    from kubernetes.stream import portforward

    api = client.CoreV1Api(_client(kubeconfig))  # a client of its own: portforward() patches the one it gets
    pf = portforward(api.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
    try:
        sock = pf.socket(port)
        sock.setblocking(True)
        sock.settimeout(5)
        sock.sendall(b"GET /health HTTP/1.0\r\nHost: probe\r\n\r\n")
        return b" 200 " in sock.recv(1024)
    finally:
        pf.close()
