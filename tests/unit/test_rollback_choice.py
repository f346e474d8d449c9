"""choose_rollback: where `greenlight rollback` goes, from the Service's release record (a second rollback is a
no-op; anywhere but the recorded previous takes --to)."""

from __future__ import annotations

import re

import pytest

from prefect_greenlight.tasks.decisions.annotations import ReleaseRecord, read_record, switch_annotations
from prefect_greenlight.tasks.decisions.rollback import (
    RollbackAction,
    SwitchKind,
    choose_rollback,
    switch_kind_of,
)
from prefect_greenlight.tasks.errors import BadInput

BLUE_SEL, GREEN_SEL = {"target": "blue-dep"}, {"target": "green-dep"}


def released(kind: str = "release", release_id: str = "r-1") -> ReleaseRecord:
    """The record after blue-dep -> green-dep."""
    return ReleaseRecord(live_deployment="green-dep", live_color="green-dep", previous_deployment="blue-dep",
                         previous_color="blue-dep", previous_selector=BLUE_SEL, release_id=release_id,
                         switched_at="2025-01-01T00:00:00Z", switch_kind=kind)


def rolled_back(kind: str = "rollback", release_id: str = "rollback-r-2") -> ReleaseRecord:
    """The record after the rollback green-dep -> blue-dep."""
    return ReleaseRecord(live_deployment="blue-dep", live_color="blue-dep", previous_deployment="green-dep",
                         previous_color="green-dep", previous_selector=GREEN_SEL, release_id=release_id,
                         switched_at="2025-01-01T00:05:00Z", switch_kind=kind)


def test_first_rollback_after_a_release_switches_to_the_recorded_previous():
    c = choose_rollback("svc", released(), GREEN_SEL, ["green-dep"])
    assert c.action is RollbackAction.SWITCH
    assert (c.target, c.target_selector, c.from_deployment) == ("blue-dep", BLUE_SEL, "green-dep")
    assert (c.target_color, c.from_color, c.use_recorded_manifest) == ("blue-dep", "green-dep", True)


@pytest.mark.parametrize("record", [rolled_back(), rolled_back(kind="", release_id="rollback-r-2")],
                         ids=["switch-kind-rollback", "legacy-record-rollback-release-id"])
def test_second_rollback_is_a_no_op_naming_the_deployment_that_serves(record):
    c = choose_rollback("svc", record, BLUE_SEL, ["blue-dep"])
    assert c.action is RollbackAction.ALREADY_SERVES and c.target == "blue-dep"
    assert c.message.startswith("Deployment blue-dep already serves Service svc")
    assert "give --to green-dep" in c.message and "nothing changed" in c.message


def test_after_a_failed_release_switched_back_a_rollback_does_not_go_to_the_failed_version():
    record = rolled_back(release_id="r-3")  # switch_back of a failed release writes kind rollback
    assert choose_rollback("svc", record, BLUE_SEL, ["blue-dep"]).action is RollbackAction.ALREADY_SERVES


def test_to_the_newer_version_after_a_rollback_switches_forward():
    c = choose_rollback("svc", rolled_back(), BLUE_SEL, ["blue-dep"], to="green-dep", to_labels=GREEN_SEL)
    assert c.action is RollbackAction.SWITCH
    assert (c.target, c.target_selector, c.from_deployment) == ("green-dep", GREEN_SEL, "blue-dep")


def test_to_the_deployment_that_already_serves_is_a_no_op():
    c = choose_rollback("svc", rolled_back(), BLUE_SEL, ["blue-dep"], to="blue-dep", to_labels=BLUE_SEL)
    assert c.action is RollbackAction.ALREADY_SERVES and c.target == "blue-dep"


def test_to_a_deployment_the_record_does_not_name_uses_a_selector_of_its_pod_labels():
    c = choose_rollback("svc", released(), {"app": "web", "version": "green"}, ["web-green"], to="web-old",
                        to_labels={"app": "web", "version": "old", "tier": "x"})
    assert c.action is RollbackAction.SWITCH and c.use_recorded_manifest is False
    assert c.target_selector == {"app": "web", "version": "old"}
    assert (c.target_color, c.from_color) == ("old", "green")


@pytest.mark.parametrize("to,labels,field", [
    ("gone-dep", None, "not found"),
    ("other-dep", {"app": "web"}, "lack the Service selector key(s) ['target']"),
])
def test_to_a_deployment_that_cannot_serve_is_bad_input(to, labels, field):
    with pytest.raises(BadInput, match=re.escape(field)):
        choose_rollback("svc", released(), GREEN_SEL, ["green-dep"], to=to, to_labels=labels)


def test_no_record_is_bad_input():
    with pytest.raises(BadInput, match="no greenlight release record"):
        choose_rollback("svc", ReleaseRecord(), BLUE_SEL, ["blue-dep"])


def test_a_rolled_back_record_whose_selector_was_changed_by_hand_refuses_without_to():
    with pytest.raises(BadInput, match="give --to DEPLOYMENT"):
        choose_rollback("svc", rolled_back(), {"target": "hand-dep"}, ["hand-dep"])


def test_a_release_record_whose_service_already_selects_previous_is_a_no_op():
    c = choose_rollback("svc", released(), BLUE_SEL, ["blue-dep"])
    assert c.action is RollbackAction.ALREADY_SERVES and c.target == "blue-dep"


@pytest.mark.parametrize("kind,release_id,expected", [
    ("release", "rollback-x", SwitchKind.RELEASE),  # the annotation wins
    ("rollback", "r-1", SwitchKind.ROLLBACK),
    ("", "r-1", SwitchKind.RELEASE),
    ("", "rollback-r-1", SwitchKind.ROLLBACK),
    ("bogus", "r-1", SwitchKind.RELEASE),
])
def test_switch_kind_of(kind, release_id, expected):
    assert switch_kind_of(ReleaseRecord(release_id=release_id, switch_kind=kind)) is expected


def test_switch_annotations_round_trip_the_kind():
    ann = switch_annotations(live_deployment="blue-dep", live_color="b", previous_deployment="green-dep",
                             previous_color="g", previous_selector=GREEN_SEL, release_id="r", switched_at="t",
                             kind="rollback")
    assert read_record({"metadata": {"annotations": ann}}).switch_kind == "rollback"
