"""Watcher.wait_for with a fake clock and no caches: the decision loop alone, with no real waiting."""

from __future__ import annotations

import time

import pytest

from prefect_greenlight.tasks.kube.watching import Watcher


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def bump(w: Watcher):
    """An on_change that records a change, as a cache would, so wait_for re-decides at once."""
    def on_change() -> None:
        with w.changed:
            w.bump()
    return on_change


@pytest.mark.parametrize("answers, expected, calls", [
    (["done"], "done", 1),
    ([None, None, "done"], "done", 3),
    ([None, 0], 0, 2),  # falsy but not None is an answer
    ([False], False, 1),
    ([None, {"verdict": "doomed"}], {"verdict": "doomed"}, 2),
])
def test_returns_the_first_non_none_decision(answers, expected, calls):
    w, clock = Watcher(), FakeClock()
    seen = []

    def decide():
        seen.append(clock.t)
        clock.t += 1
        return answers[len(seen) - 1]

    started = time.monotonic()
    assert w.wait_for(decide, 60, on_change=bump(w), clock=clock) == expected
    assert len(seen) == calls
    assert time.monotonic() - started < 0.5


def test_returns_none_at_the_deadline():
    w, clock = Watcher(), FakeClock()
    calls = []

    def decide():
        calls.append(clock.t)
        clock.t += 4  # each decision "takes" 4 s of fake time
        return None

    started = time.monotonic()
    assert w.wait_for(decide, 10, on_change=bump(w), clock=clock) is None
    assert calls == [1000, 1004, 1008]  # deadline 1010: the third decision is the last one
    assert time.monotonic() - started < 0.5


def test_decides_once_even_with_zero_timeout():
    w, clock = Watcher(), FakeClock()
    calls = []
    assert w.wait_for(lambda: calls.append(1), 0, clock=clock) is None
    assert calls == [1]


def test_answer_at_the_last_moment_wins_over_the_deadline():
    w, clock = Watcher(), FakeClock()

    def decide():
        clock.t += 100  # already past the deadline when it answers
        return "late but decided"

    assert w.wait_for(decide, 10, clock=clock) == "late but decided"


def test_no_real_wait_when_the_deadline_passes_during_decide():
    w, clock = Watcher(), FakeClock()
    calls = []

    def decide():
        calls.append(1)
        clock.t += 30
        return None

    started = time.monotonic()
    assert w.wait_for(decide, 20, clock=clock) is None
    assert calls == [1] and time.monotonic() - started < 0.5


def test_on_change_runs_between_decisions_only():
    w, clock = Watcher(), FakeClock()
    log: list[str] = []
    answers = iter([None, None, "ok"])

    def decide():
        log.append("decide")
        clock.t += 1
        return next(answers)

    def on_change():
        log.append("change")
        bump(w)()

    assert w.wait_for(decide, 60, on_change=on_change, clock=clock) == "ok"
    assert log == ["decide", "change", "decide", "change", "decide"]


def test_bump_wakes_the_waiter_without_on_change():
    """A change recorded by another thread (a cache) ends the wait long before the 1 s poll."""
    import threading

    w, clock = Watcher(), FakeClock()
    answers = iter([None, "changed"])
    t = threading.Timer(0.05, bump(w))

    def decide():
        if t.ident is None:
            t.start()  # the change arrives after the first decision, while wait_for waits
        return next(answers)

    started = time.monotonic()
    try:
        assert w.wait_for(decide, 60, clock=clock) == "changed"
    finally:
        t.cancel()
    assert time.monotonic() - started < 0.9
