"""No lost release: a release that could not start (busy or locked Prefect server) is started again within the
budget; one that had begun, or was refused, is never started twice."""

from __future__ import annotations

import httpx
import pytest

from prefect_greenlight.tasks.prefect_adapter import starting
from prefect_greenlight.tasks.prefect_adapter.starting import (
    client_retry_defaults,
    release_begun,
    start_release,
    start_retryable,
)


def _status(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:4200/api/flow_runs/")
    return httpx.HTTPStatusError(f"{code}", request=request, response=httpx.Response(code, request=request))


class Clock:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


@pytest.mark.parametrize(("exc", "begun", "retry"), [
    (_status(503), False, True),                     # SQLite "database is locked", answered 503
    (_status(429), False, True),
    (httpx.ConnectError("All connection attempts failed"), False, True),
    (RuntimeError("sqlite3.OperationalError: database is locked"), False, True),
    (_status(422), False, False),                    # parameters refused: bad input, never retried
    (_status(503), True, False),                     # the flow had begun: the release's own rollback owns it
    (ValueError("bad"), False, False),
    (KeyboardInterrupt(), False, False),
])
def test_which_start_failures_are_retried(exc, begun, retry):
    assert start_retryable(exc, begun) is retry


def test_a_release_that_did_not_start_is_started_again_until_it_does():
    clock, calls = Clock(), []

    def flow(**params):
        calls.append(params)
        if len(calls) < 4:
            raise _status(503)
        release_begun()
        return {"outcome": "released"}

    assert start_release(flow, {"spec": "s"}, sleep=clock.sleep, clock=lambda: clock.now) == {"outcome": "released"}
    assert len(calls) == 4 and len(clock.slept) == 3
    assert all(0 <= s <= min(starting.START_BACKOFF_CAP_S, 2 ** i) for i, s in enumerate(clock.slept))


def test_a_release_that_had_begun_is_never_started_twice():
    calls = []

    def flow(**params):
        calls.append(1)
        release_begun()
        raise _status(503)  # e.g. the server failing the run's final state: the release itself ran

    with pytest.raises(httpx.HTTPStatusError):
        start_release(flow, {}, sleep=lambda s: pytest.fail("no retry"))
    assert calls == [1]


def test_the_start_budget_bounds_the_retries():
    clock, calls = Clock(), []

    def flow(**params):
        calls.append(1)
        raise _status(503)

    with pytest.raises(httpx.HTTPStatusError):
        start_release(flow, {}, budget_s=60, sleep=clock.sleep, clock=lambda: clock.now)
    assert clock.now <= 60 and len(calls) >= 3  # 1 + 2 + 4 + ... s of (jittered) waits until 60 s


def test_client_retry_defaults_never_override_the_users_settings():
    env = {"PREFECT_CLIENT_MAX_RETRIES": "2"}
    client_retry_defaults(env)
    assert env == {"PREFECT_CLIENT_MAX_RETRIES": "2", "PREFECT_CLIENT_RETRY_JITTER_FACTOR": "0.5"}
