"""Rollback on an alert (issue 24): only allow-listed Services, only inside their rollback window; outside it a
refused event says why and nothing is changed (the Service read only)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from prefect_greenlight.tasks.bluegreen import alert, allowed
from prefect_greenlight.tasks.decisions.window import WINDOW, RollbackWindow, WindowState, format_time
from prefect_greenlight.tasks.errors import BadInput
from tests.unit.builders import service
from tests.unit.test_plan import GREEN_SEL


def _svc(until: datetime | None, live: str = "green-dep") -> dict:
    ann = {"greenlight.io/live-deployment": live, "greenlight.io/release-id": "r1"}
    if until is not None:
        ann[WINDOW] = RollbackWindow("r1", "blue-dep", "green-dep", format_time(until), "scale-to-zero", 3).value()
    return service("production-svc", GREEN_SEL, annotations=ann)


@pytest.fixture
def world(monkeypatch):
    state: dict = {"svc": None, "events": [], "allowed": "default/*"}
    monkeypatch.setattr(alert, "read", lambda kube, kind, ns, name: state["svc"])
    for module in (alert, allowed):
        monkeypatch.setattr(module, "emit", lambda kind, ns, svc, **p: state["events"].append((kind.value, p)))
    monkeypatch.setattr(alert, "say", lambda m: None)
    return state


def _verdict(world):
    return alert.alert_window(None, "default", "production-svc", "HighErrorRate (event e1)", world["allowed"], None)


@pytest.mark.parametrize("until, live, state", [
    (timedelta(minutes=5), "green-dep", WindowState.OPEN),
    (timedelta(minutes=-5), "green-dep", WindowState.ENDED),
    (None, "green-dep", WindowState.NONE),
    (timedelta(minutes=5), "blue-dep", WindowState.ROLLED_BACK),
])
def test_only_an_open_window_lets_the_alert_roll_back(world, until, live, state):
    world["svc"] = _svc(datetime.now(timezone.utc) + until if until is not None else None, live)
    verdict = _verdict(world)
    assert verdict.state is state
    if state is WindowState.OPEN:
        assert world["events"] == []
        return
    [(kind, payload)] = world["events"]
    assert kind == "refused" and payload["rule"] == "rollback-window" and payload["refusal"] == state.value
    assert payload["asked_by"] == "HighErrorRate (event e1)" and payload["reason"].endswith("nothing was changed")


def test_a_service_outside_the_allow_list_is_refused_even_inside_its_window(world):
    world["svc"], world["allowed"] = _svc(datetime.now(timezone.utc) + timedelta(minutes=5)), "other/*"
    with pytest.raises(BadInput, match="is not in this deployment's allow-list"):
        _verdict(world)
    [(kind, payload)] = world["events"]
    assert kind == "refused" and payload["strategy"] == "rollback"


def test_a_missing_service_is_bad_input(world):
    with pytest.raises(BadInput, match="Service 'production-svc' not found"):
        _verdict(world)
