"""A canary by weight through the Gateway API (issue 22), on the local cluster's real gateway (Traefik, in the
cluster's network namespace: tests/cluster/gateway.py), under traffic sent to the Gateway's listener: every step's
measured share of answers follows the HTTPRoute's weights within the binomial tolerance (tests/e2e/
gateway_traffic.py), header-matched requests reach only the canary, an abort puts the route back on stable before
any canary pod goes, a run killed at a pause converges when run again, and bad routes are refused before anything
changes."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from kubernetes import client

from prefect_greenlight.tasks.kube.client import read
from tests.e2e.fault_helpers import run_cli, start_cli
from tests.e2e.gateway_traffic import (
    GROUP,
    VERSION,
    RouteSampler,
    through_gateway,
    wait_until_in_force,
    wait_until_routed,
    weight_misses,
    weights_of,
)
from tests.e2e.helpers import IMAGE, container, ready_pods, wait_for
from tests.e2e.release_helpers import paused_run_id, resource_versions
from tests.e2e.sampler import EndpointSampler

pytestmark = pytest.mark.usefixtures("prefect_api")
TRACK = "greenlight.io/track"
STABLE, CANARY = "web", "web-canary"  # the stable Deployment and Service; the canary's Deployment and Service
NEW = "scubakiz/servicedemo:2.0"
BACKENDS = {STABLE: STABLE, CANARY: CANARY}  # Service -> Deployment


def given_stable(kube, gateway: str, namespace: str, replicas: int = 10, parent: str = "greenlight-gateway",
                 parent_namespace: str = "gateway-system", backend_namespace: str | None = None) -> str:
    """Stable (`track: stable` on its pods and in its Service's selector, so the canary's pods are not selected),
    its Service, and an HTTPRoute of the user's sending everything to it (in force at the gateway when its parent is
    the gateway and its backend local). Returns the route's hostname."""
    labels = {"app": "web", TRACK: "stable"}
    kube.apps.create_namespaced_deployment(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": STABLE},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [container(IMAGE, "blue")]}}}})
    kube.core.create_namespaced_service(namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": STABLE},
        "spec": {"selector": labels, "ports": [{"name": "web", "port": 80, "targetPort": 80}]}})
    ready_pods(kube, namespace, STABLE, replicas, timeout=120)
    host = f"{namespace}.test"
    ref = {"name": STABLE, "port": 80, **({"namespace": backend_namespace} if backend_namespace else {})}
    client.CustomObjectsApi(kube.api).create_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "HTTPRoute", "metadata": {"name": "web"},
        "spec": {"parentRefs": [{"name": parent, "namespace": parent_namespace}], "hostnames": [host],
                 "rules": [{"backendRefs": [ref]}]}})
    if parent == "greenlight-gateway" and not backend_namespace:
        wait_until_in_force(client.CustomObjectsApi(kube.api), gateway, namespace, "web", host, STABLE)
    return host


def spec_file(tmp_path, namespace: str, steps: list) -> str:
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump({
        "namespace": namespace, "service": STABLE, "stable": STABLE, "image": NEW, "traffic": "gateway",
        "gateway": {"route": "web"}, "steps": steps, "analysis": {"http": {}}}))
    return str(path)


def custom(kube) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api)


def route_at_rest(kube, namespace: str) -> dict[str, int]:
    return weights_of(custom(kube).get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "web"))


def images(kube, namespace: str, deployment: str) -> set[str]:
    dep = read(kube, "Deployment", namespace, deployment)
    return {c["image"] for c in dep["spec"]["template"]["spec"]["containers"]} if dep else set()


def test_weights_1_5_25_50_100_with_2_canary_pods_beside_10_stable(gateway, cluster, prefect_api, kube, namespace,
                                                                   tmp_path):
    host = given_stable(kube, gateway, namespace)
    hold = {"pause": {"duration_s": 9}}
    steps = [{"set_weight": 1}, {"set_canary_scale": {"replicas": 2}}, hold, {"set_weight": 5}, hold,
             {"set_weight": 25}, hold, {"set_weight": 50}, hold, {"set_weight": 100}, hold]
    spec = spec_file(tmp_path, namespace, steps)
    plan = run_cli(cluster, prefect_api, "canary", "--spec", spec, "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr[-3000:]
    plan_text = json.dumps(json.loads(plan.stdout)["plan"])
    assert "25" in plan_text and "2 pod" in plan_text, plan_text[:3000]
    with RouteSampler(custom(kube), namespace, "web") as route, \
            through_gateway(gateway, cluster.kubeconfig, namespace, STABLE, host, rate=150.0,
                            duration_s=600) as traffic:
        r = run_cli(cluster, prefect_api, "canary", "--spec", spec, "--json", timeout=400)
        time.sleep(4)
    assert r.returncode == 0, r.stderr[-4000:]
    result = traffic.result
    assert not result.failed(), result.summary()
    assert route.canary_shares(CANARY) == [0, 1, 5, 25, 50, 100, 0], route.changes
    misses = weight_misses(result, route.spans(result.ended), BACKENDS)
    assert not misses, "; ".join(misses[:5]) + " | " + result.summary()
    assert route_at_rest(kube, namespace) == {STABLE: 100}
    assert images(kube, namespace, STABLE) == {NEW}
    dep = read(kube, "Deployment", namespace, CANARY)
    assert dep is None or dep["spec"]["replicas"] == 0
    assert ready_pods(kube, namespace, STABLE, 10, timeout=60)


@pytest.mark.parametrize("match,sent", [
    ({"header": "X-Canary", "value": "always"}, {"X-Canary": "always"}),
    ({"cookie": "canary", "value": "always"}, {"Cookie": "session=a1b2; canary=always; theme=dark"}),
], ids=["header", "cookie"])
def test_matching_requests_reach_only_the_canary_from_the_first_step(gateway, cluster, prefect_api, kube, namespace,
                                                                     tmp_path, match, sent):
    """Flagger's A/B: at weight 0, testers whose requests match (a header; a cookie among others) reach only the
    canary, everyone else only stable."""
    host = given_stable(kube, gateway, namespace, replicas=3)
    steps = [{"set_weight": 0}, {"set_canary_scale": {"replicas": 1}}, {"match": [match]}, {"pause": {}},
             {"set_weight": 100}]
    spec = spec_file(tmp_path, namespace, steps)
    cli = start_cli(cluster, prefect_api, "canary", "--spec", spec, "--json", log=tmp_path / "canary.log")
    run_id = paused_run_id(cli.log, cli.proc)
    wait_until_routed(gateway, host, CANARY, sent)  # the route's status leads Traefik's routing (GATEWAY_LAG_S)
    with through_gateway(gateway, cluster.kubeconfig, namespace, STABLE, host, sent, rate=50.0) as testers, \
            through_gateway(gateway, cluster.kubeconfig, namespace, STABLE, host, rate=50.0) as everyone:
        time.sleep(6)
    assert testers.result.versions() == {CANARY: testers.result.sent()}, testers.result.summary()
    assert everyone.result.versions() == {STABLE: everyone.result.sent()}, everyone.result.summary()
    r = run_cli(cluster, prefect_api, "approve", run_id, "--reason", "e2e", "--approver", "tester")
    assert r.returncode == 0, r.stderr[-2000:]
    assert cli.proc.wait(300) == 0, cli.text()[-4000:]
    assert route_at_rest(kube, namespace) == {STABLE: 100}


def test_an_abort_at_25_puts_the_route_back_on_stable_before_any_canary_pod_goes(gateway, cluster, prefect_api,
                                                                                  kube, namespace, tmp_path):
    host = given_stable(kube, gateway, namespace)
    steps = [{"set_weight": 5}, {"set_canary_scale": {"replicas": 2}}, {"set_weight": 25}, {"pause": {}},
             {"set_weight": 100}]
    spec = spec_file(tmp_path, namespace, steps)
    with EndpointSampler(kube, namespace, CANARY, traffic=False) as canary_endpoints, \
            RouteSampler(custom(kube), namespace, "web") as route, \
            through_gateway(gateway, cluster.kubeconfig, namespace, STABLE, host, rate=100.0,
                            duration_s=400) as traffic:
        cli = start_cli(cluster, prefect_api, "canary", "--spec", spec, "--json", log=tmp_path / "canary.log")
        run_id = paused_run_id(cli.log, cli.proc)
        time.sleep(6)
        r = run_cli(cluster, prefect_api, "reject", run_id, "--reason", "e2e abort at 25 %")
        assert r.returncode == 0, r.stderr[-2000:]
        assert cli.proc.wait(300) == 1, cli.text()[-4000:]
        time.sleep(4)
    result = traffic.result
    assert not result.failed(), result.summary()
    assert route.canary_shares(CANARY) == [0, 5, 25, 0], route.changes
    back_on_stable = route.changes[-1].by
    counts = [(i.t + canary_endpoints.wall_offset, len(i.ready_uids())) for i in canary_endpoints.instants]
    first_gone = next((t for (t, n), (_, before) in zip(counts[1:], counts) if n < before), None)
    assert first_gone is not None, f"no canary pod went: {canary_endpoints.describe()}"
    assert back_on_stable < first_gone, (back_on_stable, first_gone, canary_endpoints.describe())
    misses = weight_misses(result, route.spans(result.ended), BACKENDS)
    assert not misses, "; ".join(misses[:5])
    assert route_at_rest(kube, namespace) == {STABLE: 100}
    assert images(kube, namespace, STABLE) == {IMAGE}


def test_a_run_killed_at_a_pause_converges_when_run_again(gateway, cluster, prefect_api, kube, namespace, tmp_path):
    host = given_stable(kube, gateway, namespace, replicas=4)
    steps = [{"set_weight": 25}, {"pause": {}}, {"set_weight": 100}]
    spec = spec_file(tmp_path, namespace, steps)
    with RouteSampler(custom(kube), namespace, "web") as route, \
            through_gateway(gateway, cluster.kubeconfig, namespace, STABLE, host, rate=60.0,
                            duration_s=500) as traffic:
        first = start_cli(cluster, prefect_api, "canary", "--spec", spec, "--json", log=tmp_path / "first.log")
        paused_run_id(first.log, first.proc)
        first.kill()
        assert route_at_rest(kube, namespace) == {STABLE: 75, CANARY: 25}
        again = start_cli(cluster, prefect_api, "canary", "--spec", spec, "--json", "--lock-wait", "60",
                          log=tmp_path / "again.log")
        run_id = paused_run_id(again.log, again.proc, timeout=180)
        r = run_cli(cluster, prefect_api, "approve", run_id, "--reason", "e2e", "--approver", "tester")
        assert r.returncode == 0, r.stderr[-2000:]
        assert again.proc.wait(300) == 0, again.text()[-4000:]
        time.sleep(3)
    assert not traffic.result.failed(), traffic.result.summary()
    assert route.canary_shares(CANARY) == [0, 25, 100, 0], route.changes
    assert route_at_rest(kube, namespace) == {STABLE: 100}
    assert images(kube, namespace, STABLE) == {NEW}


@pytest.mark.parametrize("problem", ["missing route", "not the stable Service", "not accepted",
                                     "other namespace without a ReferenceGrant"])
def test_a_bad_route_is_refused_before_anything_changes(gateway, cluster, prefect_api, kube, namespace, tmp_path,
                                                        problem):
    if problem == "missing route":
        given_stable(kube, gateway, namespace, replicas=2)
        custom(kube).delete_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "web")
        expected = "not found"
    elif problem == "not the stable Service":
        given_stable(kube, gateway, namespace, replicas=2)
        route = custom(kube).get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "web")
        route["spec"]["rules"][0]["backendRefs"][0]["name"] = "someone-else"
        custom(kube).replace_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "web", route)
        expected = "does not reference the stable Service"
    elif problem == "not accepted":
        given_stable(kube, gateway, namespace, replicas=2, parent="no-such-gateway")
        expected = "accepted"
    else:
        given_stable(kube, gateway, namespace, replicas=2, backend_namespace="default")
        expected = "ReferenceGrant"
    before = everything(kube, namespace)
    spec = spec_file(tmp_path, namespace, [{"set_weight": 10}, {"set_weight": 100}])
    r = run_cli(cluster, prefect_api, "canary", "--spec", spec)
    assert r.returncode == 2, r.stderr[-3000:]
    assert expected in r.stderr, r.stderr[-3000:]
    assert everything(kube, namespace) == before


def everything(kube, namespace: str) -> dict[str, str]:
    """resourceVersions of what a release could touch; an HTTPRoute's generation and annotations (its status is
    the gateway's to write, whenever it likes)."""
    routes = custom(kube).list_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes")["items"]
    return {**resource_versions(kube, namespace),
            **{f"HTTPRoute/{r['metadata']['name']}": f"{r['metadata']['generation']} "
               f"{sorted((r['metadata'].get('annotations') or {}).items())}" for r in routes}}


def test_without_the_gateway_role_the_canary_is_refused_naming_it_and_with_it_releases(
        gateway, cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    """Least privilege: deployments/rbac.yaml alone lacks the route's rules (exit 2, each missing permission named,
    nothing changed); with deployments/rbac-gateway.yaml beside it the same canary releases."""
    from tests.e2e.release_helpers import ROOT
    from tests.e2e.test_rbac import service_account_kubeconfig

    given_stable(kube, gateway, namespace, replicas=2)
    sa = service_account_kubeconfig(cluster, kubectl, tmp_path)
    spec = spec_file(tmp_path, namespace, [{"set_weight": 50}, {"set_weight": 100}])
    before = everything(kube, namespace)
    r = run_cli(cluster, prefect_api, "canary", "--kubeconfig", sa, "--spec", spec)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "lack 2 permission(s)" in r.stderr and "patch httproutes" in r.stderr, r.stderr[-3000:]
    assert "deployments/rbac-gateway.yaml" in r.stderr, r.stderr[-3000:]
    assert {k: v for k, v in everything(kube, namespace).items() if not k.startswith("Role")} == before
    kubectl("apply", "-f", str(ROOT / "deployments" / "rbac-gateway.yaml"))
    r = run_cli(cluster, prefect_api, "canary", "--kubeconfig", sa, "--spec", spec, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert route_at_rest(kube, namespace) == {STABLE: 100} and images(kube, namespace, STABLE) == {NEW}


def test_a_route_greenlight_creates_carries_the_canary_and_stays_on_stable(gateway, cluster, prefect_api, kube,
                                                                          namespace, tmp_path):
    """No HTTPRoute of the user's: `gateway.create` makes one on the test Gateway (labelled greenlight's), the
    canary moves through it under traffic, and it stays afterwards on stable at 100 %."""
    host = given_stable(kube, gateway, namespace, replicas=3)
    custom(kube).delete_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "web")
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump({
        "namespace": namespace, "service": STABLE, "stable": STABLE, "image": NEW, "traffic": "gateway",
        "gateway": {"route": "web", "create": {"parent": "greenlight-gateway", "parent_namespace": "gateway-system",
                                               "hostnames": [host]}},
        "steps": [{"set_weight": 30}, {"pause": {"duration_s": 8}}, {"set_weight": 100}]}))
    plan = run_cli(cluster, prefect_api, "canary", "--spec", str(path), "--dry-run")
    assert plan.returncode == 0 and "greenlight creates it on Gateway" in plan.stdout, plan.stdout[-3000:]
    cli = start_cli(cluster, prefect_api, "canary", "--spec", str(path), "--json", log=tmp_path / "canary.log")
    wait_for("the route created", lambda: route_at_rest(kube, namespace) if cli.alive() else None, 120,
             interval=0.2)
    with RouteSampler(custom(kube), namespace, "web") as route, \
            through_gateway(gateway, cluster.kubeconfig, namespace, STABLE, host, rate=100.0,
                            duration_s=300) as traffic:
        assert cli.proc.wait(300) == 0, cli.text()[-4000:]
        time.sleep(3)
    assert not traffic.result.failed(), traffic.result.summary()
    assert 30 in route.canary_shares(CANARY) and route.canary_shares(CANARY)[-1] == 0, route.changes
    assert not weight_misses(traffic.result, route.spans(traffic.result.ended), BACKENDS)
    made = custom(kube).get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "web")
    assert made["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "greenlight"
    assert route_at_rest(kube, namespace) == {STABLE: 100} and images(kube, namespace, STABLE) == {NEW}
