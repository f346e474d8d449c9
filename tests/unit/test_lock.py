"""lock.decide over Lease objects at fixed instants (no sleeping, no real clock)."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.decisions.lease import DURATION_S, SKEW_S, LockAction, LockDecision, decide
from tests.unit.builders import T0, lease

ME = "rel-1@host-a/100"
OTHER = "rel-2@host-b/200"


@pytest.mark.parametrize("the_lease, now, expected", [
    # nobody ever took it
    (None, T0, LockDecision(LockAction.CREATE)),
    # my own lease: renew, however old
    (lease(ME, renew=T0), T0 + 1, LockDecision(LockAction.RENEW, ME)),
    (lease(ME, renew=T0 - 3600), T0, LockDecision(LockAction.RENEW, ME)),
    # released (holder cleared) or never set: take over at once, even if recently renewed
    (lease("", renew=T0), T0, LockDecision(LockAction.TAKE_OVER, "")),
    (lease(None, renew=T0), T0, LockDecision(LockAction.TAKE_OVER, "")),
    # held and fresh: renewTime + duration + skew still ahead
    (lease(OTHER, renew=T0, duration=15), T0 + 5, LockDecision(LockAction.HELD, OTHER, 15 + SKEW_S - 5)),
    (lease(OTHER, renew=T0, duration=30), T0 + 20, LockDecision(LockAction.HELD, OTHER, 30 + SKEW_S - 20)),
    # inside the skew margin: still held
    (lease(OTHER, renew=T0, duration=15), T0 + 16, LockDecision(LockAction.HELD, OTHER, 15 + SKEW_S - 16)),
    # exactly at the expiry instant: take over
    (lease(OTHER, renew=T0, duration=15), T0 + 15 + SKEW_S, LockDecision(LockAction.TAKE_OVER, OTHER, 0.0)),
    # long expired
    (lease(OTHER, renew=T0, duration=15), T0 + 100, LockDecision(LockAction.TAKE_OVER, OTHER, 15 + SKEW_S - 100)),
])
def test_decide(the_lease, now, expected):
    got = decide(the_lease, ME, now)
    assert got.action is expected.action and got.holder == expected.holder
    assert got.expires_in_s == pytest.approx(expected.expires_in_s)


def test_held_uses_renew_time_not_acquire_time():
    held = lease(OTHER, renew=T0 + 50, acquire=T0, duration=15)
    d = decide(held, ME, T0 + 60)
    assert d.action is LockAction.HELD and d.expires_in_s == pytest.approx(50 + 15 + SKEW_S - 60)


def test_acquire_time_used_when_never_renewed():
    held = lease(OTHER, renew=None, acquire=T0, duration=15)
    assert decide(held, ME, T0 + 10).action is LockAction.HELD
    assert decide(held, ME, T0 + 18).action is LockAction.TAKE_OVER


def test_no_times_at_all_is_expired():
    assert decide(lease(OTHER, renew=None), ME, T0).action is LockAction.TAKE_OVER


@pytest.mark.parametrize("duration", [None, 0])
def test_missing_duration_defaults(duration):
    held = lease(OTHER, renew=T0, duration=duration)
    assert decide(held, ME, T0 + DURATION_S + SKEW_S - 0.5).action is LockAction.HELD
    assert decide(held, ME, T0 + DURATION_S + SKEW_S + 0.5).action is LockAction.TAKE_OVER


def test_microsecond_renew_time_is_honoured():
    held = lease(OTHER, renew=T0 + 0.75, duration=15)
    assert decide(held, ME, T0 + 0.5).expires_in_s == pytest.approx(15 + SKEW_S + 0.25)


def test_a_lease_without_spec_is_free():
    assert decide({"metadata": {"name": "greenlight-web"}}, ME, T0).action is LockAction.TAKE_OVER


def test_identity_match_is_exact():
    """Another process of the same release on the same host is a different holder."""
    held = lease("rel-1@host-a/101", renew=T0)
    assert decide(held, ME, T0 + 1).action is LockAction.HELD
