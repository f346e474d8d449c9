"""Release windows and freezes (issue 24): the pure policy (cron-like windows in a time zone, freezes, patterns,
the override), table-tested with a fixed clock; and the run-time gate with the Variable and events faked."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from prefect_greenlight.tasks.decisions.describe_pipeline import describe_gate
from prefect_greenlight.tasks.decisions.policy import Cron, PolicyRefusal, check_policy, parse_policy
from prefect_greenlight.tasks.errors import BadInput, PermanentError
from prefect_greenlight.tasks.prefect_adapter import release_policy
from prefect_greenlight.tasks.spec.pipeline import PipelineSpec

POLICY = {
    "windows": [{"name": "prod-weekdays", "services": ["prod/*"], "cron": "* 9-16 * * mon-fri",
                 "timezone": "Europe/Berlin"}],
    "freezes": [{"name": "year-end", "services": ["*/*"], "from": "2026-12-20T00:00:00Z",
                 "to": "2027-01-04T00:00:00Z", "reason": "year-end change freeze"}],
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("at, namespace, refusal, rule", [
    ("2026-12-07 08:30", "prod", PolicyRefusal.NONE, ""),  # Monday 09:30 in Berlin (UTC+1)
    ("2026-12-07 15:59", "prod", PolicyRefusal.NONE, ""),  # 16:59 Berlin: the last minute
    ("2026-12-07 16:00", "prod", PolicyRefusal.OUTSIDE_WINDOW, "prod-weekdays"),  # 17:00 Berlin
    ("2026-12-07 07:59", "prod", PolicyRefusal.OUTSIDE_WINDOW, "prod-weekdays"),  # 08:59 Berlin
    ("2026-12-05 10:00", "prod", PolicyRefusal.OUTSIDE_WINDOW, "prod-weekdays"),  # Saturday
    ("2026-12-05 10:00", "staging", PolicyRefusal.NONE, ""),  # no window names staging
    ("2026-12-21 10:00", "prod", PolicyRefusal.FREEZE, "year-end"),  # a Monday, in the window, but frozen
    ("2026-12-21 10:00", "staging", PolicyRefusal.FREEZE, "year-end"),
    ("2027-01-04 08:00", "prod", PolicyRefusal.NONE, ""),  # the freeze's `to` is exclusive
])
def test_the_verdict_at_an_instant(at, namespace, refusal, rule):
    verdict = check_policy(parse_policy(POLICY), namespace, "checkout", utc(at))
    assert (verdict.refusal, verdict.rule) == (refusal, rule), verdict
    assert verdict.allowed == (refusal is PolicyRefusal.NONE)


def test_a_refusal_names_the_rule_the_reason_and_when_it_opens():
    freeze = check_policy(parse_policy(POLICY), "prod", "checkout", utc("2026-12-21 10:00"))
    assert freeze.reason == ("Service prod/checkout is in freeze 'year-end' until 2027-01-04T00:00:00+00:00 "
                             "(year-end change freeze); nothing was changed")
    outside = check_policy(parse_policy(POLICY), "prod", "checkout", utc("2026-12-05 10:00"))
    assert "release window(s) prod-weekdays (* 9-16 * * mon-fri Europe/Berlin)" in outside.reason
    assert outside.next_open == utc("2026-12-07 08:00")  # Monday 09:00 Berlin


def test_an_override_lets_a_refused_release_through_and_keeps_what_it_overrode():
    verdict = check_policy(parse_policy(POLICY), "prod", "checkout", utc("2026-12-21 10:00"), "hotfix INC-7")
    assert verdict.allowed and verdict.refusal is PolicyRefusal.FREEZE and verdict.override == "hotfix INC-7"


@pytest.mark.parametrize("cron, at, inside", [
    ("*/15 * * * *", "2026-12-05 10:30", True), ("*/15 * * * *", "2026-12-05 10:31", False),
    ("0 6 1 * *", "2026-12-01 06:00", True), ("0 6 1 * *", "2026-12-02 06:00", False),
    ("* * 1 * 1", "2026-12-07 12:00", True),  # day 1 OR Monday: cron's rule when both are restricted
    ("* * * * 0", "2026-12-06 12:00", True), ("* * * * 7", "2026-12-06 12:00", True),  # Sunday both ways
    ("* 22-23,0-5 * * *", "2026-12-05 03:00", True), ("* 22-23,0-5 * * *", "2026-12-05 12:00", False),
])
def test_cron_like_windows(cron, at, inside):
    assert Cron.parse(cron).matches(datetime.fromisoformat(at)) is inside


@pytest.mark.parametrize("value, message", [
    ("{", "not JSON"),
    ({"windows": [{"cron": "* * *"}]}, "expected 5 fields"),
    ({"windows": [{"cron": "* 25 * * *"}]}, "outside 0-23"),
    ({"windows": [{"cron": "* * * * *", "timezone": "Mars/Olympus"}]}, "unknown time zone 'Mars/Olympus'"),
    ({"windows": [{"cron": "* * * * *", "services": ["checkout"]}]}, "namespace/Service patterns"),
    ({"freezes": [{"from": "2026-12-20", "to": "2027-01-04T00:00:00Z"}]}, "needs a time zone offset"),
    ({"freezes": [{"from": "2027-01-04T00:00:00Z", "to": "2026-12-20T00:00:00Z"}]}, "`to` must be after"),
    ({"freeze": []}, "expected an object"),
])
def test_a_malformed_policy_is_named(value, message):
    with pytest.raises(ValueError, match=message):
        parse_policy(value)


def test_no_policy_allows_everything():
    for value in (None, "", {}):
        assert check_policy(parse_policy(value), "prod", "x", utc("2026-12-25 03:00")).allowed


@pytest.fixture
def gate(monkeypatch):
    events: list[tuple] = []
    value: dict = {"policy": POLICY}
    monkeypatch.setattr(release_policy, "read_variable", lambda name: value["policy"])
    monkeypatch.setattr(release_policy, "emit", lambda kind, ns, svc, **p: events.append((kind.value, ns, svc, p)))
    monkeypatch.setattr(release_policy, "say", lambda m: None)
    return events, value


def test_a_frozen_release_is_refused_with_an_event_naming_the_rule(gate):
    events, _ = gate
    with pytest.raises(BadInput, match=r"refused by the release policy \(freeze year-end\)"):
        release_policy.check_release_policy("prod", "checkout", "blue-green", now=utc("2026-12-21 10:00"))
    [(kind, ns, svc, payload)] = events
    assert (kind, ns, svc) == ("refused", "prod", "checkout")
    assert payload["rule"] == "year-end" and payload["refusal"] == "freeze" and "--override-freeze" in payload["how"]


def test_an_override_passes_without_a_refused_event_and_returns_its_record(gate):
    events, _ = gate
    note = release_policy.check_release_policy("prod", "checkout", "canary", "hotfix INC-7",
                                               now=utc("2026-12-21 10:00"))
    assert note == "freeze year-end overridden: hotfix INC-7" and events == []


def test_an_invalid_policy_refuses_rather_than_guess(gate):
    events, value = gate
    value["policy"] = {"windows": [{"cron": "nope"}]}
    with pytest.raises(BadInput, match="is not a valid release policy"):
        release_policy.check_release_policy("prod", "checkout", "blue-green", now=utc("2026-12-07 10:00"))
    assert events[0][3]["refusal"] == "invalid-policy"


class Clock:
    def __init__(self, at: str):
        self.now = utc(at)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now = self.now + timedelta(seconds=s)


def test_a_pipeline_gate_waits_for_the_window_to_open_rechecking_every_minute(gate):
    clock = Clock("2026-12-07 07:58")  # Monday 08:58 Berlin: opens at 09:00
    msg = release_policy.wait_until_allowed([("prod", "checkout"), ("staging", "web")], 3600, clock.sleep, clock)
    assert clock.slept == [60.0, 60.0] and msg == "release policy: every target may release (waited 120 s)"


def test_a_gate_does_not_wait_longer_than_asked_and_names_the_rule(gate):
    clock = Clock("2026-12-05 10:00")  # Saturday: the next window is Monday
    with pytest.raises(PermanentError, match=r"1 target\(s\) may not release within 3600 s \(prod/checkout: "
                                             r"outside-window prod-weekdays; opens 2026-12-07T08:00:00\+00:00\)"):
        release_policy.wait_until_allowed([("prod", "checkout")], 3600, clock.sleep, clock)
    assert clock.slept == []


def test_the_pipeline_plan_says_the_gate_waits_for_the_window():
    spec = PipelineSpec(image="app:2", stages=[
        {"name": "staging", "targets": [{"context": "staging", "service": "web"}], "gate": {"wait_for_window_s": 600}},
        {"name": "prod", "targets": [{"context": "prod", "service": "web"}]}])
    step = describe_gate(spec, 0)
    assert step.change.endswith("then wait (at most 600 s) until the release policy lets every target of stage prod "
                                "release (its window opens, its freeze ends)"), step.change
