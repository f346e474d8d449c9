"""The test cluster's gateway is a real Gateway API data path (tests/cluster/gateway.py): an HTTPRoute's weights
split requests between two Services' pods within the binomial tolerance at every weight, a weight of 0 receives
nothing, a header-matched rule reaches only its backend, and the route's status says Accepted and ResolvedRefs at
its generation. (greenlight's own gateway releases are in test_gateway_canary.py.)"""

from __future__ import annotations

import time

from tests.e2e.gateway_traffic import (
    GROUP,
    VERSION,
    RouteSampler,
    accepted_at_generation,
    route_manifest,
    through_gateway,
    wait_until_in_force,
    weight_misses,
)
from tests.e2e.helpers import deployment_manifest, ready_pods, service_manifest, wait_for


def given_two_tracks(kube, namespace: str, stable: int = 10, canary: int = 2) -> None:
    for name, replicas, color in (("web", stable, "blue"), ("web-canary", canary, "green")):
        kube.apps.create_namespaced_deployment(namespace, deployment_manifest(name, replicas, color=color))
        kube.core.create_namespaced_service(namespace, service_manifest(name, {"target": name}, port=80))
    ready_pods(kube, namespace, "web", stable)
    ready_pods(kube, namespace, "web-canary", canary)


def set_canary_weight(custom, namespace: str, name: str, weight: int) -> None:
    route = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", name)
    refs = route["spec"]["rules"][-1]["backendRefs"]
    refs[0]["weight"], refs[1]["weight"] = 100 - weight, weight
    custom.replace_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", name, route)
    wait_for(f"route {name} accepted at weight {weight}", lambda: accepted_at_generation(custom, namespace, name), 30)


def test_route_weights_split_requests_through_the_real_gateway(gateway, cluster, kube, namespace):
    from kubernetes import client

    custom = client.CustomObjectsApi(kube.api)
    given_two_tracks(kube, namespace)
    host = f"{namespace}.test"
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes",
                                           route_manifest(namespace, "web", host, "web", "web-canary"))
    wait_until_in_force(custom, gateway, namespace, "web", host, "web")
    with RouteSampler(custom, namespace, "web") as route, \
            through_gateway(gateway, cluster.kubeconfig, namespace, "web", host, rate=150.0) as traffic:
        for weight in (1, 25, 0):
            time.sleep(8)
            set_canary_weight(custom, namespace, "web", weight)
        time.sleep(8)
    result = traffic.result
    assert not result.failed(), result.summary()
    assert route.canary_shares("web-canary") == [0, 1, 25, 0]
    spans = route.spans(result.ended)
    assert not weight_misses(result, spans, {"web": "web", "web-canary": "web-canary"}), result.summary()
    at_one = [s for s in spans if s.share("web-canary") == 0.01][0]
    assert result.share("web-canary", 0.01, at_one.start + 3, at_one.end, conn="all").hits > 0, result.summary()


def test_a_header_matched_rule_reaches_only_its_backend(gateway, cluster, kube, namespace):
    from kubernetes import client

    custom = client.CustomObjectsApi(kube.api)
    given_two_tracks(kube, namespace, stable=3, canary=1)
    host = f"{namespace}.test"
    route = route_manifest(namespace, "web", host, "web", "web-canary")
    route["spec"]["rules"].insert(0, {"matches": [{"headers": [{"name": "X-Canary", "value": "always"}]}],
                                      "backendRefs": [{"name": "web-canary", "port": 80}]})
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", route)
    wait_until_in_force(custom, gateway, namespace, "web", host, "web-canary", {"X-Canary": "always"})
    wait_until_in_force(custom, gateway, namespace, "web", host, "web")
    with through_gateway(gateway, cluster.kubeconfig, namespace, "web", host, {"X-Canary": "always"},
                         rate=50.0) as testers, \
            through_gateway(gateway, cluster.kubeconfig, namespace, "web", host, rate=50.0) as everyone:
        time.sleep(5)
    assert testers.result.versions() == {"web-canary": testers.result.sent()}, testers.result.summary()
    assert everyone.result.versions() == {"web": everyone.result.sent()}, everyone.result.summary()
