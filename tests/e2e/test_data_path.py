"""The local cluster's Service data path is a real one: requests inside its network namespace reach a Service's
ClusterIP, kube-proxy's nftables rules pick a pod, and the pod-IP server answers on the pod's IP with the same
handler as the port-forward app plane. Every packet to 10.x stays inside the namespace.

Setup goes through the kubernetes client directly (this file imports nothing from greenlight).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward

from tests.cluster import netplane
from tests.e2e.traffic import netns_get

T = TypeVar("T")
IMAGE = "scubakiz/servicedemo:1.0"


# ------------------------------------------------------------------------------------------------- given
@pytest.fixture(scope="module")
def api(cluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=cluster.kubeconfig)


def wait_for(what: str, probe: Callable[[], T], timeout: float = 30, interval: float = 0.1) -> T:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            if value := probe():
                return value
            last = value
        except Exception as exc:  # noqa: BLE001 - "not yet"
            last = exc
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def pod_spec(image: str = IMAGE, color: str = "white") -> dict:
    return {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 80}],
                            "env": [{"name": "IMAGE_COLOR", "value": color}]}],
            "terminationGracePeriodSeconds": 30}


def given_deployment(api, namespace: str, name: str, replicas: int, color: str = "white") -> None:
    labels = {"app": "demo", "target": name}
    client.AppsV1Api(api).create_namespaced_deployment(namespace, {
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"target": name}},
                 "template": {"metadata": {"labels": labels}, "spec": pod_spec(color=color)}}})


def given_service(api, namespace: str, name: str, selector: dict[str, str], port: int = 8080) -> None:
    client.CoreV1Api(api).create_namespaced_service(namespace, {
        "metadata": {"name": name}, "spec": {"selector": selector, "ports": [{"port": port, "targetPort": 80}]}})


def given_pod(api, namespace: str, name: str, image: str) -> None:
    client.CoreV1Api(api).create_namespaced_pod(namespace, {"metadata": {"name": name, "labels": {"pod": name}},
                                                           "spec": pod_spec(image)})


def ready_pod_ips(api, namespace: str, deployment: str, count: int) -> dict[str, str]:
    """Wait for `count` Ready pods of the Deployment; pod name -> pod IP."""
    def ready():
        pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"target={deployment}").items
        ok = {p.metadata.name: p.status.pod_ip for p in pods if p.status.pod_ip and any(
            c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])}
        return ok if len(ok) == count else None
    return wait_for(f"{count} Ready pods of {deployment}", ready)


def running_pod_ip(api, namespace: str, name: str) -> str:
    def running():
        pod = client.CoreV1Api(api).read_namespaced_pod(name, namespace)
        return pod.status.phase == "Running" and pod.status.pod_ip
    return wait_for(f"pod {name} Running with an IP", running)


def wait_programmed(netns: str, namespace: str, service: str, ips: set[str], port: int = 80) -> None:
    """Until kube-proxy's rules for the Service route to exactly these pod IPs."""
    want = {f"{ip}:{port}" for ip in ips}
    wait_for(f"kube-proxy programming {namespace}/{service} -> {sorted(want)}",
             lambda: netplane.programmed_endpoints(netns, namespace, service) == want)


def port_forward_get(kubeconfig: str, namespace: str, pod: str, path: str, port: int = 80) -> tuple[int, dict, str]:
    """One GET through the apiserver's port-forward (apiserver -> kwok -> appd): (status, headers, body)."""
    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))  # portforward() patches it
    pf = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
    try:
        sock = pf.socket(port)
        sock.setblocking(True)
        sock.settimeout(10)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {pod}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:  # the tunnel does not pass the close on: read by Content-Length
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        while len(rest) < int(headers.get("content-length", 0)):
            rest += sock.recv(65536)
    finally:
        pf.close()
    body = rest.decode()
    return int(lines[0].split()[1]), headers, body


def lo_addresses(netns: str) -> set[str]:
    out = subprocess.run([netplane.ip(), "-n", netns, "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    return {field.split("/")[0] for line in out.splitlines() for field in line.split() if "/" in field}


# ------------------------------------------------------------------------------------------------- tests
def test_cluster_ranges_exist_only_inside_the_namespace(netns):
    """The root namespace has no route and no address in 10.96.0.0/16 or 10.244.0.0/16; the netns has both."""
    routes = subprocess.run([netplane.ip(), "-4", "route", "show", "table", "all"], capture_output=True, text=True,
                            timeout=10, check=True).stdout
    addrs = subprocess.run([netplane.ip(), "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=10,
                           check=True).stdout
    for text in (routes, addrs):
        assert not [line for line in text.splitlines() if " 10.96." in f" {line}" or " 10.244." in f" {line}"], \
            f"cluster addresses in the root namespace:\n{text}"
    inside = subprocess.run([netplane.ip(), "-n", netns, "-4", "route", "show"], capture_output=True, text=True,
                            timeout=10, check=True).stdout
    assert f"{netplane.CLIENT_ADDR}" in inside and "10.96.0.0/16 dev lo" in inside, inside


def test_requests_through_the_cluster_ip_reach_all_three_pods(api, namespace, netns, traffic):
    given_deployment(api, namespace, "web", 3)
    pods = ready_pod_ips(api, namespace, "web", 3)
    given_service(api, namespace, "web-svc", {"target": "web"})
    wait_programmed(netns, namespace, "web-svc", set(pods.values()))

    with traffic(namespace, "web-svc", 8080, rate=100, duration_s=4) as check:
        time.sleep(3)
    result = check.result

    assert result.pods() == set(pods), f"answered by {result.versions('pod')}, pods {sorted(pods)}"
    assert not result.failed(), result.summary()
    assert result.rate() >= 50, result.summary()
    assert {r.color for r in result.answered()} == {"white"}, result.versions("color")
    per_pod = result.versions("pod")
    assert min(per_pod.values()) >= 10, f"a pod got almost nothing: {per_pod}"  # random per connection
    print(f"\n[data path] {result.summary('pod')}")


def test_patching_the_selector_moves_the_traffic_without_a_failed_request(api, namespace, netns, traffic):
    given_deployment(api, namespace, "blue", 3, color="blue")
    given_deployment(api, namespace, "green", 3, color="green")
    blue, green = ready_pod_ips(api, namespace, "blue", 3), ready_pod_ips(api, namespace, "green", 3)
    given_service(api, namespace, "prod", {"target": "blue"})
    wait_programmed(netns, namespace, "prod", set(blue.values()))
    core = client.CoreV1Api(api)

    with traffic(namespace, "prod", 8080, rate=100, duration_s=30) as check:
        time.sleep(2)
        patched = time.time()
        core.patch_namespaced_service("prod", namespace, {"spec": {"selector": {"target": "green"}}})
        patch_done = time.time()
        wait_programmed(netns, namespace, "prod", set(green.values()))
        programmed = time.time()
        time.sleep(4)  # > 20 requests per keep-alive connection at 12.5/s: every connection is replaced
    result = check.result

    assert not result.failed(), result.summary()
    first_green = result.first_answer("green", after=patched)
    last_blue_new = max((r.t for r in result.answered() if r.deployment == "blue" and r.conn == "new"), default=None)
    last_blue = result.last_answer("blue")
    assert first_green and last_blue and last_blue_new, result.summary()
    assert result.versions(start=programmed + 3) == {"green": len(result.answered(programmed + 3))}, \
        f"blue still answering 3 s after kube-proxy moved: {result.versions(start=programmed + 3)}"
    assert not check.forbid("blue", after=programmed + 3)
    figures = {"PATCH call": patch_done - patched, "PATCH -> rules programmed (seen by nft)": programmed - patched,
               "PATCH -> first green answer": first_green - patched,
               "PATCH -> last blue answer on a new connection": last_blue_new - patched,
               "PATCH -> last blue answer (keep-alive included)": last_blue - patched}
    print("\n[selector switch] " + "; ".join(f"{k}: {v * 1000:.0f} ms" for k, v in figures.items())
          + f"\n[selector switch] {result.summary()}")
    assert first_green - patched < 5, figures


# An HTTP/1.0 client that reads until the server closes (as curl -0, ab and old monitoring probes do).
READ_TO_EOF = """
import socket, sys, time
t0 = time.monotonic()
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(sys.argv[3].encode())
data = b""
try:
    while chunk := s.recv(65536):
        data += chunk
    ended = "EOF"
except socket.timeout:
    ended = "TIMEOUT"
print(ended, round(time.monotonic() - t0, 3), data.split(b"\\r\\n", 1)[0].decode())
"""


def read_to_eof(netns: str, host: str, port: int, request: str) -> tuple[str, float, str]:
    """(EOF or TIMEOUT, seconds, status line) of one request sent from inside the namespace."""
    out = subprocess.run(netplane.in_netns(netns, [sys.executable, "-I", "-S", "-c", READ_TO_EOF, host, str(port),
                                                   request]), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    ended, seconds, status = out.stdout.strip().split(" ", 2)
    return ended, float(seconds), status


def test_an_http_1_0_client_reading_to_eof_gets_its_answer_and_the_close(api, namespace, netns):
    """RFC 9112: an HTTP/1.0 request is answered and the connection closed unless the client asked for keep-alive;
    an HTTP/1.1 request with `Connection: close` likewise; a 1.0 request with keep-alive stays open."""
    given_deployment(api, namespace, "web", 2)
    pods = ready_pod_ips(api, namespace, "web", 2)
    given_service(api, namespace, "web-svc", {"target": "web"})
    wait_programmed(netns, namespace, "web-svc", set(pods.values()))
    vip = client.CoreV1Api(api).read_namespaced_service("web-svc", namespace).spec.cluster_ip
    for request in ("GET / HTTP/1.0\r\n\r\n", "GET /health HTTP/1.0\r\nHost: web-svc\r\n\r\n",
                    "GET / HTTP/1.1\r\nHost: web-svc\r\nConnection: close\r\n\r\n"):
        ended, seconds, status = read_to_eof(netns, vip, 8080, request)
        assert (ended, status) == ("EOF", "HTTP/1.1 200 OK") and seconds < 3, (request, ended, seconds, status)
    kept = read_to_eof(netns, vip, 8080, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert kept[0] == "TIMEOUT" and kept[2] == "HTTP/1.1 200 OK", kept  # open until the client's 10 s


@pytest.mark.parametrize("marker,path", [("fault-unhealthy", "/"), ("fault-latency-300", "/"),
                                         ("fault-failafter-3", "/health"), ("healthy", "/"),
                                         ("healthy", "/health"), ("healthy", "/nope")])
def test_a_pod_answers_the_same_on_its_ip_as_through_port_forward(api, namespace, netns, cluster, marker, path):
    image = IMAGE if marker == "healthy" else f"scubakiz/servicedemo:{marker}"
    given_pod(api, namespace, "app", image)
    ip = running_pod_ip(api, namespace, "app")
    wait_for("the pod-IP server listening", lambda: netns_get(netns, ip, 80, "/health").status)

    direct = netns_get(netns, ip, 80, path)
    status, headers, body = port_forward_get(cluster.kubeconfig, namespace, "app", path)

    assert (direct.status, direct.pod, direct.image, direct.body) == \
        (status, headers.get("x-pod-name"), headers.get("x-pod-image"), body)
    expected = {"fault-unhealthy": 500, "fault-latency-300": 200, "healthy": 404 if path == "/nope" else 200}
    if marker in expected:
        assert direct.status == expected[marker], direct
    if marker == "fault-latency-300":
        assert direct.latency_s >= 0.3, direct
    if marker == "fault-failafter-3":
        created = client.CoreV1Api(api).read_namespaced_pod("app", namespace).metadata.creation_timestamp
        time.sleep(max(0.0, created.timestamp() + 4 - time.time()))
        late = netns_get(netns, ip, 80, path)
        assert late.status == 500 == port_forward_get(cluster.kubeconfig, namespace, "app", path)[0], late


def test_a_pod_whose_container_is_not_running_refuses_on_its_ip(api, namespace, netns):
    given_pod(api, namespace, "crashing", "scubakiz/servicedemo:fault-crashloop")
    ip = wait_for("a pod IP", lambda: client.CoreV1Api(api).read_namespaced_pod("crashing", namespace).status.pod_ip)
    wait_for("the IP on lo", lambda: ip in lo_addresses(netns))

    answer = netns_get(netns, ip, 80, "/health", timeout_s=2)

    assert answer.status == 0 and "ConnectionRefused" in answer.error, answer


def test_a_deleted_pod_answers_through_its_grace_and_not_after_the_object_is_gone(api, namespace, netns):
    core = client.CoreV1Api(api)
    given_pod(api, namespace, "short", IMAGE)
    ip = running_pod_ip(api, namespace, "short")
    wait_for("the pod-IP server listening", lambda: netns_get(netns, ip, 80, "/health").status == 200)

    core.delete_namespaced_pod("short", namespace, grace_period_seconds=30)
    during = netns_get(netns, ip, 80, "/health", timeout_s=2)
    still_there = core.read_namespaced_pod("short", namespace).metadata.deletion_timestamp is not None

    def gone() -> bool:
        try:
            core.read_namespaced_pod("short", namespace)
            return False
        except ApiException as exc:
            return exc.status == 404
    wait_for("the pod object deleted (kwok ends the grace period)", gone)
    object_gone = time.time()
    wait_for(f"{ip} off lo", lambda: ip not in lo_addresses(netns), timeout=10)
    ip_gone = time.time()
    after = netns_get(netns, ip, 80, "/health", timeout_s=2)

    if still_there:  # the GET ran while the object existed (kwok deletes 0.3-1.5 s after deletionTimestamp)
        assert during.status == 200, during
    assert after.status == 0 and after.error, after
    print(f"\n[pod delete] object gone -> IP off lo: {(ip_gone - object_gone) * 1000:.0f} ms; after: {after.error}")
