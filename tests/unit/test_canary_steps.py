"""The canary's step list (Argo Rollouts' `steps:`): the shorthand flags expand to it, a written one is checked,
and each analysis is a window of rounds whose defaults catch a pod that turns bad 8 s after it starts."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.canary.analysis import (
    AnalysisContext,
    AnalysisResult,
    Outcome,
    Round,
    decide_window,
    run_window,
)
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import parse_spec
from prefect_greenlight.tasks.spec.canary import AnalysisWindow, CanarySpec

BASE = {"service": "my-app-service", "stable": "my-app-v1", "image": "my-app:2"}


def spec(**fields) -> CanarySpec:
    return parse_spec(CanarySpec, {**BASE, **fields}, source="test")


def described(s: CanarySpec) -> list[str]:
    return [step.describe() for step in s.step_list()]


def test_the_shorthand_expands_to_weights_each_with_its_analysis_and_pause():
    s = spec(steps=[10, 30, 100], approve_steps=[30], pause_s=20, analysis={"interval_s": 2, "count": 4})
    window = "analysis, 4 rounds 2 s apart (a 6 s window)"
    assert described(s) == ["set_weight 10", window, "pause 20 s", "set_weight 30", window, "pause until approved",
                            "set_weight 100", window]
    assert s.weights == [10, 30, 100] and not s.written


def test_without_providers_the_shorthand_has_no_analysis_steps():
    s = spec(steps=[50, 100], analysis={"http": None})
    assert described(s) == ["set_weight 50", "set_weight 100"]


def test_the_default_window_is_3_rounds_5_s_apart():
    assert described(spec())[:2] == ["set_weight 10", "analysis, 3 rounds 5 s apart (a 10 s window)"]


def test_a_written_list_is_taken_as_written_and_ends_at_100():
    s = spec(steps=[{"set_weight": 5}, {"pause": {}}, 20, {"analysis": {"count": 6}}, {"pause": {"duration_s": 30}},
                    {"pause": {}}], analysis={"interval_s": 1})
    assert described(s) == ["set_weight 5", "pause until approved", "set_weight 20",
                            "analysis, 6 rounds 1 s apart (a 5 s window)", "pause 30 s", "pause until approved",
                            "set_weight 100"]
    assert s.written and s.weights == [5, 20, 100]


def test_a_written_analysis_takes_the_spec_window_where_it_sets_none():
    s = spec(steps=[{"set_weight": 50}, {"analysis": {}}, {"set_weight": 100}, {"analysis": {"interval_s": 9}}],
             analysis={"interval_s": 2, "count": 5})
    windows = [step.analysis for step in s.step_list() if step.analysis is not None]
    assert [(w.interval_s, w.count) for w in windows] == [(2, 5), (9, 5)]


@pytest.mark.parametrize(("fields", "message"), [
    ({"steps": [{"pause": {}}, 100]}, "the first step must set a weight"),
    ({"steps": [10, {"set_weight": 5}, 100]}, "steps must be strictly increasing in weight, got [10, 5, 100]"),
    ({"steps": [{"set_weight": 10, "pause": {}}, 100]}, "exactly one of set_weight, pause, analysis"),
    ({"steps": [{}]}, "exactly one of set_weight, pause, analysis, judge, set_canary_scale, match; got none"),
    ({"steps": [{"set_weight": 10}, 100], "approve_steps": [10]}, "approve_steps and pause_s are shorthand"),
    ({"steps": [{"set_weight": 10}, {"pause": {"duration_s": 0}}]}, "greater than 0"),
    ({"steps": [10, 50]}, "the last step must be 100, got 50"),
    ({"analysis": {"count": 0}}, "count"),
    ({"steps": [{"set_weight": 10}, {"setWeight": 20}]}, "setWeight"),
])
def test_a_bad_step_list_is_bad_input_naming_the_problem(fields, message):
    with pytest.raises(BadInput) as err:
        spec(**fields)
    assert message in str(err.value), str(err.value)


# -- the analysis window
CTX = AnalysisContext("ns", "svc", "canary", "stable", 25)


class Clock:
    """A fake monotonic clock that sleep() advances, and a canary pod started `age` seconds before the window."""

    def __init__(self, age: float, round_takes: float = 0.3):
        self.now, self.round_takes, self.started = 100.0, round_takes, 100.0 - age
        self.sleeps: list[float] = []

    def sleep(self, s: float) -> None:
        self.sleeps.append(round(s, 6))
        self.now += s

    def clock(self) -> float:
        return self.now


class FailsAfter:
    """A provider whose canary answers 500 once its pod is `after` s old (the test app's fault-failafter-N)."""

    name = "http"

    def __init__(self, clock: Clock, after: float):
        self.c, self.after, self.calls = clock, after, 0

    def analyse(self, ctx: AnalysisContext) -> AnalysisResult:
        self.calls += 1
        self.c.now += self.c.round_takes
        age = self.c.now - self.c.started
        return AnalysisResult(self.name, Outcome.FAILED if age >= self.after else Outcome.SUCCESSFUL, f"age {age:.1f}")


@pytest.mark.parametrize("age", [0.2, 1.0, 3.0, 7.5])
def test_the_default_window_catches_a_pod_that_turns_bad_8_s_after_it_starts(age):
    c = Clock(age)
    probe = FailsAfter(c, 8.0)
    found = run_window([probe], CTX, AnalysisWindow(), sleep=c.sleep, clock=c.clock)
    assert found.outcome is Outcome.FAILED and found.deciding.number == probe.calls <= 3
    assert found.results[0].message.startswith(f"round {probe.calls}/3: ")


def test_one_round_is_an_instant_and_misses_it():
    c = Clock(1.0)
    found = run_window([FailsAfter(c, 8.0)], CTX, AnalysisWindow(count=1), sleep=c.sleep, clock=c.clock)
    assert found.outcome is Outcome.SUCCESSFUL and found.ran == 1 and c.sleeps == []


def test_rounds_start_an_interval_apart_whatever_a_round_takes():
    c = Clock(0.0, round_takes=1.5)
    seen: list[int] = []
    found = run_window([FailsAfter(c, 1e9)], CTX, AnalysisWindow(interval_s=4, count=4), on_round=lambda r:
                       seen.append(r.number), sleep=c.sleep, clock=c.clock)
    assert found.outcome is Outcome.SUCCESSFUL and found.ran == 4 and seen == [1, 2, 3, 4]
    assert c.sleeps == [2.5, 2.5, 2.5], "4 s from one round's start to the next; each round took 1.5 s"
    assert found.rounds_run() == "4 of 4 round(s)"


def _round(n: int, *outcomes: Outcome) -> Round:
    return Round(n, 3, tuple(AnalysisResult(f"p{i}", o, "") for i, o in enumerate(outcomes)))


def test_the_deciding_round_is_the_first_failed_else_the_first_inconclusive_else_the_last():
    ok, inc, bad = Outcome.SUCCESSFUL, Outcome.INCONCLUSIVE, Outcome.FAILED
    assert decide_window([_round(1, ok), _round(2, inc, ok), _round(3, bad)]).number == 3
    assert decide_window([_round(1, ok), _round(2, ok, inc), _round(3, inc)]).number == 2
    assert decide_window([_round(1, ok), _round(2, ok), _round(3, ok)]).number == 3
    assert _round(2, ok, inc).outcome is inc and _round(1, inc, bad).outcome is bad
