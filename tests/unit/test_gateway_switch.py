"""A blue-green through an HTTPRoute (`traffic: gateway` on the blue-green spec): the spec, the rules each route
move applies (idempotent, reversible, everything else kept), what preflight refuses in the route and green's
Service, green's Service, the plan's steps and their undo, and `greenlight rollback` through the recorded route."""

from __future__ import annotations

import dataclasses
import json

import pytest

from prefect_greenlight.tasks.bluegreen.preflight import BlueGreenPreflight
from prefect_greenlight.tasks.bluegreen.rollback_strategy import rollback_plan, rollback_steps
from prefect_greenlight.tasks.bluegreen.strategy import blue_green_plan, blue_green_steps
from prefect_greenlight.tasks.decisions.annotations import read_record
from prefect_greenlight.tasks.decisions.colors import ColorPlan
from prefect_greenlight.tasks.decisions.describe_bluegreen import switch_ops
from prefect_greenlight.tasks.decisions.describe_rollback import RollbackFacts
from prefect_greenlight.tasks.decisions.gateway_switch import (
    GREEN_SERVICE_OF,
    SWITCH_ROUTE,
    RouteSwitch,
    green_service_manifest,
    green_service_problems,
    recorded_route,
    route_annotation,
    routed_service,
    switch_route_problems,
    switched_rules,
)
from prefect_greenlight.tasks.decisions.plan import PlanFacts
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import BlueGreenSpec, Cleanup, Deadlines, parse_spec
from tests.unit.builders import container, deployment, manifest, record_annotations, service

NS = "default"
BASE = {"service": "web", "image": "web:2", "traffic": "gateway", "gateway": {"route": "web-route"}}
BLUE_SEL, GREEN_SEL = {"color": "blue"}, {"color": "green"}


def spec(**fields) -> BlueGreenSpec:
    return parse_spec(BlueGreenSpec, {**BASE, **fields}, source="test")


def bad(message: str, **fields) -> None:
    with pytest.raises(BadInput) as err:
        parse_spec(BlueGreenSpec, {**BASE, **fields}, source="test")
    assert message in str(err.value), str(err.value)


# --- the spec -----------------------------------------------------------------------------------------------------

def test_the_gateway_block_defaults_rule_0_and_green_service_name():
    s = spec()
    assert s.traffic.value == "gateway" and s.gateway.rule == 0 and s.green_service == "web-next"
    assert spec(gateway={"route": "r", "rule": 2, "green_service": "web-g"}).green_service == "web-g"


def test_the_selector_switch_stays_the_default():
    plain = parse_spec(BlueGreenSpec, {"service": "web", "image": "web:2"})
    assert plain.traffic.value == "selector" and plain.gateway is None and plain.green_service is None


@pytest.mark.parametrize("fields, message", [
    ({"traffic": "selector"}, "a `gateway` block needs `traffic: gateway`"),
    ({"gateway": None}, "traffic: gateway needs a `gateway` block"),
    ({"gateway": {"route": "r", "green_service": "web"}}, "must differ from service"),
    ({"preview_service": "web-next"}, "must differ from service and preview_service"),
    ({"gateway": {"route": "r", "rule": -1}}, "rule"),
    ({"gateway": {"route": "Not_A_Name"}}, "route"),
    ({"gateway": {"route": "r", "weight": 3}}, "weight"),
    ({"traffic": "weights"}, "traffic"),
])
def test_bad_combinations_are_bad_input_naming_the_problem(fields, message):
    bad(message, **fields)


# --- the route's rules ----------------------------------------------------------------------------------------------

def rules(first: str = "web") -> list[dict]:
    return [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
             "backendRefs": [{"group": "", "kind": "Service", "name": first, "port": 80, "weight": 1}]},
            {"backendRefs": [{"name": "other", "port": 8080}]}]


def test_the_switch_renames_only_the_rules_backend_ref_keeping_its_fields():
    out = switched_rules(rules(), 0, NS, "web", "web-next")
    assert out[0]["backendRefs"] == [{"group": "", "kind": "Service", "name": "web-next", "port": 80, "weight": 1}]
    assert out[0]["matches"] == rules()[0]["matches"] and out[1] == rules()[1]


def test_a_second_switch_changes_nothing_and_the_reverse_restores_the_rules():
    once = switched_rules(rules(), 0, NS, "web", "web-next")
    assert switched_rules(once, 0, NS, "web", "web-next") == once
    assert switched_rules(once, 0, NS, "web-next", "web") == rules()
    assert switched_rules(rules(), 0, NS, "web-next", "web") == rules()  # already home: nothing to send


def test_a_rule_missing_or_naming_neither_service_is_refused():
    with pytest.raises(ValueError, match="rule 4 does not exist"):
        switched_rules(rules(), 4, NS, "web", "web-next")
    with pytest.raises(ValueError, match="no backendRef to Service 'web' nor 'web-next'"):
        switched_rules(rules(), 1, NS, "web", "web-next")


def test_the_routed_service_is_whichever_candidate_the_rule_names():
    assert routed_service(rules(), 0, NS, ("web", "web-next")) == "web"
    assert routed_service(rules("web-next"), 0, NS, ("web", "web-next")) == "web-next"
    assert routed_service(rules(), 1, NS, ("web", "web-next")) is None
    assert routed_service(rules(), 7, NS, ("web",)) is None


# --- preflight --------------------------------------------------------------------------------------------------------

def route(first: str = "web", accepted: str = "True") -> dict:
    conds = [{"type": "Accepted", "status": accepted, "observedGeneration": 1},
             {"type": "ResolvedRefs", "status": "True", "observedGeneration": 1}]
    return {"metadata": {"name": "web-route", "namespace": NS, "generation": 1},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": rules(first)},
            "status": {"parents": [{"parentRef": {"name": "gw"}, "conditions": conds}]}}


def test_preflight_accepts_the_route_on_the_service_or_mid_switch_on_greens():
    assert switch_route_problems(route(), 0, "web", "web-next", {}) == []
    assert switch_route_problems(route("web-next"), 0, "web", "web-next", {}) == []


def test_preflight_refuses_a_rule_not_referencing_the_service_or_a_route_not_accepted():
    assert "does not reference the Service 'web'" in switch_route_problems(route(), 1, "web", "web-next", {})[0]
    assert "rule 3 does not exist" in switch_route_problems(route(), 3, "web", "web-next", {})[0]
    refused = switch_route_problems(route(accepted="False"), 0, "web", "web-next", {})
    assert refused and "no parent Gateway has accepted it" in refused[0]
    two = route()
    two["spec"]["rules"][0]["backendRefs"].append({"name": "other", "port": 80})
    assert "sends to 2 backends" in switch_route_problems(two, 0, "web", "web-next", {})[0]


def test_green_service_copies_the_ports_and_selects_green():
    made = green_service_manifest(service("web", BLUE_SEL), "web-next", GREEN_SEL)
    assert made["spec"]["selector"] == GREEN_SEL and made["spec"]["ports"][0]["port"] == 80
    assert made["metadata"]["annotations"] == {GREEN_SERVICE_OF: "web"}
    assert made["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "greenlight"}


def test_an_existing_green_service_must_be_greenlights_and_select_green_when_routed():
    ours = service("web-next", BLUE_SEL, annotations={GREEN_SERVICE_OF: "web"})
    assert green_service_problems(None, "web", False, GREEN_SEL) == []
    assert green_service_problems(ours, "web", False, GREEN_SEL) == []  # re-pointed by the step
    assert "selects {'color': 'blue'}, not green's" in green_service_problems(ours, "web", True, GREEN_SEL)[0]
    theirs = service("web-next", GREEN_SEL)
    assert "is not greenlight's green Service of 'web'" in green_service_problems(theirs, "web", False, GREEN_SEL)[0]


# --- the steps and the plan -------------------------------------------------------------------------------------------

def release(already_live: bool = False) -> BlueGreenPreflight:
    s = spec()
    green = manifest("web-green", GREEN_SEL, replicas=3, containers=[container(image="web:2")])
    colors = ColorPlan("web", "web-blue", "web-green", ("color",), BLUE_SEL, GREEN_SEL, already_live)
    rs = RouteSwitch("web-route", 0, "web", "web-next", green_service_manifest(service("web", BLUE_SEL),
                                                                                "web-next", GREEN_SEL))
    return BlueGreenPreflight(spec=s, release_id="r1", colors=colors, green_manifest=green, green_existed=False,
                              green_replicas_before=0, blue_replicas=3, blue_image="web:1", route=rs)


def test_the_route_moves_around_the_selector_switch_and_each_undoes():
    steps = {s.name: s for s in blue_green_steps(release())}
    assert list(steps) == ["apply", "wait-ready", "smoke-test", "approval", "route-switch", "switch",
                           "verify-endpoints", "route-back", "post-switch", "cleanup"]
    assert steps["route-switch"].undo is not None and steps["route-back"].undo is not None
    assert steps["route-switch"].undo_name == "HTTPRoute web-route back to Service web"
    assert steps["route-back"].undo_name == "HTTPRoute web-route back to Service web-next"


def test_a_rerun_after_the_selector_switch_resumes_with_the_route_back():
    names = [s.name for s in blue_green_steps(release(already_live=True))]
    assert names == ["wait-ready", "verify-endpoints", "route-back", "post-switch", "cleanup"]


def test_the_selector_blue_green_has_no_route_steps():
    plain = dataclasses.replace(release(), route=None)
    assert "route-switch" not in [s.name for s in blue_green_steps(plain)]


def test_the_plan_describes_the_route_switch_and_its_gate():
    plan = blue_green_plan(release(), service("web", BLUE_SEL), None, PlanFacts())
    step = next(s for s in plan.steps if s.name == "route-switch")
    assert "backendRef web -> web-next" in step.change and "selector {'color': 'green'}" in step.change
    assert "Accepted and ResolvedRefs" in step.gate and "only web-green's pods, 3 ready" in step.gate
    back = next(s for s in plan.steps if s.name == "route-back")
    assert "backendRef web-next -> web" in back.change and "delete Service web-next" in back.change


# --- `greenlight rollback` through the recorded route -------------------------------------------------------------------

def test_the_switch_records_the_route_and_the_plan_shows_it_in_the_patch():
    ops = switch_ops(release(), service("web", BLUE_SEL))
    record = next(o for o in ops if o["path"] == "/metadata/annotations")["value"]
    assert json.loads(record[SWITCH_ROUTE]) == {"route": "web-route", "rule": 0, "green_service": "web-next"}
    plain = switch_ops(dataclasses.replace(release(), route=None), service("web", BLUE_SEL))
    assert SWITCH_ROUTE not in next(o for o in plain if o["path"] == "/metadata/annotations")["value"]


def test_the_recorded_route_gives_a_temporary_service_selecting_the_rollback_target():
    rs = release().route
    svc = service("web", GREEN_SEL, annotations={SWITCH_ROUTE: route_annotation(rs)})
    back = recorded_route(svc, BLUE_SEL)
    assert (back.route, back.rule, back.service, back.green_service) == ("web-route", 0, "web", "web-next")
    assert back.create["spec"]["selector"] == BLUE_SEL
    assert recorded_route(service("web", GREEN_SEL), BLUE_SEL) is None
    assert recorded_route(service("web", GREEN_SEL, annotations={SWITCH_ROUTE: "{not json"}), BLUE_SEL) is None
    assert recorded_route(service("web", GREEN_SEL, annotations={SWITCH_ROUTE: '{"route": "r"}'}), BLUE_SEL) is None


def test_the_rollback_goes_through_the_route_only_when_one_is_recorded():
    names = [s.name for s in rollback_steps(route=True)]
    assert names == ["restore", "wait-ready", "route-switch", "switch", "verify-endpoints", "route-back",
                     "autoscaler", "cleanup"]
    assert "route-switch" not in [s.name for s in rollback_steps()]


def test_the_rollback_plan_describes_both_route_moves_not_undone():
    rs = recorded_route(service("web", GREEN_SEL, annotations={SWITCH_ROUTE: route_annotation(release().route)}),
                        BLUE_SEL)
    svc = service("web", GREEN_SEL, annotations={**record_annotations("web-green", "web-blue", BLUE_SEL),
                                                 SWITCH_ROUTE: route_annotation(rs)})
    facts = RollbackFacts(svc, read_record(svc), deployment("web-blue", BLUE_SEL, replicas=3),
                          deployment("web-green", GREEN_SEL, replicas=3), 3, "rb1", route=rs)
    plan = rollback_plan(facts, Cleanup(), Deadlines(), False, PlanFacts())
    steps = {s.name: s for s in plan.steps}
    assert "backendRef web -> web-next" in steps["route-switch"].change
    assert "selector {'color': 'blue'}" in steps["route-switch"].change
    assert "backendRef web-next -> web" in steps["route-back"].change
    assert steps["route-switch"].undo.startswith("not undone") and steps["route-back"].undo.startswith("not undone")


def test_a_rerun_finding_the_route_mid_switch_first_moves_it_home():
    mid = release()
    mid = dataclasses.replace(mid, route=dataclasses.replace(mid.route, on_green_service=True))
    names = [s.name for s in blue_green_steps(mid)]
    assert names[:2] == ["route-home", "apply"] and names.count("route-switch") == 1
    plan = blue_green_plan(mid, service("web", BLUE_SEL), None, PlanFacts())
    home = next(s for s in plan.steps if s.name == "route-home")
    assert "back from web-next to web (which selects web-blue)" in home.change
    live = dataclasses.replace(mid, colors=dataclasses.replace(mid.colors, already_live=True))
    assert "route-home" not in [s.name for s in blue_green_steps(live)]  # resumed: route-back takes it home
