"""The one retry layer of prefect_greenlight.tasks.kube.client: the backoff policy (pure), which failures may be re-sent for a
non-idempotent call, and `retrying` driven by a fake clock (no real sleeping)."""

from __future__ import annotations

import pytest
import urllib3
from kubernetes.client.rest import ApiException

from prefect_greenlight.tasks.errors import GuardFailed, PermanentError, TemporaryError
from prefect_greenlight.tasks.kube.client import RetryPolicy, never_sent, retrying

REFUSED = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
HANDSHAKE = urllib3.exceptions.ConnectTimeoutError(None, "connect timed out")
READ_TIMEOUT = urllib3.exceptions.ReadTimeoutError(None, "/api", "Read timed out. (read timeout=30)")
DROPPED = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))


@pytest.mark.parametrize("attempt, elapsed, jitter, expected", [
    (1, 0.0, 0.0, 0.1),      # base 0.2 s, jitter factor 0.5 .. 1.5
    (1, 0.0, 0.5, 0.2),
    (2, 0.0, 0.5, 0.4),
    (4, 0.0, 0.5, 1.6),
    (5, 0.0, 0.5, 3.0),      # 3.2 capped at 3.0
    (30, 0.0, 0.5, 3.0),     # no overflow, still the cap
    (5, 0.0, 0.999, 3.0 * 1.499),
    (3, 29.0, 0.5, 0.8),     # 29 + 0.8 = 29.8: within the budget
    (3, 29.1, 0.5, 0.8),     # 29.9: the last attempt that still starts within the budget
    (3, 29.3, 0.5, None),    # 30.1 > 30: give up
    (1, 31.0, 0.0, None),    # already past the budget
])
def test_delay(attempt, elapsed, jitter, expected):
    got = RetryPolicy(budget_s=30, base_s=0.2, cap_s=3.0).delay(attempt, elapsed, jitter)
    assert got == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize("exc, expected", [
    (REFUSED, True),                                  # apiserver down/restarting: nothing was sent
    (HANDSHAKE, True),                                # no TLS session: nothing was sent
    (urllib3.exceptions.MaxRetryError(None, "/x", REFUSED), True),
    (ConnectionRefusedError(111, "refused"), True),
    (ApiException(status=429, reason="Too Many Requests"), True),  # rejected before processing
    (READ_TIMEOUT, False),                            # sent; may have been applied
    (DROPPED, False),
    (urllib3.exceptions.MaxRetryError(None, "/x", READ_TIMEOUT), False),
    (ApiException(status=500, reason="Internal Server Error"), False),
    (ApiException(status=503, reason="Service Unavailable"), False),
    (ApiException(status=0, reason="SSL: handshake"), False),
    (ValueError("bug"), False),
])
def test_never_sent(exc, expected):
    assert never_sent(exc) is expected


class Clock:
    def __init__(self):
        self.t = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def failing(*errors, then="ok", clock: Clock | None = None, cost_s: float = 0.0):
    """A call that raises each of `errors` in turn (each attempt taking `cost_s` of fake time), then returns."""
    calls = []

    def fn():
        calls.append(1)
        if clock:
            clock.t += cost_s
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return then

    return fn, calls


def test_rides_out_an_apiserver_restart():
    """Connection refused for ~8 s of retries, then the apiserver answers: the call succeeds."""
    clock = Clock()
    fn, calls = failing(*[REFUSED] * 6, clock=clock)
    assert retrying("read Service ns/web", fn, RetryPolicy(budget_s=30), sleep=clock.sleep, clock=clock) == "ok"
    assert len(calls) == 7 and len(clock.sleeps) == 6
    assert 0 < sum(clock.sleeps) <= 30


def test_gives_up_when_the_budget_is_spent_and_says_so():
    clock = Clock()
    fn, calls = failing(*[REFUSED] * 100, clock=clock, cost_s=5.0)  # each attempt: a 5 s connect timeout
    with pytest.raises(TemporaryError, match=r"read Service ns/web: NewConnectionError.*gave up after \d+ "
                                             r"attempts over \d+ s"):
        retrying("read Service ns/web", fn, RetryPolicy(budget_s=30), sleep=clock.sleep, clock=clock)
    assert clock.t - 100.0 <= 30 + 5 + 5, "bounded: the budget plus one attempt"
    assert 3 <= len(calls) <= 7


@pytest.mark.parametrize("error, raised", [
    (ApiException(status=403, reason="Forbidden"), PermanentError),
    (ApiException(status=422, reason="Unprocessable"), GuardFailed),
    (ApiException(status=404, reason="Not Found"), PermanentError),
])
def test_permanent_errors_are_not_retried(error, raised):
    clock = Clock()
    fn, calls = failing(error, clock=clock)
    with pytest.raises(raised):
        retrying("patch Service ns/web", fn, sleep=clock.sleep, clock=clock)
    assert len(calls) == 1 and clock.sleeps == []


def test_a_non_idempotent_call_is_re_sent_only_when_it_was_never_sent():
    clock = Clock()
    fn, calls = failing(REFUSED, REFUSED, clock=clock)
    assert retrying("patch", fn, retry_if=lambda exc, _e: never_sent(exc), sleep=clock.sleep, clock=clock) == "ok"
    assert len(calls) == 3

    fn, calls = failing(READ_TIMEOUT, clock=clock)
    with pytest.raises(TemporaryError, match="ReadTimeoutError") as info:
        retrying("patch", fn, retry_if=lambda exc, _e: never_sent(exc), sleep=clock.sleep, clock=clock)
    assert len(calls) == 1, "ambiguous: the caller re-reads and decides"
    assert "gave up" not in str(info.value)


def test_a_first_attempt_that_sat_its_whole_read_timeout_still_gets_a_fresh_connection():
    """A stalled connection: the first read waits its 30 s read timeout, as long as the whole budget. It is retried
    once on a new connection (which answers); a second attempt as slow ends the call, bounded."""
    clock = Clock()
    fn, calls = failing(READ_TIMEOUT, clock=clock, cost_s=30.0)
    assert retrying("read Deployment ns/green", fn, RetryPolicy(budget_s=30), sleep=clock.sleep, clock=clock) == "ok"
    assert len(calls) == 2 and len(clock.sleeps) == 1
    clock = Clock()
    fn, calls = failing(*[READ_TIMEOUT] * 5, clock=clock, cost_s=30.0)
    with pytest.raises(TemporaryError, match=r"gave up after 2 attempts over 60 s"):
        retrying("read Deployment ns/green", fn, RetryPolicy(budget_s=30), sleep=clock.sleep, clock=clock)
    assert len(calls) == 2
