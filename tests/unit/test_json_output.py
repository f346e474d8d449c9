"""The `--json` output's JSON Schema (docs/schema/output.schema.json, published as the reference page "--json
output") validates what the commands really print: the flows' and readers' result dicts, built here by the same
functions the CLI prints (release_result, the canary's progress, the rollback's and abort's results, status,
history, a pipeline's end), serialised as `_print` does. The e2e tests validate the CLI's own output too
(tests/e2e/json_schema.py)."""

from __future__ import annotations

import json
from dataclasses import asdict
from types import SimpleNamespace

import jsonschema
import pytest

from prefect_greenlight.cli import status as status_cli
from prefect_greenlight.flows.canary_abort import _aborted
from prefect_greenlight.tasks.bluegreen.dry_run import release_result, rollback_result
from prefect_greenlight.tasks.canary.preflight import CanaryPreflight
from prefect_greenlight.tasks.canary.progress import CanaryProgress
from prefect_greenlight.tasks.decisions.canary import step_plan
from prefect_greenlight.tasks.decisions.history import HISTORY, HistoryEntry, append
from prefect_greenlight.tasks.decisions.plan import deployment_changes
from prefect_greenlight.tasks.record.plan_render import plan_text
from prefect_greenlight.tasks.record.report import Timeline
from prefect_greenlight.tasks.spec.canary import CanarySpec
from tests.json_schema import SCHEMA, assert_output, check_cli_json, command_of, validator
from tests.unit.builders import container, deployment, manifest, record_annotations, service
from tests.unit.test_pipeline_engine import FakeChildren, no_prefect, run  # noqa: F401 - no_prefect: a fixture
from tests.unit.test_plan import BLUE_SEL, GREEN_SEL, _plan, _release, _rollback


def printed(result) -> object:
    """What `--json` prints: json.dumps(..., default=str), read back."""
    return json.loads(json.dumps(result, indent=2, sort_keys=True, default=str))


def timeline(*names: str, failed: str = "") -> Timeline:
    t = Timeline()
    for name in names:
        try:
            with t.step(name) as step:
                step["detail"] = f"{name} done"
                if name == failed:
                    raise RuntimeError(f"{name} failed")
        except RuntimeError:
            pass
    return t


def test_the_schema_is_valid_and_versioned():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["version"] == "1" and SCHEMA["$id"].endswith("/1")
    assert set(SCHEMA["x-commands"].values()) <= set(SCHEMA["$defs"])


def test_a_blue_green_release_and_its_dry_run():
    release = _release()
    steps = timeline("preflight", "apply", "wait-ready", "smoke-test", "switch", "verify-endpoints", "cleanup")
    assert_output("blue-green", printed(release_result(release, steps, "released", "green-dep")))
    plan = _plan(release)
    dry = release_result(release, Timeline(), "dry-run", "blue-dep", plan=plan.as_dict(), plan_text=plan_text(plan),
                         summary=release.summary())  # what the dry run prints: preflight's own summary
    assert_output("blue-green", printed(dry))


def _canary_preflight(total: int = 4) -> CanaryPreflight:
    spec = CanarySpec(service="my-app-service", stable="my-app-v1", image="my-app:2", steps=[25, 50, 100])
    stable = deployment("my-app-v1", {"app": "my-app"}, replicas=total)
    canary = manifest("my-app-v1-canary", {"app": "my-app", "greenlight.io/track": "canary"}, replicas=1,
                      containers=[container(image="my-app:2")])
    return CanaryPreflight(spec=spec, release_id="c1", canary="my-app-v1-canary", canary_manifest=canary,
                           canary_existed=False, total=total, steps=tuple(step_plan(total, spec.steps)),
                           stable_image="nginx:1.25", service_ports=({"port": 80, "targetPort": 80},),
                           canary_changes=deployment_changes(stable, canary))


def test_a_canary_release():
    progress = CanaryProgress.start(_canary_preflight(), "run-1")
    for want in progress.plan.steps:
        progress.moved(want, want.canary, want.stable)
    progress.analyses.append({"step": "25 %", "provider": "http", "outcome": "Successful", "message": "3 of 3"})
    result = progress.result("released", timeline("preflight", "step-25", "analysis-25", "cleanup"), [])
    assert_output("canary", printed(result))


def test_a_rollback_its_dry_run_and_an_abort():
    rb = SimpleNamespace(service="production-svc", namespace="default", release_id="rb1")
    assert_output("rollback", printed(rollback_result(rb, timeline("read-record", "switch"), "rolled-back",
                                                      "blue-dep", previous_deployment="green-dep")))
    plan = _rollback(0)
    assert_output("rollback", printed(rollback_result(rb, Timeline(), "dry-run", "green-dep",
                                                      previous_deployment="blue-dep", plan=plan.as_dict(),
                                                      plan_text=plan_text(plan))))
    abort = SimpleNamespace(service="my-app-service", namespace="default", stable="my-app-v1")
    assert_output("abort", printed(_aborted(abort, "stable back to 4, canary to 0")))


def _cluster(monkeypatch, svc: dict, objects: dict[str, list[dict]]) -> None:
    monkeypatch.setattr(status_cli, "read", lambda kube, kind, ns, name: svc if kind == "Service" else None)
    monkeypatch.setattr(status_cli, "list_objects", lambda kube, kind, ns, *a, **k: objects.get(kind, []))


def test_status_and_history_read_from_the_service(monkeypatch):
    entry = HistoryEntry(release_id="r1", strategy="blue-green", outcome="released", from_deployment="blue-dep",
                         to_deployment="green-dep", images=["app:2"], seconds=4.2)
    ann = {**record_annotations("green-dep", "blue-dep", BLUE_SEL), HISTORY: append([], entry)}
    svc = service("production-svc", GREEN_SEL, annotations=ann)
    _cluster(monkeypatch, svc, {"Deployment": [deployment("blue-dep", BLUE_SEL, replicas=0),
                                               deployment("green-dep", GREEN_SEL, replicas=3)]})
    status = status_cli.service_status(None, "default", "production-svc")
    assert status["live_deployment"] == "green-dep", status
    assert_output("status", printed(status))
    history = status_cli.release_history(None, "default", "production-svc")
    assert history and history[-1]["release_id"] == "r1"
    assert_output("history", printed(history))
    assert_output("history", printed([asdict(entry)]))


def test_a_pipeline_run():
    _, _, result = run(FakeChildren())
    assert result["outcome"] == "completed"
    assert_output("pipeline run", printed(result))


@pytest.mark.parametrize("broken", [
    {"service": "s"},  # no outcome, no steps
    {"outcome": "released", "service": "s", "namespace": "n", "release_id": "r", "live_deployment": "g",
     "blue": "b", "green": "g", "steps": [{"step": "switch", "seconds": 0.1, "detail": ""}]},  # a step without ok
    {"outcome": "switched", "service": "s", "namespace": "n", "release_id": "r", "live_deployment": "g",
     "blue": "b", "green": "g", "steps": []},  # an outcome the schema does not know
])
def test_the_schema_rejects_what_a_script_could_not_rely_on(broken):
    assert list(validator("blue_green").iter_errors(broken)), f"accepted: {broken}"


def test_the_e2e_helpers_check_what_the_cli_printed():
    ok = {"outcome": "rolled-back", "service": "s", "namespace": "n", "live_deployment": "blue-dep",
          "release_id": "r", "steps": []}
    check_cli_json(["rollback", "-n", "n", "--service", "s", "--json"], json.dumps(ok, indent=2) + "\ndone\n")
    check_cli_json(["rollback", "--service", "s", "--json"], "")  # a failure prints no document
    check_cli_json(["rollback", "--service", "s"], "rolled-back: Service s -> blue-dep\n")  # no --json
    assert command_of(["pipeline", "status", "pl-1", "--json"]) == "pipeline status"
    assert command_of(["approve", "RUN"]) is None
    with pytest.raises(AssertionError, match="live_deployment"):
        check_cli_json(["rollback", "--json"], json.dumps({k: v for k, v in ok.items() if k != "live_deployment"}))
