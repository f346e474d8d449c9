"""The local cluster's gateway: Traefik's Kubernetes Gateway API provider (built from upstream by
hack/cluster/build.sh), running in the cluster's network namespace beside kube-proxy and the pod-IP server.

It reads GatewayClasses, Gateways, HTTPRoutes, ReferenceGrants, Services and EndpointSlices from the same apiserver
(through the namespace's apiserver bridge, with a ServiceAccount token), writes their status like any Gateway
controller, and proxies to the pods' IPs from the EndpointSlices (not through kube-proxy). The launcher installs the
Gateway API standard-channel CRDs, the GatewayClass `traefik` and one Gateway, GATEWAY in GATEWAY_NAMESPACE, whose
HTTP listener on GATEWAY_PORT accepts routes from every namespace. A test reaches it inside the namespace only:

    TrafficCheck(netns, kubeconfig, ns, "my-svc", target=("127.0.0.1", GATEWAY_PORT), headers={"Host": host})
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

from tests.cluster import netplane
from tests.cluster.procs import CACHE, STATE, log, start, wait_until

GATEWAY_NAMESPACE = "gateway-system"
GATEWAY = "greenlight-gateway"
GATEWAY_CLASS = "traefik"
CONTROLLER = "traefik.io/gateway-controller"
GATEWAY_PORT = 8000  # the listener's port = Traefik's entry point `web`, inside the namespace
PING_PORT = 8082  # Traefik's own entry point (ping), on the namespace's loopback
SERVICE_ACCOUNT = "traefik"

# What a Gateway API controller reads and writes (Traefik's documented RBAC for this provider, read-only apart
# from status).
RULES = [
    {"apiGroups": [""], "resources": ["namespaces", "services", "secrets", "configmaps"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["gateway.networking.k8s.io"],
     "resources": ["gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants",
                   "backendtlspolicies", "tcproutes", "tlsroutes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["gateway.networking.k8s.io"],
     "resources": ["gatewayclasses/status", "gateways/status", "httproutes/status", "grpcroutes/status",
                   "backendtlspolicies/status", "tcproutes/status", "tlsroutes/status"],
     "verbs": ["update", "patch"]},
]


def traefik_dir(versions: dict[str, str]) -> Path:
    return CACHE / "bin" / f"traefik-{versions['TRAEFIK_VERSION']}"


def traefik_argv(binary: Path, server: str, state: Path = STATE) -> list[str]:
    return [str(binary), f"--entryPoints.web.address=:{GATEWAY_PORT}",
            f"--entryPoints.traefik.address=127.0.0.1:{PING_PORT}", "--ping=true",
            "--providers.kubernetesgateway=true", f"--providers.kubernetesgateway.endpoint={server}",
            f"--providers.kubernetesgateway.token={state / 'traefik.token'}",
            f"--providers.kubernetesgateway.certAuthFilePath={state / 'pki' / 'ca.crt'}",
            "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false", "--log.level=INFO"]


def _apis(kubeconfig: Path):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    return client.CoreV1Api(api), client.RbacAuthorizationV1Api(api), client.CustomObjectsApi(api)


def _create(fn, *args) -> None:
    from kubernetes.client.rest import ApiException

    try:
        fn(*args)
    except ApiException as exc:
        if exc.status != 409:
            raise


def write_token(kubeconfig: Path, state: Path = STATE) -> None:
    """A ServiceAccount with RULES and its long-lived token Secret (filled by the controller-manager), written to
    <state>/traefik.token: it stays valid however long the cluster runs."""
    core, rbac, _ = _apis(kubeconfig)
    meta = {"name": SERVICE_ACCOUNT, "namespace": GATEWAY_NAMESPACE}
    _create(core.create_namespace, {"metadata": {"name": GATEWAY_NAMESPACE}})
    _create(core.create_namespaced_service_account, GATEWAY_NAMESPACE, {"metadata": meta})
    _create(rbac.create_cluster_role, {"metadata": {"name": "greenlight-test-gateway"}, "rules": RULES})
    _create(rbac.create_cluster_role_binding, {
        "metadata": {"name": "greenlight-test-gateway"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "greenlight-test-gateway"},
        "subjects": [{"kind": "ServiceAccount", **meta}]})
    _create(core.create_namespaced_secret, GATEWAY_NAMESPACE, {
        "metadata": {"name": f"{SERVICE_ACCOUNT}-token",
                     "annotations": {"kubernetes.io/service-account.name": SERVICE_ACCOUNT}},
        "type": "kubernetes.io/service-account-token"})

    def filled() -> bool:
        data = core.read_namespaced_secret(f"{SERVICE_ACCOUNT}-token", GATEWAY_NAMESPACE).data or {}
        if "token" in data:
            (state / "traefik.token").write_text(base64.b64decode(data["token"]).decode())
        return "token" in data

    wait_until("the gateway's ServiceAccount token", filled, 60)


def create_gateway(kubeconfig: Path) -> None:
    _, _, custom = _apis(kubeconfig)
    group, version = "gateway.networking.k8s.io", "v1"
    _create(custom.create_cluster_custom_object, group, version, "gatewayclasses", {
        "apiVersion": f"{group}/{version}", "kind": "GatewayClass", "metadata": {"name": GATEWAY_CLASS},
        "spec": {"controllerName": CONTROLLER}})
    _create(custom.create_namespaced_custom_object, group, version, GATEWAY_NAMESPACE, "gateways", {
        "apiVersion": f"{group}/{version}", "kind": "Gateway",
        "metadata": {"name": GATEWAY, "namespace": GATEWAY_NAMESPACE},
        "spec": {"gatewayClassName": GATEWAY_CLASS, "listeners": [{
            "name": "http", "protocol": "HTTP", "port": GATEWAY_PORT,
            "allowedRoutes": {"namespaces": {"from": "All"}}}]}})


def gateway_programmed(kubeconfig: Path) -> bool:
    _, _, custom = _apis(kubeconfig)
    gw = custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", GATEWAY_NAMESPACE, "gateways",
                                             GATEWAY)
    conditions = (gw.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Programmed" and c["status"] == "True" for c in conditions)


def start_gateway(binary: Path, kubeconfig: Path, server: str, netns: str) -> float:
    """Token, GatewayClass and Gateway, then Traefik in the namespace `netns`; returns seconds until the Gateway is
    Programmed."""
    t0 = time.monotonic()
    write_token(kubeconfig)
    create_gateway(kubeconfig)
    start("traefik", netplane.in_netns(netns, traefik_argv(binary, server)))
    wait_until("Traefik's ping (in the namespace)",
               lambda: netplane.netns_http_status(netns, "127.0.0.1", PING_PORT, "/ping") == 200, 60)
    wait_until(f"Gateway {GATEWAY_NAMESPACE}/{GATEWAY} Programmed by Traefik", lambda: gateway_programmed(kubeconfig),
               60)
    seconds = round(time.monotonic() - t0, 2)
    log(f"gateway programmed in {seconds} s")
    return seconds
