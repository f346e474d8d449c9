"""A blue-green through the Gateway API (issue 22): the switch moves an HTTPRoute's backendRef, on the local
cluster's real gateway (Traefik in the cluster's network namespace, tests/cluster/gateway.py), under traffic sent to
the Gateway's listener. The route moves from blue's Service to green's, the Service's selector follows, the route
comes back to the Service (tasks/bluegreen/gateway.py); no request fails and after the route switch only green
answers. `greenlight rollback` goes back through the route the release recorded; a re-run finding the route mid-switch
converges; a post-switch failure moves the
route back to blue, verified; a route not referencing the Service is refused before anything changes."""

from __future__ import annotations

import time

import pytest
import yaml
from kubernetes import client

from prefect_greenlight.tasks.kube.client import read
from tests.e2e.fault_helpers import run_cli
from tests.e2e.gateway_traffic import (
    GATEWAY_LAG_S,
    GROUP,
    VERSION,
    RouteSampler,
    through_gateway,
    wait_until_in_force,
)
from tests.e2e.helpers import IMAGE, container, fault_image, ready_pods
from tests.e2e.release_helpers import resource_versions, selector

pytestmark = pytest.mark.usefixtures("prefect_api")
SERVICE, GREEN_SERVICE, ROUTE = "web", "web-next", "web"
BLUE, GREEN = "web-blue", "web-green"
NEW = "scubakiz/servicedemo:2.0"


def labels(color: str) -> dict[str, str]:
    return {"app": "web", "color": color}


def deployment(name: str, color: str, image: str, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels(color)},
                     "template": {"metadata": {"labels": labels(color)},
                                  "spec": {"containers": [container(image, color)]}}}}


def custom(kube) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api)


def given_blue(kube, gateway: str, namespace: str, replicas: int = 4) -> str:
    """Blue, its Service `web` (selecting blue's pods) and the user's HTTPRoute sending everything to `web`, in
    force at the gateway. Returns the route's hostname."""
    kube.apps.create_namespaced_deployment(namespace, deployment(BLUE, "blue", IMAGE, replicas))
    kube.core.create_namespaced_service(namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE},
        "spec": {"selector": labels("blue"), "ports": [{"name": "web", "port": 80, "targetPort": 80}]}})
    ready_pods(kube, namespace, BLUE, replicas, timeout=120)
    host = f"{namespace}.test"
    custom(kube).create_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "HTTPRoute", "metadata": {"name": ROUTE},
        "spec": {"parentRefs": [{"name": "greenlight-gateway", "namespace": "gateway-system"}], "hostnames": [host],
                 "rules": [{"backendRefs": [{"name": SERVICE, "port": 80}]}]}})
    wait_until_in_force(custom(kube), gateway, namespace, ROUTE, host, BLUE)
    return host


def spec_file(tmp_path, namespace: str, image: str = NEW, **extra) -> str:
    path = tmp_path / "blue-green.yaml"
    path.write_text(yaml.safe_dump({
        "namespace": namespace, "service": SERVICE, "manifest": deployment(GREEN, "green", image, 4),
        "traffic": "gateway", "gateway": {"route": ROUTE}, "cleanup": {"delay_s": 2}, **extra}))
    return str(path)


def backends(route: RouteSampler) -> list[str]:
    """The Services the route's rule sent to, in order (one backendRef each)."""
    return ["+".join(sorted(c.weights)) for c in route.changes]


def route_backends(kube, namespace: str) -> list[str]:
    route = custom(kube).get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", ROUTE)
    return [ref["name"] for ref in route["spec"]["rules"][0]["backendRefs"]]


def test_the_switch_moves_the_route_to_green_with_no_failed_request(gateway, cluster, prefect_api, kube, namespace,
                                                                     tmp_path):
    host = given_blue(kube, gateway, namespace)
    spec = spec_file(tmp_path, namespace)
    plan = run_cli(cluster, prefect_api, "blue-green", "--spec", spec, "--dry-run")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "route-switch" in plan.stdout and f"backendRef {SERVICE} -> {GREEN_SERVICE}" in plan.stdout, plan.stdout
    with RouteSampler(custom(kube), namespace, ROUTE) as route, \
            through_gateway(gateway, cluster.kubeconfig, namespace, SERVICE, host, rate=100.0,
                            duration_s=400) as traffic:
        r = run_cli(cluster, prefect_api, "blue-green", "--spec", spec, "--json", timeout=300)
        time.sleep(GATEWAY_LAG_S + 3)
    assert r.returncode == 0, r.stderr[-4000:]
    result = traffic.result
    assert not result.failed(), result.summary()
    assert backends(route) == [SERVICE, GREEN_SERVICE, SERVICE], route.changes
    switched = route.changes[1].by
    assert result.versions(start=switched + GATEWAY_LAG_S) == {GREEN: len(result.answered(
        start=switched + GATEWAY_LAG_S))}, result.summary()
    assert result.versions(end=route.changes[1].after).keys() == {BLUE}, result.summary()
    assert route_backends(kube, namespace) == [SERVICE]
    assert selector(kube, namespace, SERVICE) == labels("green")
    assert read(kube, "Service", namespace, GREEN_SERVICE) is None
    assert ready_pods(kube, namespace, GREEN, 4, timeout=60)
    assert read(kube, "Deployment", namespace, BLUE)["spec"]["replicas"] == 0


def test_greenlight_rollback_goes_back_through_the_recorded_route(gateway, cluster, prefect_api, kube, namespace,
                                                                  tmp_path):
    host = given_blue(kube, gateway, namespace)
    r = run_cli(cluster, prefect_api, "blue-green", "--spec", spec_file(tmp_path, namespace), timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    assert selector(kube, namespace, SERVICE) == labels("green")
    plan = run_cli(cluster, prefect_api, "rollback", "-n", namespace, "--service", SERVICE, "--dry-run")
    assert plan.returncode == 0 and "route-switch" in plan.stdout, plan.stdout + plan.stderr[-2000:]
    with RouteSampler(custom(kube), namespace, ROUTE) as route, \
            through_gateway(gateway, cluster.kubeconfig, namespace, SERVICE, host, rate=100.0,
                            duration_s=400) as traffic:
        time.sleep(GATEWAY_LAG_S)
        r = run_cli(cluster, prefect_api, "rollback", "-n", namespace, "--service", SERVICE, "--scale-down-delay",
                    "2", timeout=300)
        time.sleep(GATEWAY_LAG_S + 3)
    assert r.returncode == 0, r.stderr[-4000:]
    result = traffic.result
    assert not result.failed(), result.summary()
    assert backends(route) == [SERVICE, GREEN_SERVICE, SERVICE], route.changes
    assert result.versions(end=route.changes[1].after).keys() == {GREEN}, result.summary()
    back = route.changes[2].by
    after = result.answered(start=back + GATEWAY_LAG_S)
    assert after and result.versions(start=back + GATEWAY_LAG_S) == {BLUE: len(after)}, result.summary()
    assert route_backends(kube, namespace) == [SERVICE]
    assert selector(kube, namespace, SERVICE) == labels("blue")
    assert read(kube, "Service", namespace, GREEN_SERVICE) is None
    assert ready_pods(kube, namespace, BLUE, 4, timeout=30)


def test_a_rerun_finding_the_route_mid_switch_converges(gateway, cluster, prefect_api, kube, namespace, tmp_path):
    """Given what a run killed between route-switch and the selector switch leaves (green ready, greenlight's green
    Service, the route on it, the Service on blue), a re-run takes the route home first, then releases."""
    host = given_blue(kube, gateway, namespace)
    kube.apps.create_namespaced_deployment(namespace, deployment(GREEN, "green", NEW, 4))
    ready_pods(kube, namespace, GREEN, 4, timeout=120)
    kube.core.create_namespaced_service(namespace, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": GREEN_SERVICE, "annotations": {"greenlight.io/green-service-of": SERVICE}},
        "spec": {"selector": labels("green"), "ports": [{"name": "web", "port": 80, "targetPort": 80}]}})
    route = custom(kube).get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", ROUTE)
    route["spec"]["rules"][0]["backendRefs"][0]["name"] = GREEN_SERVICE
    custom(kube).replace_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", ROUTE, route)
    wait_until_in_force(custom(kube), gateway, namespace, ROUTE, host, GREEN)
    with RouteSampler(custom(kube), namespace, ROUTE) as sampled, \
            through_gateway(gateway, cluster.kubeconfig, namespace, SERVICE, host, rate=100.0,
                            duration_s=400) as traffic:
        r = run_cli(cluster, prefect_api, "blue-green", "--spec", spec_file(tmp_path, namespace), timeout=300)
        time.sleep(GATEWAY_LAG_S + 3)
    assert r.returncode == 0, r.stderr[-4000:]
    assert r.stderr.count(f"rule 0 {GREEN_SERVICE} -> {SERVICE}:") == 2, r.stderr[-4000:]  # route-home, route-back
    assert not traffic.result.failed(), traffic.result.summary()
    assert backends(sampled) == [GREEN_SERVICE, SERVICE, GREEN_SERVICE, SERVICE], sampled.changes
    assert route_backends(kube, namespace) == [SERVICE]
    assert selector(kube, namespace, SERVICE) == labels("green")
    assert read(kube, "Service", namespace, GREEN_SERVICE) is None


def test_a_post_switch_failure_moves_the_route_back_to_blue_verified(gateway, cluster, prefect_api, kube, namespace,
                                                                      tmp_path):
    host = given_blue(kube, gateway, namespace)
    spec = spec_file(tmp_path, namespace, image=fault_image("failafter-20"),
                     post_switch={"window_s": 60, "interval_s": 2})
    with RouteSampler(custom(kube), namespace, ROUTE) as route, \
            through_gateway(gateway, cluster.kubeconfig, namespace, SERVICE, host, rate=60.0,
                            duration_s=400, expect_failures=True) as traffic:
        r = run_cli(cluster, prefect_api, "blue-green", "--spec", spec, "--json", timeout=300)
        time.sleep(GATEWAY_LAG_S + 3)
    assert r.returncode == 1, r.stderr[-4000:]
    assert "post-switch" in r.stderr, r.stderr[-4000:]
    result = traffic.result
    # forward: Service -> green's Service -> Service; back: green's Service -> Service (now blue's)
    assert backends(route) == [SERVICE, GREEN_SERVICE, SERVICE, GREEN_SERVICE, SERVICE], route.changes
    home = route.changes[-1].by
    after = result.answered(start=home + GATEWAY_LAG_S)
    assert after and result.versions(start=home + GATEWAY_LAG_S) == {BLUE: len(after)}, result.summary()
    assert GREEN in result.versions(), "green served before it failed"
    # green answers 500 from 20 s after its pods started until the route leaves it: those fail, nothing else
    assert not result.failed(ignore_5xx_from=(GREEN,)), result.summary()
    assert route_backends(kube, namespace) == [SERVICE]
    assert selector(kube, namespace, SERVICE) == labels("blue")
    assert read(kube, "Service", namespace, GREEN_SERVICE) is None
    assert read(kube, "Deployment", namespace, GREEN) is None
    assert ready_pods(kube, namespace, BLUE, 4, timeout=30)


def test_a_route_not_referencing_the_service_is_refused_before_anything_changes(gateway, cluster, prefect_api,
                                                                                 kube, namespace, tmp_path):
    given_blue(kube, gateway, namespace, replicas=2)
    route = custom(kube).get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", ROUTE)
    route["spec"]["rules"][0]["backendRefs"][0]["name"] = "someone-else"
    custom(kube).replace_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", ROUTE, route)
    before = everything(kube, namespace)
    r = run_cli(cluster, prefect_api, "blue-green", "--spec", spec_file(tmp_path, namespace))
    assert r.returncode == 2, r.stderr[-3000:]
    assert f"does not reference the Service '{SERVICE}'" in r.stderr, r.stderr[-3000:]
    assert everything(kube, namespace) == before


def everything(kube, namespace: str) -> dict[str, str]:
    """resourceVersions of what a release could touch, and the HTTPRoute's generation (its status is the
    gateway's to write)."""
    routes = custom(kube).list_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes")["items"]
    return {**resource_versions(kube, namespace),
            **{f"HTTPRoute/{r['metadata']['name']}": str(r["metadata"]["generation"]) for r in routes}}
