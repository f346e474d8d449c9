"""The release plan (`--dry-run`): pure, from a BlueGreenPreflight as preflight decides it plus the facts it read."""

from __future__ import annotations

import json

from prefect_greenlight.tasks.bluegreen.preflight import BlueGreenPreflight
from prefect_greenlight.tasks.bluegreen.strategy import blue_green_plan
from prefect_greenlight.tasks.decisions.colors import ColorPlan
from prefect_greenlight.tasks.decisions.plan import PlanFacts, StepKind, deployment_changes, lease_fact
from prefect_greenlight.tasks.record.plan_render import plan_markdown, plan_text
from prefect_greenlight.tasks.spec import BlueGreenSpec
from tests.unit.builders import container, deployment, lease, manifest, service

BLUE_SEL, GREEN_SEL = {"target": "blue-dep"}, {"target": "green-dep"}


def _release(spec: dict | None = None, *, already_live: bool = False, hpa: dict | None = None,
             green_existed: bool = False) -> BlueGreenPreflight:
    spec_ = BlueGreenSpec(**{"service": "production-svc", "image": "scubakiz/servicedemo:2.0", **(spec or {})})
    green = manifest("green-dep", GREEN_SEL, replicas=3, containers=[
        container(image="scubakiz/servicedemo:2.0", ports=[{"containerPort": 8080, "name": "http"}])])
    blue = deployment("blue-dep", BLUE_SEL)
    colors = ColorPlan("production-svc", "blue-dep", "green-dep", ("target",), BLUE_SEL, GREEN_SEL, already_live)
    return BlueGreenPreflight(spec=spec_, release_id="r1", colors=colors, green_manifest=green,
                       green_existed=green_existed, green_replicas_before=2 if green_existed else 0, blue_replicas=3,
                       blue_image="nginx:1.25", service_ports=({"port": 80, "targetPort": "http"},), blue_hpa=hpa,
                       green_changes=deployment_changes(blue, green))


def _plan(release: BlueGreenPreflight, facts: PlanFacts | None = None):
    return blue_green_plan(release, service("production-svc", BLUE_SEL), None, facts or PlanFacts())


def test_steps_are_the_flows_in_its_order_under_its_timeline_names():
    assert _plan(_release()).step_names() == ["preflight", "apply", "wait-ready", "smoke-test", "approval", "switch",
                                              "verify-endpoints", "post-switch", "cleanup"]


def test_optional_steps_appear_where_the_flow_runs_them():
    hpa = {"metadata": {"name": "blue-hpa"}}
    names = _plan(_release({"preview_service": "staging-svc"}, hpa=hpa)).step_names()
    assert names == ["preflight", "apply", "wait-ready", "preview", "smoke-test", "approval", "autoscaler", "switch",
                     "verify-endpoints", "post-switch", "cleanup"]


def test_a_rerun_after_the_switch_plans_the_resume():
    assert _plan(_release(already_live=True)).step_names() == [
        "preflight", "wait-ready", "verify-endpoints", "post-switch", "cleanup"]


def test_apply_shows_the_fields_that_differ_from_blue_and_its_undo():
    apply = _plan(_release()).steps[1]
    assert apply.kind is StepKind.CHANGE and apply.touches == "Deployment green-dep"
    assert "spec.template.spec.containers[app].image: 'nginx:1.25' -> 'scubakiz/servicedemo:2.0'" in apply.details
    assert "metadata.name: 'blue-dep' -> 'green-dep'" in apply.details
    assert not any("status" in d or "resourceVersion" in d or "revision" in d for d in apply.details)
    assert apply.undo.startswith("delete green-dep (on_failure: delete)")
    existed = _plan(_release(green_existed=True)).steps[1]
    assert existed.undo.startswith("scale green-dep back to its 2 replica(s)")


def test_switch_is_the_guarded_json_patch_the_switch_sends():
    switch = _plan(_release()).steps[5]
    ops = list(switch.patch)
    assert ops[0] == {"op": "test", "path": "/spec/selector/target", "value": "blue-dep"}
    assert ops[1] == {"op": "replace", "path": "/spec/selector/target", "value": "green-dep"}
    assert ops[2]["path"] == "/metadata/annotations" and ops[2]["value"]["greenlight.io/previous-replicas"] == "3"
    assert "1 test op(s)" in switch.gate and "422" in switch.gate
    assert "back to blue-dep" in switch.undo


def test_smoke_gate_names_the_resolved_port_and_path():
    smoke = _plan(_release({"smoke": [{"path": "/health", "pods": 2, "body_contains": "ok"}]})).steps[3]
    assert smoke.details == (("GET :8080/health on 2 of 3 pod(s) through port-forward, expect HTTP 200, body "
                              "contains 'ok'; 3 attempt(s) 1 s apart, 5 s timeout"),)
    none = _plan(_release({"smoke": []})).steps[3]
    assert none.gate == "none (no smoke checks configured)" and not none.details


def test_approval_and_cleanup_say_what_and_when():
    plan = _plan(_release({"approval": {"mode": "manual", "timeout_s": 600},
                           "cleanup": {"mode": "delete", "delay_s": 45}}))
    approval, cleanup = plan.steps[4], plan.steps[-1]
    assert "no answer within 600 s counts as a rejection" in approval.gate
    assert cleanup.change.startswith("record blue-dep's manifest on Service production-svc, then delete blue-dep")
    assert cleanup.when == "45 s (scale-down delay) after the EndpointSlices are verified"
    assert any(o.get("value", {}).get("greenlight.io/approval") for o in plan.steps[5].patch
               if isinstance(o.get("value"), dict))


def test_text_markdown_and_json_show_the_same_numbered_steps():
    plan = _plan(_release(), PlanFacts(permissions=("get services",), lease="free", autoscalers=("x",),
                                       warnings=("w1",)))
    text, md, data = plan_text(plan), plan_markdown(plan), json.loads(json.dumps(plan.as_dict()))
    for i, name in enumerate(plan.step_names(), 1):
        assert f"{i:>2}. {name}" in text and f"| {i} | `{name}` |" in md
    assert [s["step"] for s in data["steps"]] == plan.step_names() == data["step_names"]
    assert [s["number"] for s in data["steps"]] == list(range(1, 10))
    assert "permissions checked (1, all granted): get services" in text and "warning: w1" in text
    assert data["facts"] == {"permissions_checked": ["get services"], "lease": "free", "lease_free": True,
                             "autoscalers": ["x"], "warnings": ["w1"], "hooks": []}


def test_the_release_policy_shows_in_the_plans_facts_when_it_was_read():
    said = "the release would be refused: Service default/web is in freeze 'year-end' until 2027-01-04"
    plan = _plan(_release(), PlanFacts(policy=said))
    assert f"  release policy: {said}" in plan_text(plan) and f"- release policy: {said}" in plan_markdown(plan)
    assert plan.as_dict()["facts"]["policy"] == said
    assert "policy" not in _plan(_release(), PlanFacts()).as_dict()["facts"], "not read: not claimed"


def test_deployment_changes_ignore_server_fields_and_key_containers_by_name():
    blue = deployment("a", BLUE_SEL, containers=[container("app", "x:1"), container("side", "s:1")])
    green = deployment("a", BLUE_SEL, containers=[container("side", "s:1"), container("app", "x:2")],
                       generation=7, revision="9")
    changes = deployment_changes(blue, green)
    assert [c.describe() for c in changes] == ["spec.template.spec.containers[app].image: 'x:1' -> 'x:2'"]


def test_lease_fact_judges_the_lease_as_the_lock_does():
    assert lease_fact(None, 1000.0) == ("free (no Lease yet: the release creates it)", True)
    text, free = lease_fact(lease("r9@host/1", renew=995.0), 1000.0)
    assert not free and text.startswith("held by r9@host/1 for 12 s more")
    text, free = lease_fact(lease("r9@host/1", renew=900.0), 1000.0)
    assert free and "last held by r9@host/1, expired" in text


# -- rollback -------------------------------------------------------------------------------------------------
def _rollback(target_replicas: int | None, cleanup: dict | None = None, hpa: dict | None = None):
    from prefect_greenlight.tasks.bluegreen.rollback_strategy import rollback_plan
    from prefect_greenlight.tasks.decisions.annotations import read_record
    from prefect_greenlight.tasks.decisions.describe_rollback import RollbackFacts
    from prefect_greenlight.tasks.spec import Cleanup, Deadlines
    from tests.unit.builders import record_annotations

    ann = record_annotations("green-dep", "blue-dep", BLUE_SEL)
    if hpa:
        ann["greenlight.io/previous-hpa"] = json.dumps(hpa)
    svc = service("production-svc", GREEN_SEL, annotations=ann)
    target = None if target_replicas is None else deployment("blue-dep", BLUE_SEL, replicas=target_replicas)
    facts = RollbackFacts(svc, read_record(svc), target, deployment("green-dep", GREEN_SEL, replicas=4), 3, "rb1")
    return rollback_plan(facts, Cleanup(**(cleanup or {})), Deadlines(), False, PlanFacts())


def test_rollback_plan_is_the_rollback_flows_steps():
    plan = _rollback(0)
    assert plan.step_names() == ["read-record", "restore", "wait-ready", "switch", "verify-endpoints", "autoscaler",
                                 "cleanup"]
    assert plan.steps[1].change == "scale blue-dep from 0 to 3"
    assert list(plan.steps[3].patch[:2]) == [{"op": "test", "path": "/spec/selector/target", "value": "green-dep"},
                                             {"op": "replace", "path": "/spec/selector/target", "value": "blue-dep"}]
    assert plan.steps[-1].change.endswith("scale green-dep from 4 to 0")


def test_rollback_plan_of_a_deleted_deployment_without_a_manifest_says_it_would_fail():
    assert "no manifest was recorded: the rollback would fail here" in _rollback(None).steps[1].change
    hpa = {"metadata": {"name": "blue-hpa"}, "spec": {"scaleTargetRef": {"name": "blue-dep"}}}
    plan = _rollback(3, {"mode": "keep"}, hpa)
    assert plan.steps[1].change == "blue-dep still has 3 replicas: nothing to do"
    assert plan.steps[5].change == "re-create HorizontalPodAutoscaler blue-hpa for blue-dep as recorded"
    assert plan.steps[-1].change == "keep green-dep"


# -- canary ---------------------------------------------------------------------------------------------------
def _canary(spec: dict | None = None, total: int = 10, hooks=None):
    from prefect_greenlight.tasks.canary.preflight import CanaryPreflight
    from prefect_greenlight.tasks.canary.strategy import canary_plan
    from prefect_greenlight.tasks.decisions.canary import step_plan
    from prefect_greenlight.tasks.decisions.describe_hooks import HookPlan
    from prefect_greenlight.tasks.spec.canary import CanarySpec

    spec_ = CanarySpec(**{"service": "my-app-service", "stable": "my-app-v1", "image": "my-app:2", **(spec or {})})
    stable = deployment("my-app-v1", {"app": "my-app"}, replicas=total)
    canary = manifest("my-app-v1-canary", {"app": "my-app", "greenlight.io/track": "canary"}, replicas=1,
                      containers=[container(image="my-app:2")])
    plan = CanaryPreflight(spec=spec_, release_id="c1", canary="my-app-v1-canary", canary_manifest=canary,
                      canary_existed=False, total=total, steps=tuple(step_plan(total, spec_.steps)),
                      stable_image="nginx:1.25", service_ports=({"port": 80, "targetPort": 80},),
                      canary_changes=deployment_changes(stable, canary))
    return canary_plan(plan, PlanFacts(), hooks or HookPlan())


def test_canary_plan_names_each_step_its_analysis_and_pause_as_the_flow_does():
    plan = _canary({"approve_steps": [30], "pause_s": 5, "steps": [10, 30, 100]})
    assert plan.step_names() == ["preflight", "step-10", "analysis-10", "pause-10", "step-30", "analysis-30",
                                 "pause-30", "step-100", "analysis-100", "cleanup"]
    assert "approval" in plan.steps[6].gate and "timed" in plan.steps[3].gate
    assert _canary({"analysis": {"http": None}}).step_names() == [
        "preflight", "step-10", "step-30", "step-50", "step-100", "cleanup"]


def test_canary_steps_carry_the_replica_counts_and_the_split_expected():
    steps = {s.name: s for s in _canary().steps}
    assert steps["step-10"].change.startswith("server-side apply: create my-app-v1-canary with 1 replica(s)")
    assert steps["step-10"].change.endswith("; then scale my-app-v1 10 -> 9")
    assert steps["step-30"].change == ("scale my-app-v1-canary 1 -> 3 and wait until ready; then scale my-app-v1 "
                                       "9 -> 7")
    assert "exactly 10 ready my-app-v1-canary / 0 ready my-app-v1" in steps["step-100"].gate
    assert steps["step-50"].undo.startswith("abort: my-app-v1 back to 10 and ready first")
    assert "success rate >= 0.95" in steps["analysis-10"].details[0]
    assert steps["analysis-10"].details[0].startswith("HTTP GET :80/, 5 request(s) to up to 3 pod(s)")
