"""Production workload shapes, decided from manifests alone (tasks/decisions/workload.py): which container an
image is for, which port a check reaches, paused Deployments, and what a Service's own settings imply."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.decisions.endpoints import endpoint_targets
from prefect_greenlight.tasks.decisions.workload import (
    choose_container,
    image_repository,
    paused,
    port_problems,
    resolve_port,
    service_port,
    service_warnings,
)
from prefect_greenlight.tasks.spec import SmokeCheck


@pytest.mark.parametrize("ref, repo", [
    ("nginx", "docker.io/library/nginx"),
    ("nginx:1.27", "docker.io/library/nginx"),
    ("library/nginx:1.27", "docker.io/library/nginx"),
    ("docker.io/library/nginx@sha256:" + "a" * 64, "docker.io/library/nginx"),
    ("index.docker.io/scubakiz/servicedemo:2.0", "docker.io/scubakiz/servicedemo"),
    ("scubakiz/servicedemo:2.0", "docker.io/scubakiz/servicedemo"),
    ("localhost:5000/app:v2", "localhost:5000/app"),
    ("localhost/app", "localhost/app"),
    ("ghcr.io/org/team/app:v2", "ghcr.io/org/team/app"),
    ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo"),
    ("registry:5000/app", "registry:5000/app"),
])
def test_image_repository_ignores_tag_digest_and_docker_hub_defaults(ref, repo):
    assert image_repository(ref) == repo


def _pod(*containers, init=()):
    return {"containers": [dict(c) for c in containers], "initContainers": [dict(c) for c in init]}


APP = {"name": "app", "image": "scubakiz/servicedemo:1.0", "ports": [{"name": "http", "containerPort": 8080}]}
PROXY = {"name": "proxy", "image": "envoyproxy/envoy:v1.31", "ports": [{"name": "admin", "containerPort": 9901}]}
EXPORTER = {"name": "metrics", "image": "prom/statsd-exporter:v0.26",
            "ports": [{"name": "metrics", "containerPort": 9102}]}


def test_single_container_is_the_one_whatever_its_image():
    assert choose_container(_pod(APP), "other/app:2", None, "d").name == "app"


def test_with_a_sidecar_the_container_of_the_same_repository_is_chosen_not_the_first():
    choice = choose_container(_pod(PROXY, APP), "scubakiz/servicedemo:2.0", None, "d")
    assert (choice.kind, choice.index, choice.name) == ("containers", 1, "app")


def test_no_container_of_that_repository_is_refused_listing_every_container():
    with pytest.raises(ValueError) as exc:
        choose_container(_pod(PROXY, APP), "other/app:2", None, "blue-dep")
    assert "none of them run docker.io/other/app" in str(exc.value)
    assert "proxy (envoyproxy/envoy:v1.31), app (scubakiz/servicedemo:1.0)" in str(exc.value)


def test_two_containers_of_that_repository_are_refused_as_ambiguous():
    twin = {**APP, "name": "worker"}
    with pytest.raises(ValueError) as exc:
        choose_container(_pod(APP, twin), "scubakiz/servicedemo:2.0", None, "d")
    assert "2 of them run docker.io/scubakiz/servicedemo" in str(exc.value) and "--container" in str(exc.value)


def test_init_containers_are_never_chosen_unless_named():
    migrate = {"name": "migrate", "image": "scubakiz/servicedemo:1.0"}
    assert choose_container(_pod(PROXY, APP, init=[migrate]), "scubakiz/servicedemo:2", None, "d").kind == "containers"
    named = choose_container(_pod(PROXY, APP, init=[migrate]), "scubakiz/servicedemo:2", "migrate", "d")
    assert (named.kind, named.index) == ("initContainers", 0)


def test_a_named_container_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="container 'nope' not found in Deployment 'd'"):
        choose_container(_pod(APP), "x:1", "nope", "d")


SVC_NAMED = [{"name": "web", "port": 80, "targetPort": "http"}, {"name": "admin", "port": 9901, "targetPort": 9901}]


@pytest.mark.parametrize("explicit, svc_port, want", [
    (None, {"port": 80, "targetPort": "http"}, 8080),        # named targetPort, resolved on the pod
    (None, {"port": 80, "targetPort": 8080}, 8080),          # numeric targetPort
    (None, {"port": 8080}, 8080),                            # no targetPort: the port itself
    (None, {"port": 80, "targetPort": "grpc"}, None),        # a name the pod lacks
    (9102, {"port": 80, "targetPort": "http"}, 9102),        # explicit number wins
    ("metrics", {"port": 80, "targetPort": "http"}, 9102),   # explicit name, resolved on the pod
    (None, None, 9102),                                      # no Service port: the first declared port
])
def test_check_port_is_the_service_targetport_on_each_pod_not_the_first_declared(explicit, svc_port, want):
    assert resolve_port(_pod(EXPORTER, APP), explicit, svc_port) == want


def test_pods_of_two_versions_may_number_a_named_port_differently():
    v2 = {**APP, "ports": [{"name": "http", "containerPort": 9000}]}
    web = service_port(SVC_NAMED, None)
    assert resolve_port(_pod(APP), None, web) == 8080 and resolve_port(_pod(v2), None, web) == 9000


def test_service_port_is_found_by_name_or_number_default_the_first():
    assert service_port(SVC_NAMED, None)["name"] == "web"
    assert service_port(SVC_NAMED, "admin")["port"] == 9901
    assert service_port(SVC_NAMED, 9901)["name"] == "admin"
    assert service_port(SVC_NAMED, "nope") is None and service_port([], None) is None


def test_a_targetport_name_green_does_not_declare_is_a_problem_naming_it():
    problems = port_problems(_pod(EXPORTER), [SmokeCheck()], SVC_NAMED, "green 'g'")
    assert problems == ["Service port web targets port name 'http', which green 'g''s containers do not declare "
                        "(they declare ['metrics'])"]
    assert port_problems(_pod(EXPORTER, APP), [SmokeCheck()], SVC_NAMED, "green") == []


def test_smoke_ports_that_do_not_exist_are_problems():
    checks = [SmokeCheck(port="grpc"), SmokeCheck(service_port="nope")]
    problems = port_problems(_pod(APP), checks, SVC_NAMED[:1], "green")
    assert any("smoke[0].port 'grpc'" in p for p in problems)
    assert any("smoke[1].service_port 'nope'" in p for p in problems)


def test_paused_is_read_from_the_spec():
    assert paused({"spec": {"paused": True}}) and not paused({"spec": {}}) and not paused({})


def _svc(**spec):
    return {"metadata": {"name": "s"}, "spec": spec}


def test_client_ip_affinity_warns_and_warns_again_when_the_delay_is_shorter():
    warnings = service_warnings(_svc(sessionAffinity="ClientIP",
                                     sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}}), 30)
    assert len(warnings) == 2 and "up to 600 s" in warnings[0] and "(30 s) is shorter" in warnings[1]
    assert len(service_warnings(_svc(sessionAffinity="ClientIP"), 20000)) == 1  # default 10800 s, delay longer


def test_headless_service_warns_about_dns_caching_and_a_plain_one_is_silent():
    assert "DNS cache" in service_warnings(_svc(clusterIP="None"), 30)[0]
    assert service_warnings(_svc(clusterIP="10.96.0.10", sessionAffinity="None"), 30) == []


def _slice(*endpoints):
    return [{"endpoints": [{"targetRef": {"uid": uid}, "conditions": cond} for uid, cond in endpoints]}]


def test_publish_not_ready_addresses_readiness_comes_from_serving_not_ready():
    # publishNotReadyAddresses: the controller sets ready=true for every pod; serving is the pod's Ready
    targets = endpoint_targets(_slice(("a", {"ready": True, "serving": True}),
                                      ("b", {"ready": True, "serving": False})))
    assert targets == {"a": True, "b": False}


def test_without_serving_the_ready_condition_decides_and_terminating_is_never_ready():
    targets = endpoint_targets(_slice(("a", {"ready": True}), ("b", {"ready": False}), ("c", {}),
                                      ("d", {"ready": True, "serving": True, "terminating": True})))
    assert targets == {"a": True, "b": False, "c": True, "d": False}


def test_selector_query_writes_match_labels_and_expressions_as_a_label_selector():
    from prefect_greenlight.tasks.decisions.workload import selector_query

    assert selector_query({"matchLabels": {"b": "2", "a": "1"}}) == "a=1,b=2"
    assert selector_query({"matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web", "api"]},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "team", "operator": "Exists"}, {"key": "canary", "operator": "DoesNotExist"}]}) == \
        "tier in (api,web),env notin (dev),team,!canary"
    assert selector_query({}) is None and selector_query(None) is None and selector_query({"matchLabels": {}}) is None
