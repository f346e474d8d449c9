"""A canary by HTTPRoute weights (`traffic: gateway`): the spec, the state after each step, the rules greenlight
applies (weights, the A/B match rule, idempotent and reversible), the route's acceptance verdict, what preflight
refuses in the route and the Services, and the plan's lines."""

from __future__ import annotations

import re

import pytest

from prefect_greenlight.tasks.decisions.describe_gateway import GatewayPlan, describe_change
from prefect_greenlight.tasks.decisions.gateway import (
    AT_REST,
    GatewayState,
    canary_pods,
    canary_service_manifest,
    cookie_regex,
    cross_namespaces,
    desired_rules,
    gateway_states,
    route_problems,
    route_verdict,
    scale_first,
    service_problems,
)
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import parse_spec
from prefect_greenlight.tasks.spec.canary import CanarySpec
from prefect_greenlight.tasks.spec.gateway import CanaryScale, RouteMatch
from tests.unit.builders import deployment, service

BASE = {"service": "web", "stable": "web-v1", "image": "web:2", "traffic": "gateway", "gateway": {"route": "web"}}
NS = "default"


def spec(**fields) -> CanarySpec:
    return parse_spec(CanarySpec, {**BASE, **fields}, source="test")


def bad(message: str, **fields) -> None:
    with pytest.raises(BadInput) as err:
        parse_spec(CanarySpec, {**BASE, **fields}, source="test")
    assert message in str(err.value), str(err.value)


# --- the spec -----------------------------------------------------------------------------------------------------

def test_the_gateway_block_defaults_rule_0_and_the_canary_service_name():
    s = spec()
    assert s.gateway.rule == 0 and s.canary_service == "web-canary"
    assert spec(gateway={"route": "web", "canary_service": "web-next"}).canary_service == "web-next"


def test_replicas_stays_the_default_and_refuses_the_gateway_only_parts():
    plain = {k: v for k, v in BASE.items() if k not in ("traffic", "gateway")}
    assert parse_spec(CanarySpec, plain).traffic.value == "replicas"
    bad("needs `traffic: gateway`", traffic="replicas")
    bad("traffic: gateway needs a `gateway` block", gateway=None)
    with pytest.raises(BadInput, match="need `traffic: gateway`"):
        parse_spec(CanarySpec, {**plain, "steps": [{"set_weight": 10}, {"match": [{"header": "x", "value": "1"}]}]})
    with pytest.raises(BadInput, match="percentages 1..100"):
        parse_spec(CanarySpec, {**plain, "steps": [0, 100]})


def test_written_gateway_steps_parse_with_any_weight_from_0():
    s = spec(steps=[{"set_weight": 0}, {"match": [{"header": "X-Canary", "value": "always"},
                                                   {"cookie": "canary", "value": "yes"}]},
                    {"set_canary_scale": {"replicas": 2}}, {"set_weight": 1}, {"pause": {"duration_s": 5}},
                    {"set_weight": 5}, {"set_canary_scale": {"share_of_stable": 50}}, {"set_weight": 50}])
    assert s.weights == [0, 1, 5, 50, 100]
    assert [x.kind for x in s.step_list()][:3] == ["set_weight", "match", "set_canary_scale"]
    assert "cookie canary=yes" in s.step_list()[1].describe()


@pytest.mark.parametrize("fields, message", [
    ({"steps": [{"set_weight": 10}, {"set_canary_scale": {}}]}, "exactly one of {replicas: N}"),
    ({"steps": [{"set_weight": 10}, {"set_canary_scale": {"replicas": 1, "share_of_stable": 5}}]},
     "exactly one of {replicas: N}"),
    ({"steps": [{"set_weight": 10}, {"match": [{"value": "x"}]}]}, "exactly one of {header"),
    ({"steps": [{"set_weight": 10}, {"match": [{"cookie": "c", "value": "x", "regex": True}]}]},
     "regex is for header matches only"),
    ({"steps": [{"set_weight": 10}, {"match": [{"header": "bad name", "value": "x"}]}]}, "match.0.header"),
    ({"steps": [{"set_weight": 10}, {"match": [{"cookie": "a", "value": "1"}, {"cookie": "b", "value": "2"}]}]},
     "names header(s) ['cookie'] more than once"),
    ({"steps": [{"set_weight": 10}, {"match": [{"header": "X-A", "value": "1"}, {"header": "x-a", "value": "2"}]}]},
     "names header(s) ['x-a'] more than once"),
    ({"baseline": True}, "not supported with traffic: gateway"),
    ({"total": 4}, "total is for traffic: replicas"),
    ({"gateway": {"route": "web", "canary_service": "web"}}, "must differ from service"),
    ({"gateway": {"route": "web", "rule": -1}}, "gateway.rule"),
])
def test_bad_gateway_specs_are_bad_input_naming_the_problem(fields, message):
    bad(message, **fields)


# --- states -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stable, weight, scale, pods", [
    (10, 1, None, 1), (10, 5, None, 1), (10, 30, None, 3), (3, 50, None, 2), (4, 100, None, 4),
    (10, 0, None, 1), (10, 5, CanaryScale(replicas=4), 4), (10, 5, CanaryScale(share_of_stable=25), 3),
    (10, 5, CanaryScale(match_traffic_weight=True), 1),
])
def test_canary_pods_default_to_the_weight_share_rounded_up_at_least_1(stable, weight, scale, pods):
    assert canary_pods(stable, weight, scale) == pods


def test_states_carry_scale_and_matches_until_the_next_one():
    s = spec(steps=[{"set_weight": 5}, {"set_canary_scale": {"replicas": 3}}, {"match": [{"header": "h",
                                                                                        "value": "v"}]},
                    {"set_weight": 20}, {"set_canary_scale": {"match_traffic_weight": True}}, {"match": []},
                    {"set_weight": 60}])
    states = gateway_states(s.step_list(), 10)
    assert [(x.weight, x.canary_pods, len(x.matches)) for x in states] == [
        (5, 1, 0), (5, 3, 0), (5, 3, 1), (20, 3, 1), (20, 2, 1), (20, 2, 0), (60, 6, 0), (100, 10, 0)]


def test_a_weight_to_a_canary_at_0_pods_is_refused():
    s = spec(steps=[{"set_weight": 0}, {"set_canary_scale": {"replicas": 0}}, {"set_weight": 10}])
    with pytest.raises(ValueError, match=r"step 3 \(set_weight 10\): 10 % and 0 match\(es\) would go to a canary "
                                         "with 0 pods"):
        gateway_states(s.step_list(), 4)


def test_pods_rise_before_the_route_and_fall_after_it():
    assert scale_first(1, 3) and scale_first(2, 2) and not scale_first(3, 1)


# --- the route's rules ----------------------------------------------------------------------------------------------

def rules() -> list[dict]:
    return [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
             "backendRefs": [{"name": "web", "port": 80}]},
            {"backendRefs": [{"name": "other", "port": 8080}]}]


def test_weights_put_stable_at_100_minus_n_and_the_canary_at_n():
    got = desired_rules(rules(), 0, NS, "web", "web-canary", GatewayState(5, 1))
    assert got[0]["backendRefs"] == [{"name": "web", "port": 80, "weight": 95},
                                     {"name": "web-canary", "port": 80, "weight": 5}]
    assert got[1] == rules()[1]


def test_the_same_state_twice_gives_the_same_rules_and_rest_removes_the_canary():
    once = desired_rules(rules(), 0, NS, "web", "web-canary", GatewayState(30, 3))
    assert desired_rules(once, 0, NS, "web", "web-canary", GatewayState(30, 3)) == once
    back = desired_rules(once, 0, NS, "web", "web-canary", AT_REST)
    assert back[0]["backendRefs"] == [{"name": "web", "port": 80, "weight": 100}] and len(back) == 2


def test_a_match_adds_a_canary_only_rule_before_the_weighted_one_and_rest_removes_it():
    state = GatewayState(10, 1, (RouteMatch(header="X-Canary", value="always"),
                                 RouteMatch(cookie="canary", value="yes")))
    got = desired_rules(rules(), 0, NS, "web", "web-canary", state)
    assert len(got) == 3 and got[1]["backendRefs"][0]["weight"] == 90
    assert got[0]["backendRefs"] == [{"name": "web-canary", "port": 80, "weight": 100}]
    assert got[0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/api"}, "headers": [
        {"type": "Exact", "name": "X-Canary", "value": "always"},
        {"type": "RegularExpression", "name": "Cookie", "value": r"^(.*?;\s*)?(canary=yes)(;.*)?$"}]}]
    again = desired_rules(got, 0, NS, "web", "web-canary", state)
    assert again == got
    assert desired_rules(got, 0, NS, "web", "web-canary", AT_REST) == desired_rules(rules(), 0, NS, "web",
                                                                                     "web-canary", AT_REST)


def test_a_rule_without_matches_gets_the_default_path_match_with_the_headers():
    got = desired_rules([{"backendRefs": [{"name": "web"}]}], 0, NS, "web", "c",
                        GatewayState(0, 1, (RouteMatch(header="h", value="a.*", regex=True),)))
    assert got[0]["matches"][0]["headers"] == [{"type": "RegularExpression", "name": "h", "value": "a.*"}]
    assert got[1]["backendRefs"] == [{"name": "web", "weight": 100}]


def test_the_cookie_regex_escapes_and_matches_only_that_cookie():
    rx = re.compile(cookie_regex("canary", "a.b"))
    assert rx.match("x=1; canary=a.b; y=2") and rx.match("canary=a.b")
    assert not rx.match("canary=aXb") and not rx.match("notcanary=a.b")


def test_a_rule_without_the_stable_service_is_refused():
    with pytest.raises(ValueError, match="no backendRef to Service 'web'"):
        desired_rules(rules(), 1, NS, "web", "web-canary", GatewayState(5, 1))
    with pytest.raises(ValueError, match="2 rule"):
        desired_rules(rules(), 2, NS, "web", "web-canary", GatewayState(5, 1))


# --- the route's status -----------------------------------------------------------------------------------------------

def route(generation: int = 2, conditions: dict | None = None, observed: int = 2) -> dict:
    conds = [{"type": k, "status": v, "observedGeneration": observed, "reason": "R", "message": "m"}
             for k, v in (conditions or {"Accepted": "True", "ResolvedRefs": "True"}).items()]
    return {"metadata": {"name": "web", "namespace": NS, "generation": generation},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": rules()},
            "status": {"parents": [{"parentRef": {"name": "gw"}, "controllerName": "traefik", "conditions": conds}]}}


def test_the_route_is_verified_only_accepted_resolved_and_current():
    assert route_verdict(route()).ok
    stale = route_verdict(route(generation=3))
    assert not stale.ok and "0 of 1 parent(s) observed generation 3" in stale.message
    unresolved = route_verdict(route(conditions={"Accepted": "True", "ResolvedRefs": "False"}))
    assert not unresolved.ok and "1 of 1 Accepted=True, 0 of 1 ResolvedRefs=True" in unresolved.message
    assert "ResolvedRefs=False R 'm'" in unresolved.message
    assert not route_verdict({**route(), "spec": {"rules": []}}).ok


def test_preflight_refuses_what_the_route_gets_wrong():
    assert route_problems(route(), 0, "web", "web-canary", {}) == []
    assert "does not reference the stable Service 'web'" in route_problems(route(), 1, "web", "web-canary", {})[0]
    assert "rule 5 does not exist" in route_problems(route(), 5, "web", "web-canary", {})[0]
    refused = route_problems(route(conditions={"Accepted": "False"}), 0, "web", "web-canary", {})
    assert refused == ["HTTPRoute 'web': no parent Gateway has accepted it (no Accepted=True among 1 parent "
                       "status(es))"]


def test_a_cross_namespace_backend_needs_a_reference_grant():
    r = route()
    r["spec"]["rules"][1]["backendRefs"][0]["namespace"] = "other-ns"
    assert cross_namespaces(r) == ["other-ns"]
    assert "no ReferenceGrant in 'other-ns' allows it" in route_problems(r, 0, "web", "web-canary", {})[0]
    grant = {"spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": NS}],
                      "to": [{"group": "", "kind": "Service"}]}}
    assert route_problems(r, 0, "web", "web-canary", {"other-ns": [grant]}) == []
    wrong = {"spec": {**grant["spec"], "to": [{"group": "", "kind": "Service", "name": "else"}]}}
    assert route_problems(r, 0, "web", "web-canary", {"other-ns": [wrong]})


# --- the Services -----------------------------------------------------------------------------------------------------

def test_the_canary_service_copies_ports_and_adds_the_track_label():
    stable_svc = service("web", {"app": "web", "greenlight.io/track": "stable"})
    stable_svc["spec"]["ports"] = [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}]
    made = canary_service_manifest(stable_svc, "web-canary")
    assert made["spec"]["selector"] == {"app": "web", "greenlight.io/track": "canary"}
    assert made["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080}]
    stable = deployment("web-v1", {"app": "web", "greenlight.io/track": "stable"})
    canary = deployment("web-canary", {"app": "web", "greenlight.io/track": "canary"})
    assert service_problems(stable_svc, made, stable, canary) == []


def test_a_stable_service_selecting_the_canary_too_is_refused():
    stable_svc = service("web", {"app": "web"})
    stable = deployment("web-v1", {"app": "web"})
    canary = deployment("web-canary", {"app": "web", "greenlight.io/track": "canary"})
    problems = service_problems(stable_svc, canary_service_manifest(stable_svc, "web-canary"), stable, canary)
    assert len(problems) == 1 and "also selects 'web-canary'" in problems[0]


# --- the plan -----------------------------------------------------------------------------------------------------------

def test_the_plan_line_shows_weights_matches_and_pods_in_order():
    g = GatewayPlan("web", 0, "web", "web-canary", 10, ())
    up = describe_change(g, "step-5", "web-v1", "web-canary", AT_REST,
                         GatewayState(5, 1, (RouteMatch(header="X-Canary", value="1"),)), 60)
    assert up.change.startswith("web-canary 0 -> 1 pod(s), ready; then HTTPRoute web rule 0: web 95 / web-canary 5")
    assert "header X-Canary = 1" in up.change and "10 / 1 ready endpoints" in up.gate
    down = describe_change(g, "scale-5", "web-v1", "web-canary", GatewayState(5, 3), GatewayState(5, 1), 60)
    assert down.change.startswith("HTTPRoute web rule 0: web 95 / web-canary 5; match rule (canary only): none; "
                                  "then web-canary 3 -> 1")


# --- `greenlight abort` ----------------------------------------------------------------------------------------------

def test_the_abort_reads_the_recorded_route_and_routes_back_first():
    from prefect_greenlight.tasks.decisions.describe_abort import canary_abort, describe_restore_stable
    from prefect_greenlight.tasks.spec import Deadlines
    progress = {"stable": "web-v1", "deployment": "web-v1-canary", "total": "4", "step": "2/4",
                "route": "web/1/web-canary"}
    a = canary_abort(NS, "web", progress, Deadlines())
    assert a.route == ("web", 1, "web-canary")
    assert describe_restore_stable(a).change.startswith("HTTPRoute web rule 1 back to web 100 %")
    assert canary_abort(NS, "web", {**progress, "route": "garbled"}, Deadlines()).route is None
    replica = canary_abort(NS, "web", {k: v for k, v in progress.items() if k != "route"}, Deadlines())
    assert replica.route is None and describe_restore_stable(replica).change.startswith("scale web-v1")


def test_the_canary_ref_keeps_the_defaulted_fields_so_a_second_apply_is_skipped():
    read_back = [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                  "backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80, "weight": 1}]}]
    once = desired_rules(read_back, 0, NS, "web", "web-canary", GatewayState(1, 1))
    assert once[0]["backendRefs"][1] == {"group": "", "kind": "Service", "port": 80, "name": "web-canary",
                                         "weight": 1}
    assert desired_rules(once, 0, NS, "web", "web-canary", GatewayState(1, 1)) == once


def test_a_header_the_rule_already_matches_is_replaced_in_the_match_rule_not_repeated():
    rule = [{"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                          "headers": [{"type": "Exact", "name": "x-canary", "value": "old"},
                                      {"type": "Exact", "name": "Host-Tag", "value": "t"}]}],
             "backendRefs": [{"name": "web"}]}]
    got = desired_rules(rule, 0, NS, "web", "c", GatewayState(0, 1, (RouteMatch(header="X-Canary", value="1"),)))
    assert got[0]["matches"][0]["headers"] == [{"type": "Exact", "name": "Host-Tag", "value": "t"},
                                               {"type": "Exact", "name": "X-Canary", "value": "1"}]
    assert got[1]["matches"] == rule[0]["matches"]


def test_a_route_greenlight_creates_sends_everything_to_stable_on_its_gateway_and_is_not_yet_accepted():
    from prefect_greenlight.tasks.decisions.gateway import route_manifest, route_problems
    from prefect_greenlight.tasks.spec.gateway import RouteCreate

    stable = {"metadata": {"name": "web"}, "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 80}]}}
    made = route_manifest("web", RouteCreate(parent="gw", parent_namespace="infra", section="http",
                                             hostnames=["web.example"]), stable)
    assert made["spec"] == {"parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "http"}],
                            "hostnames": ["web.example"], "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]}
    assert made["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "greenlight"}
    made["metadata"]["namespace"] = "ns"
    assert route_problems(made, 0, "web", "web-canary", {}, created=True) == []
    assert [p.split(":")[1].strip()[:30] for p in route_problems(made, 0, "web", "web-canary", {})] == [
        "no parent Gateway has accepted"]


def test_gateway_create_makes_a_route_of_one_rule():
    import pytest

    from prefect_greenlight.tasks.spec.gateway import GatewayRoute

    assert GatewayRoute(route="web", create={"parent": "gw"}).create.parent == "gw"
    with pytest.raises(ValueError, match="gateway.rule must be 0"):
        GatewayRoute(route="web", rule=1, create={"parent": "gw"})
