"""Table tests of the Service data path's pure decisions (no cluster, no namespace, no sockets): which ports a pod
listens on, what the host lacks, and the traffic result's figures. Unit tier in spirit (not marked e2e)."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kubernetes.client import (
    V1Container,
    V1ContainerPort,
    V1ContainerState,
    V1ContainerStateRunning,
    V1ContainerStateWaiting,
    V1ContainerStatus,
    V1EnvVar,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1PodStatus,
)

from tests.cluster import appd, netplane, podapp, podipd, traffic_agent
from tests.e2e.traffic import CheckRecord, Request, Tally, TrafficResult

CIDR = ipaddress.IPv4Network("10.244.0.0/16")


def pod(ports=(80,), running=True, ip="10.244.0.7", phase="Running", deleting=False) -> V1Pod:
    state = V1ContainerState(running=V1ContainerStateRunning()) if running else \
        V1ContainerState(waiting=V1ContainerStateWaiting(reason="CrashLoopBackOff"))
    return V1Pod(
        metadata=V1ObjectMeta(namespace="ns", name="web-abc-12345", uid="u1",
                              creation_timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc),
                              deletion_timestamp=datetime(2026, 1, 2, tzinfo=timezone.utc) if deleting else None),
        spec=V1PodSpec(containers=[V1Container(name="app", image="img:1", env=[V1EnvVar(name="IMAGE_COLOR",
                                                                                        value="blue")],
                                               ports=[V1ContainerPort(container_port=p) for p in ports])]),
        status=V1PodStatus(phase=phase, pod_ip=ip, container_statuses=[V1ContainerStatus(
            name="app", image="img:1", image_id="", ready=running, restart_count=0, state=state)]))


def test_both_app_planes_answer_with_one_handler():
    assert appd.serve_http is podipd.serve_http is podapp.serve_http
    assert appd.pod_apps is podapp.pod_apps is podipd.pod_apps


@pytest.mark.parametrize("p,listening,want", [
    (pod(), frozenset(), {80}),
    (pod(ports=(80, 9090)), frozenset(), {80, 9090}),
    (pod(ports=()), frozenset(), set(podipd.DEFAULT_PORTS)),  # no containerPort: 80 and 8080
    (pod(running=False), frozenset({80}), set()),  # crash: the listener goes, the IP stays
    (pod(phase="Pending", running=False), frozenset(), set()),
    (pod(ip=None), frozenset(), set()),
    (pod(ip="127.0.0.1"), frozenset(), set()),  # hostNetwork: the node's IP is not put on lo
    (pod(deleting=True, running=False), frozenset({80}), {80}),  # terminating: keeps what listens
    (pod(deleting=True), frozenset(), set()),  # ... and opens nothing new
])
def test_wanted_ports(p, listening, want):
    assert podipd.wanted_ports(podipd.view_of(p, CIDR), listening) == want


def _with(p: V1Pod, image: str = "", ready: bool = False) -> V1Pod:
    from kubernetes.client import V1PodCondition
    if image:
        p.spec.containers[0].image = image
    p.status.conditions = [V1PodCondition(type="Ready", status="True" if ready else "False")]
    return p


@pytest.mark.parametrize("p,due", [
    (_with(pod()), True),  # running, not Ready yet: ready once it listens
    (_with(pod(), ready=True), False),  # already Ready
    (_with(pod(running=False)), False),  # a container not running
    (_with(pod(phase="Pending", running=False)), False),
    (_with(pod(deleting=True)), False),  # terminating: never made ready again
    (_with(pod(), image="img:fault-neverready"), False),  # kwok's stages own these
    (_with(pod(), image="img:fault-slowready-5"), False),
    (_with(pod(), image="img:fault-unhealthy"), True),  # kwok treats HTTP faults as healthy containers
])
def test_readiness_is_set_by_the_pod_ip_server_only_where_due(p, due):
    assert podipd.readiness_due(p) is due
    assert podipd.view_of(p, CIDR).ready_due is due


def test_the_ready_patch_is_what_a_kubelet_writes_when_the_probe_passes():
    from kubernetes.client import ApiClient
    body = podipd.ready_patch(_with(pod()), ApiClient(), "2026-12-01T00:00:00Z")["status"]
    assert {c["type"]: c["status"] for c in body["conditions"]} == {"Ready": "True", "ContainersReady": "True"}
    (cs,) = body["containerStatuses"]
    assert cs["ready"] is True and cs["name"] == "app" and "running" in cs["state"], "sent whole (an atomic list)"


def test_view_carries_the_page_of_the_pod():
    app = podipd.view_of(pod(), CIDR).apps[80]
    status, _, body = app.respond("/", 0)
    assert status == 200 and "IMAGE_COLOR: blue" in body and "POD IP: 10.244.0.7" in body


@pytest.mark.parametrize("euid,tools,missing", [
    (0, {"ip": "/sbin/ip", "nft": "/usr/sbin/nft"}, []),
    (1000, {"ip": "/sbin/ip", "nft": "/usr/sbin/nft"}, ["root"]),
    (0, {"ip": None, "nft": None}, ["`ip`", "`nft`"]),
])
def test_missing_requirements_name_what_is_missing(euid, tools, missing):
    found = netplane.missing_requirements(euid, tools)
    assert len(found) == len(missing) and all(m in f for m, f in zip(missing, found)), found


def test_netns_name_is_stable_and_per_state_dir():
    a, b = netplane.netns_name(Path("/x/a")), netplane.netns_name(Path("/x/b"))
    assert a == netplane.netns_name(Path("/x/a")) and a != b and a.startswith("gl-") and len(a) == 11


def test_agent_bounds_are_capped():
    plan = traffic_agent.parse(["--host=h", "--port=1", "--rate=5000", "--duration=99999"])
    assert plan.rate == traffic_agent.MAX_RATE and plan.duration_s == traffic_agent.MAX_DURATION_S
    assert plan.max_requests == int(plan.rate * plan.duration_s) + 1
    assert traffic_agent.parse(["--host=h", "--port=1", "--max-requests=7"]).max_requests == 7


def test_agent_headers_go_with_every_request_as_given():
    plan = traffic_agent.parse(["--host=127.0.0.1", "--port=8000", "--header=Host:web.test",
                                "--header=Cookie: canary=always; a=b"])
    assert plan.headers == (("Host", "web.test"), ("Cookie", "canary=always; a=b"))
    assert traffic_agent.parse(["--host=h", "--port=1"]).headers == ()


def req(t, pod="blue-abc-1", status=200, conn="new", error="") -> Request:
    return Request(t, 0.001, conn, 1, status, pod if status else "", "img", "c", error)


def test_result_figures():
    r = TrafficResult((req(0.0), req(0.5), req(1.0, "green-def-2"), req(1.2, status=0, error="TimeoutError: x"),
                       req(1.5, "green-def-2", status=500), req(2.0, "blue-abc-1", conn="ka")), "t", 0, 2)
    assert [x.t for x in r.failed()] == [1.2, 1.5]
    assert [x.t for x in r.failed(ignore_5xx_from=("green",))] == [1.2]
    assert r.first_answer("green") == 1.0 and r.last_answer("blue") == 2.0
    assert r.last_answer("blue", before=1.0) == 0.5
    assert r.versions() == {"blue": 3, "green": 2}
    assert [w.counts for w in r.windows(1.0)] == [{"blue": 2}, {"green": 2}, {"blue": 1}]
    assert "2 failed" in r.summary()


@pytest.mark.parametrize("hits,n,expected,ok", [(50, 100, 0.5, True), (75, 100, 0.5, False),
                                                 (20, 200, 0.1, True), (0, 0, 0.1, False)])
def test_share_within_a_binomial_tolerance(hits, n, expected, ok):
    requests = tuple(req(i, "canary-a-b" if i < hits else "stable-a-b") for i in range(n))
    check = TrafficResult(requests, "t", 0, 1).share("canary", expected)
    assert check.ok is ok, check.describe()


def test_share_counts_new_connections_only_by_default():
    requests = (req(0, "canary-a-b"), *(req(i, "stable-a-b", conn="ka") for i in range(1, 50)))
    assert TrafficResult(requests, "t", 0, 1).share("canary", 0.5).n == 1


def test_tally_lines_name_the_totals_and_the_checks_with_failures():
    tally = Tally({1: CheckRecord("t::a", "ns/svc", 100, 0, False), 2: CheckRecord("t::b", "ns/svc", 50, 2, True)},
                  {1: {3, 4}})
    lines = tally.lines()
    assert "2 checks, 150 requests sent, 2 failed (2 of them in checks that expect failures), 2 answers" in lines[0]
    assert len(lines) == 3
    assert Tally().lines() == ["no ClusterIP traffic check ran in this session"]


# ---------------------------------------------------------------- kube-proxy's lag histograms (tests/e2e/proxy_metrics.py)
PROXY_METRICS = """\
# HELP kubeproxy_network_programming_duration_seconds [ALPHA] In Cluster Network Programming Latency in seconds
# TYPE kubeproxy_network_programming_duration_seconds histogram
kubeproxy_network_programming_duration_seconds_bucket{le="0.25"} 60
kubeproxy_network_programming_duration_seconds_bucket{le="0.5"} 90
kubeproxy_network_programming_duration_seconds_bucket{le="1"} 97
kubeproxy_network_programming_duration_seconds_bucket{le="2"} 98
kubeproxy_network_programming_duration_seconds_bucket{le="3"} 98
kubeproxy_network_programming_duration_seconds_bucket{le="4"} 100
kubeproxy_network_programming_duration_seconds_bucket{le="+Inf"} 100
kubeproxy_network_programming_duration_seconds_sum 40.2
kubeproxy_network_programming_duration_seconds_count 100
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="0.001"} 0
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="+Inf"} 5
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv6",le="0.001"} 7
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv6",le="+Inf"} 7
kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{le="+Inf"} 9
"""


def test_proxy_lag_histograms_are_read_by_bucket():
    from tests.e2e.proxy_metrics import parse

    hists = parse(PROXY_METRICS)
    assert set(hists) == {"kubeproxy_network_programming_duration_seconds",
                          "kubeproxy_sync_proxy_rules_duration_seconds"}, "other histograms are not read"
    prog = hists["kubeproxy_network_programming_duration_seconds"]
    assert prog.count == 100
    assert prog.quantile_bound(0.5) == 0.25 and prog.quantile_bound(0.97) == 1.0 and prog.quantile_bound(0.99) == 4.0
    assert prog.above(1.0) == (1.0, 3) and prog.above(2.5) == (3.0, 2)
    sync = hists["kubeproxy_sync_proxy_rules_duration_seconds"]
    assert sync.count == 5, "the IPv6 proxier's series is not mixed in"
    assert sync.quantile_bound(0.5) == float("inf"), "beyond the last finite bound"


# ---------------------------------------------------------------- stale answers (tests/e2e/traffic_checks.py)
def test_stale_answers_count_only_after_a_deployments_endpoints_left():
    from tests.e2e.traffic_checks import PROXY_LAG_S, Interval, stale_answers

    spans = [Interval(0, 10, {"blue": 3}), Interval(10, 20, {"green": 3, "blue": 0}), Interval(20, 30, {"blue": 3})]

    def answer(t: float, deployment: str, conn: str = "new") -> Request:
        return Request(t, 0.01, conn, 1, 200, f"{deployment}-5d9c7b-x1y2z", "img", "", "")

    requests = [answer(5, "green"),  # before green's endpoints first appear: the sampler's watch was late
                answer(10 + PROXY_LAG_S - 1, "blue"),  # inside kube-proxy's lag
                answer(10 + PROXY_LAG_S + 1, "blue"),  # stale
                answer(10 + PROXY_LAG_S + 2, "blue", conn="ka"),  # a kept connection may stay
                answer(20 + PROXY_LAG_S + 1, "green")]  # stale: green had left
    result = TrafficResult(tuple(requests), "ns/svc", 0.0, 30.0)
    assert [(d, t) for d, t, _ in stale_answers(result, spans)] == [("blue", 10 + PROXY_LAG_S + 1),
                                                                    ("green", 20 + PROXY_LAG_S + 1)]



def test_a_share_window_ends_at_the_first_answer_from_a_deployment_the_sampler_records_later():
    """kube-proxy saw green's slice before the sampler's watch did: blue's window ends at green's first answer
    (one answer from green then is no miss); an answer from a Deployment never recorded is still a miss."""
    from tests.e2e.traffic_checks import PROXY_LAG_S, Interval, share_misses

    def answer(t: float, deployment: str) -> Request:
        return Request(t, 0.01, "new", 1, 200, f"{deployment}-5d9c7b-x1y2z", "img", "", "")

    spans = [Interval(0, 40, {"blue": 1}), Interval(40, 60, {"green": 1})]
    blue = [answer(PROXY_LAG_S + i * 0.05, "blue") for i in range(600)]
    late_watch = TrafficResult(tuple(blue + [answer(30.0, "green")]), "ns/svc", 0.0, 60.0)
    assert share_misses(late_watch, spans) == []
    stray = TrafficResult(tuple(blue + [answer(30.0, "red")]), "ns/svc", 0.0, 60.0)
    assert [m.split(":")[0] for m in share_misses(stray, spans)] == ["blue with 1 of 1 ready endpoints"]

def test_requests_before_the_first_answer_are_the_services_warm_up_and_left_out():
    from tests.e2e.traffic import warm

    def req(t: float, status: int) -> Request:
        return Request(t, 0.01, "new", 1, status, "web-5d9c7b-x1y2z" if status else "", "img", "",
                       "" if status else "TimeoutError: timed out")

    counted, warmup = warm((req(1.0, 0), req(1.1, 0), req(1.5, 200), req(1.6, 0), req(2.0, 200)))
    assert warmup == 2 and [r.t for r in counted] == [1.5, 1.6, 2.0], "a failure after the first answer counts"
    assert warm((req(1.0, 0),)) == ((req(1.0, 0),), 0), "no answer at all: nothing is left out"


@pytest.mark.parametrize("version,connection,keeps", [
    ("HTTP/1.1", "", True), ("HTTP/1.1", "close", False), ("HTTP/1.1", "Keep-Alive", True),
    ("HTTP/1.0", "", False), ("HTTP/1.0", "keep-alive", True), ("HTTP/1.0", "Keep-Alive, Upgrade", True),
    ("HTTP/1.0", "close", False), ("HTTP/1.1", "upgrade, close", False),
])
def test_a_connection_stays_open_as_rfc_9112_says(version, connection, keeps):
    assert podapp.keeps_alive(version, connection) is keeps


def test_latency_marker_with_a_mean_and_a_jitter_is_a_distribution():
    app = podapp.PodApp("ns", "p", "uid", "scubakiz/servicedemo:2.0-fault-latency-50-10", 0.0)
    draws = [app.latency_s() * 1000 for _ in range(400)]
    assert 40 <= min(draws) < 43 and 57 < max(draws) <= 60, "uniform over 50 +- 10 ms"
    assert 48 < sum(draws) / len(draws) < 52 and len(set(draws)) > 300
    fixed = podapp.PodApp("ns", "p", "uid", "scubakiz/servicedemo:fault-latency-300", 0.0)
    assert fixed.latency_s() == 0.3, "the constant marker is unchanged"
    assert podapp.PodApp("ns", "p", "uid", "app:1", 0.0).latency_s() == 0
