"""The canary by HTTPRoute weights through the release engine: the step list (weights, `scale-`/`match-` steps,
the promotion as the clean-up), each change asked for the state preflight decided with the canary's pods as the
run knows them, the progress record, the abort (route back first) on any failure, and the plan's lines."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.canary import gateway_steps
from prefect_greenlight.tasks.canary import progress as canary_progress
from prefect_greenlight.tasks.canary import strategy as canary
from prefect_greenlight.tasks.canary.gateway_preflight import weight_counts
from prefect_greenlight.tasks.canary.preflight import CanaryPreflight
from prefect_greenlight.tasks.decisions.describe_gateway import GatewayPlan
from prefect_greenlight.tasks.decisions.gateway import gateway_states
from prefect_greenlight.tasks.decisions.pause import Decision
from prefect_greenlight.tasks.decisions.plan import PlanFacts, deployment_changes
from prefect_greenlight.tasks.engine.executor import execute
from prefect_greenlight.tasks.errors import ReleaseFailed
from prefect_greenlight.tasks.spec.canary import CanarySpec
from tests.unit.builders import container, deployment, manifest
from tests.unit.test_engine import failing_at, names, no_prefect_run, release  # noqa: F401 - fixture

STEPS = [{"set_weight": 0}, {"match": [{"header": "X-Canary", "value": "always"}]}, {"pause": {"duration_s": 1}},
         {"set_weight": 5}, {"set_canary_scale": {"replicas": 2}}, {"set_weight": 50}, {"match": []}]


def gateway_plan(steps: list | None = None, stable: int = 4) -> CanaryPreflight:
    spec = CanarySpec(service="web", stable="web-v1", image="web:2", traffic="gateway", gateway={"route": "web"},
                      steps=steps or STEPS, analysis={"http": None})
    canary_ = manifest("web-v1-canary", {"app": "web", "greenlight.io/track": "canary"}, replicas=1,
                       containers=[container(image="web:2")])
    g = GatewayPlan("web", 0, "web", "web-canary", stable, gateway_states(spec.step_list(), stable))
    return CanaryPreflight(spec=spec, release_id="g1", canary="web-v1-canary", canary_manifest=canary_,
                           canary_existed=False, total=stable, steps=weight_counts(spec, g), stable_image="web:1",
                           canary_changes=deployment_changes(deployment("web-v1", {"app": "web"}), canary_),
                           gateway=g)


@pytest.fixture
def fake_gateway(monkeypatch):
    seen = {"changes": [], "promoted": 0, "aborted": 0, "records": []}

    def change(kube, p, current_pods, want):
        seen["changes"].append((current_pods, want.weight, want.canary_pods, len(want.matches)))
        return want.describe()

    monkeypatch.setattr(gateway_steps, "change", change)
    monkeypatch.setattr(gateway_steps, "promote", lambda kube, p: seen.__setitem__("promoted", 1) or "promoted")
    monkeypatch.setattr(gateway_steps, "abort", lambda kube, p: seen.__setitem__("aborted", 1) or "aborted")
    monkeypatch.setattr(canary, "pause_for_decision", lambda *a: Decision(True, "", "t", "human"))
    monkeypatch.setattr(canary, "endpoint_counts", lambda *a: None)
    monkeypatch.setattr(canary_progress, "record_progress",
                        lambda kube, ns, svc, **f: seen["records"].append((f["step"], f["state"], f["weight"])))
    return seen


def test_the_steps_are_the_written_list_and_end_in_the_promotion(fake_gateway):
    p = gateway_plan()
    r = release(canary=canary_progress.CanaryProgress.start(p, "run"))
    execute(canary.canary_steps(p), r, canary.canary_ending(None, p, r.journal, r.hooks, r.handed_on["canary"]),
            begin=canary.start_record)
    assert names(r) == ["step-0", "match-0", "pause-0", "step-5", "scale-5", "step-50", "match-50", "step-100",
                        "cleanup"]
    assert fake_gateway["changes"] == [(0, 0, 1, 0), (1, 0, 1, 1), (1, 5, 1, 1), (1, 5, 2, 1), (2, 50, 2, 1),
                                       (2, 50, 2, 0), (2, 100, 4, 0)]
    assert fake_gateway["promoted"] == 1 and fake_gateway["aborted"] == 0
    assert fake_gateway["records"][-1] == ("4/4", "promoted", "4/4")
    assert ("2/4", "passed", "2/4") in fake_gateway["records"]


def test_any_failure_aborts_through_the_route_once(fake_gateway):
    p = gateway_plan()
    steps = canary.canary_steps(p)
    assert [s.undo_name for s in steps if s.undo] == ["abort: HTTPRoute web back to web 100 %, verified, then "
                                                      "web-v1-canary to 0"]
    r = release(canary=canary_progress.CanaryProgress.start(p, "run"))
    with pytest.raises(ReleaseFailed, match="during steps"):
        execute(failing_at(steps, 4), r, canary.canary_ending(None, p, r.journal, r.hooks, r.handed_on["canary"]))
    assert fake_gateway["aborted"] == 1 and fake_gateway["promoted"] == 0


def test_the_plan_shows_each_steps_weights_matches_and_pods():
    plan = canary.canary_plan(gateway_plan(), PlanFacts())
    by_name = {s.name: s for s in plan.steps}
    assert "web 100 / web-canary 0; match rule (canary only): header X-Canary = always" in by_name["match-0"].change
    assert by_name["scale-5"].change.startswith("web-v1-canary 1 -> 2 pod(s), ready; then HTTPRoute web rule 0: "
                                                "web 95 / web-canary 5")
    assert by_name["cleanup"].change.startswith("promote: web-v1 takes web-v1-canary's pod template")


def test_the_plans_preflight_lists_the_route_and_the_state_after_every_step():
    details = canary.canary_plan(gateway_plan(), PlanFacts()).steps[0].details
    assert "HTTPRoute web rule 0: Service web (stable) and web-canary (canary)" in details
    assert "after set_canary_scale: 2 canary pod(s): route 95/5 stable/canary; header X-Canary = always -> " \
           "canary; 2 canary pod(s)" in details
    assert details[-1] == "after set_weight 100: route 0/100 stable/canary; 4 canary pod(s)"


def test_a_released_gateway_canary_is_served_by_the_promoted_stable():
    from prefect_greenlight.tasks.record.report import Timeline
    p = gateway_plan()
    result = canary_progress.CanaryProgress.start(p, "run").result("released", Timeline(), [])
    assert result["live_deployment"] == "web-v1"


def test_the_dry_runs_summary_carries_the_states():
    summary = gateway_plan().summary()["gateway"]
    assert summary["route"] == "web" and summary["stable_replicas"] == 4
    assert summary["states"][1] == {"step": "match: header X-Canary = always", "weight": 0, "canary_pods": 1,
                                    "matches": ["header X-Canary = always"]}


@pytest.fixture
def calls(monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(gateway_steps, "ensure_service", lambda kube, ns, m: seen.append("service") or "made")
    monkeypatch.setattr(gateway_steps, "set_route", lambda kube, ns, name, rule, stable, canary, state, t, say:
                        seen.append(f"route {state.weight}/{len(state.matches)}") or "routed")
    monkeypatch.setattr(gateway_steps, "_canary_at", lambda kube, p, pods: seen.append(f"pods {pods}") or "ready")
    monkeypatch.setattr(gateway_steps, "verify_backends", lambda kube, ns, services, t, say:
                        seen.append("verify " + ",".join(f"{s}={n}" for s, _, n in services)) or "ok")
    monkeypatch.setattr(gateway_steps, "read_route", lambda kube, ns, name: {"metadata": {}})
    monkeypatch.setattr(gateway_steps, "restore_stable", lambda *a: seen.append("restore-stable") or "restored")
    monkeypatch.setattr(gateway_steps, "read", lambda kube, kind, ns, name: {"spec": {"template": {"spec": {}}}})
    monkeypatch.setattr(gateway_steps, "json_patch", lambda kube, kind, ns, name, ops: seen.append(
        f"patch {name} {ops[0]['path']}"))
    monkeypatch.setattr(gateway_steps, "require_ready", lambda *a, **k: seen.append("stable ready") or "ready")
    return seen


def test_pods_rise_before_the_route_and_fall_after_it_then_both_services_verified(calls):
    p = gateway_plan()
    _, up = gateway_steps.state_at(p, 2, -1)  # step-50: 2 pods (set_canary_scale) at 50 %
    gateway_steps.change(None, p, 1, up)
    assert calls == ["pods 2", "route 50/1", "verify web=4,web-canary=2"]
    calls.clear()
    gateway_steps.change(None, p, 4, up)
    assert calls == ["route 50/1", "pods 2", "verify web=4,web-canary=2"]


def test_the_abort_routes_back_before_any_canary_pod_goes_and_the_promotion_after_stable_is_ready(calls):
    p = gateway_plan()
    gateway_steps.abort(None, p)
    assert calls == ["route 0/0", "restore-stable"]
    calls.clear()
    gateway_steps.promote(None, p)
    assert calls == ["patch web-v1 /spec/template/spec", "stable ready", "route 0/0", "pods 0", "verify web=4"]
