"""The pipeline spec (tasks/spec/pipeline.py) and the pipeline's pure decisions (tasks/decisions/pipeline.py):
validation, target names and release ids, which targets a re-run skips, where it resumes, what a failure rolls
back in which order, history tags."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from prefect_greenlight.cli.pipeline import load_pipeline_spec
from prefect_greenlight.tasks.decisions.history import HistoryEntry, pipeline_of, pipeline_tags
from prefect_greenlight.tasks.decisions.pipeline import (
    ResumePoint,
    pipeline_outcome,
    resume_point,
    stage_table,
    target_done,
    to_roll_back,
)
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import BlueGreenSpec
from prefect_greenlight.tasks.spec.canary import CanarySpec
from prefect_greenlight.tasks.spec.pipeline import PipelineSpec, release_id, release_spec, target_name


def spec(**over) -> dict:
    data = {"image": "app:2", "stages": [
        {"name": "staging", "targets": [{"context": "staging", "service": "web"}]},
        {"name": "prod", "max_parallel": 2, "on_failure": "atomic",
         "targets": [{"context": "prod-a", "service": "web"}, {"context": "prod-b", "service": "web"}]}]}
    data.update(over)
    return data


def test_a_valid_pipeline_names_targets_after_their_contexts():
    p = PipelineSpec.model_validate(spec())
    assert [target_name(s, t) for s in p.stages for t in s.targets] == ["staging", "prod-a", "prod-b"]
    assert p.stages[1].max_parallel == 2 and p.stages[0].gate.mode.value == "auto"


def test_two_targets_in_one_context_are_named_after_their_services():
    p = PipelineSpec.model_validate(spec(stages=[{"name": "s", "targets": [
        {"context": "c", "service": "web"}, {"context": "c", "service": "api"}]}]))
    assert [target_name(p.stages[0], t) for t in p.stages[0].targets] == ["c-web", "c-api"]


@pytest.mark.parametrize("change, message", [
    (lambda d: d["stages"][1]["targets"].append({"context": "prod-a", "service": "web", "name": "x"}),
     "duplicate target: Service default/web in context prod-a is already target 'prod-a-web'"),
    (lambda d: d["stages"][1].update(targets=[]), "at least 1 item"),
    (lambda d: d.update(stages=[]), "at least 1 item"),
    (lambda d: d["stages"][1].update(name="staging"), "stage 'staging' appears twice"),
    (lambda d: d["stages"][1]["targets"][0].update(name="staging"), "target 'staging' appears twice"),
    (lambda d: d.pop("image"), "target 'staging': no image or manifest"),
    (lambda d: d["stages"][1]["targets"][0].update(strategy="canary"), "a finished canary cannot be rolled back"),
    (lambda d: d["stages"][0]["targets"][0].update(contex="staging"), "Extra inputs are not permitted"),
    (lambda d: d.update(pipeline_id="Has Spaces"), "String should match pattern"),
])
def test_bad_pipelines_are_refused_naming_the_problem(change, message):
    data = spec()
    change(data)
    with pytest.raises(ValidationError, match=message):
        PipelineSpec.model_validate(data)


def test_each_target_becomes_a_release_spec_with_a_stable_release_id():
    p = PipelineSpec.model_validate(spec(stages=[{"name": "s", "targets": [
        {"context": "c", "service": "web", "release": {"cleanup": {"delay_s": 3}}},
        {"context": "d", "service": "web", "strategy": "canary", "image": "app:3", "release": {"stable": "web-v1"}},
    ]}]))
    stage = p.stages[0]
    bg, canary = (release_spec(p, stage, t, "pl-1") for t in stage.targets)
    assert isinstance(bg, BlueGreenSpec) and bg.image == "app:2" and bg.cleanup.delay_s == 3
    assert isinstance(canary, CanarySpec) and canary.image == "app:3" and canary.stable == "web-v1"
    assert bg.release_id == release_id("pl-1", stage, stage.targets[0]) == release_spec(
        p, stage, stage.targets[0], "pl-1").release_id
    assert bg.release_id != canary.release_id and len(bg.release_id) <= 63


def test_a_bad_release_option_names_the_stage_target_and_field():
    p = PipelineSpec.model_validate(spec(stages=[{"name": "s", "targets": [
        {"context": "c", "service": "web", "release": {"cleanup": {"delay_s": -1}}}]}]))
    with pytest.raises(ValueError, match=r"stage s, target c: cleanup.delay_s"):
        release_spec(p, p.stages[0], p.stages[0].targets[0], "pl-1")


def entry(outcome="released", strategy="blue-green", pipeline="pl-1", stage="prod", target="prod-a"):
    return HistoryEntry(release_id="r", strategy=strategy, outcome=outcome, from_deployment="blue",
                        to_deployment="green", pipeline_id=pipeline, pipeline_stage=stage, pipeline_target=target)


@pytest.mark.parametrize("entries, done", [
    ([], False),
    ([entry()], True),
    ([entry(), entry(strategy="rollback", outcome="rolled-back")], False),  # rolled back since: release again
    ([entry(outcome="rolled-back")], False),
    ([entry(pipeline="pl-2")], False),
    ([entry(target="prod-b")], False),
    ([entry(pipeline="", stage="", target="")], False),  # a release by hand
    ([entry(), entry(pipeline="", stage="", target="")], False),  # someone released something else since
])
def test_a_target_is_done_when_its_newest_history_entry_is_this_pipelines_release(entries, done):
    assert target_done(entries, "pl-1", "prod", "prod-a") is done


@pytest.mark.parametrize("done, point", [
    ([[False], [False, False]], ResumePoint(0, False)),
    ([[True], [False, False]], ResumePoint(1, True)),  # killed at the gate: ask it again
    ([[True], [True, False]], ResumePoint(1, False)),  # killed mid-stage: the gate was passed
    ([[True], [True, True]], ResumePoint(2, False)),
    ([[False], [True, False]], ResumePoint(0, False)),  # staging rolled back by hand: start over
])
def test_a_rerun_resumes_after_the_last_stage_that_passed(done, point):
    assert resume_point(done) == point


def test_resume_point_describes_where_it_starts():
    assert resume_point([[True], [False]]).describe(["staging", "prod"]) == (
        "resuming at stage prod (passed before: staging; its gate is asked again)")
    assert resume_point([[True], [True]]).describe(["staging", "prod"]) == "every stage already passed"


RELEASED = [["staging"], ["eu-1", "eu-2"], ["us-1"]]


@pytest.mark.parametrize("policy, failed, expected", [
    ("target", 2, []),
    ("stage", 1, [(1, "eu-2"), (1, "eu-1")]),
    ("atomic", 2, [(2, "us-1"), (1, "eu-2"), (1, "eu-1"), (0, "staging")]),
    ("atomic", 0, [(0, "staging")]),
])
def test_failure_policies_roll_back_newest_first(policy, failed, expected):
    assert to_roll_back(policy, RELEASED, failed) == expected


def test_pipeline_tags_round_trip_into_history_fields():
    tags = ["greenlight", *pipeline_tags("pl-1", "prod", "prod-b")]
    assert pipeline_of(tags) == {"pipeline_id": "pl-1", "pipeline_stage": "prod", "pipeline_target": "prod-b"}
    assert pipeline_of(["greenlight"]) == {"pipeline_id": "", "pipeline_stage": "", "pipeline_target": ""}


def test_outcome_and_table():
    rows = [{"stage": "s", "target": "t", "context": "c", "namespace": "n", "service": "web", "outcome": o,
             "seconds": 1.25, "serving": "green (app:2)"} for o in ("released", "done-before")]
    assert pipeline_outcome(rows, False) == "completed"
    assert pipeline_outcome(rows, True) == "rejected"
    assert pipeline_outcome([*rows, {**rows[0], "outcome": "rolled-back"}], False) == "failed"
    assert "| s | t | c | n/web | released | 1.2 | green (app:2) |" in stage_table(rows)


def test_the_cli_reads_manifest_files_relative_to_the_spec(tmp_path):
    (tmp_path / "green.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: green}\n")
    (tmp_path / "p.yaml").write_text("stages:\n- name: s\n  targets:\n  - {context: c, service: web, "
                                     "manifest: green.yaml}\n")
    p = load_pipeline_spec(str(tmp_path / "p.yaml"), "pl-9")
    assert p.pipeline_id == "pl-9" and p.stages[0].targets[0].manifest["metadata"]["name"] == "green"
    (tmp_path / "q.yaml").write_text("stages:\n- name: s\n  targets: []\n")
    with pytest.raises(BadInput, match="stages.0.targets"):
        load_pipeline_spec(str(tmp_path / "q.yaml"))


def test_the_example_pipeline_is_valid():
    from pathlib import Path

    p = load_pipeline_spec(str(Path(__file__).parents[2] / "examples" / "pipeline" / "pipeline.yaml"))
    assert [s.name for s in p.stages] == ["staging", "prod"] and p.stages[0].gate.mode.value == "manual"
