"""The Lease decision: given the Service's Lease as read now, create it, renew it, take it over, or wait for its
holder. Expiry is judged from the holder's renewTime plus the lease duration and a clock-skew margin, so a second
release fails at once naming the holder (prefect_greenlight.tasks.kube.client.lease does the I/O).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

DURATION_S = 15
SKEW_S = 2.0


class LockAction(str, Enum):
    CREATE = "create"
    RENEW = "renew"
    TAKE_OVER = "take-over"
    HELD = "held"


@dataclass(frozen=True)
class LockDecision:
    action: LockAction
    holder: str = ""
    expires_in_s: float = 0.0


def lease_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_lease_time(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def decide(lease: dict | None, me: str, now: float) -> LockDecision:
    """What to do with the Service's lease as read now."""
    if lease is None:
        return LockDecision(LockAction.CREATE)
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if holder == me:
        return LockDecision(LockAction.RENEW, holder)
    if not holder:
        return LockDecision(LockAction.TAKE_OVER, holder)
    renewed = parse_lease_time(spec.get("renewTime")) or parse_lease_time(spec.get("acquireTime")) or 0.0
    expires_in = renewed + int(spec.get("leaseDurationSeconds") or DURATION_S) + SKEW_S - now
    if expires_in > 0:
        return LockDecision(LockAction.HELD, holder, expires_in)
    return LockDecision(LockAction.TAKE_OVER, holder, expires_in)


def confidence_s(renewed_at: float | None, now: float, duration_s: float) -> float:
    """Seconds for which we may still count on holding a lease we last renewed (or acquired) at `renewed_at`
    (same clock as `now`): others take it over renewTime + duration + SKEW_S after our last write, so we stop
    trusting it SKEW_S before that. Negative or zero: confirm by renewing before the next change."""
    if renewed_at is None:
        return 0.0
    return renewed_at + duration_s - SKEW_S - now
