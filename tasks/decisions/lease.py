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


# -- the flow run behind a Lease ------------------------------------------------------------------------------
RUN_ID_ANNOTATION = "greenlight.io/flow-run-id"  # on the Lease: the holder's Prefect flow run
UNFINISHED = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING")  # Prefect state types a dead run may be in


class DeadRunEnd(str, Enum):
    """The final state given to the flow run of a holder whose process died."""

    CRASHED = "Crashed"  # a release took its Lease over: its process crashed
    CANCELLED = "Cancelled"  # an abort or a rollback took over: the release was called off


def lease_run_id(lease: dict | None) -> str:
    return (((lease or {}).get("metadata") or {}).get("annotations") or {}).get(RUN_ID_ANNOTATION, "")


def end_of_dead_run(state_type: str, taker: str) -> DeadRunEnd | None:
    """The final state for the previous holder's flow run, found in `state_type`, when `taker` ("release",
    "abort", "rollback") took its expired Lease over; None when the run already ended (nothing to correct)."""
    if state_type.upper() not in UNFINISHED:
        return None
    return DeadRunEnd.CRASHED if taker == "release" else DeadRunEnd.CANCELLED


def dead_run_message(lease_name: str, holder: str, taker: str, taker_identity: str, taker_run_id: str) -> str:
    by = f"{taker} {taker_identity}" + (f" (flow run {taker_run_id})" if taker_run_id else "")
    return (f"the release process {holder or '?'} died: its Lease {lease_name} expired unrenewed and was taken "
            f"over by {by}")


@dataclass(frozen=True)
class Answerable:
    """Can a paused run still take an answer? `ok` False: its release process is gone (`why`)."""

    ok: bool
    why: str


def answerable(lease: dict | None, lease_name: str, run_id: str, now: float) -> Answerable:
    """A paused release run takes an approve/reject only while its process lives: its Lease names the run and is
    renewed. A Lease gone, taken by another run, or expired unrenewed means nobody will ever read the answer."""
    if lease is None:
        return Answerable(False, f"its Lease {lease_name} is gone (the release ended, or its Lease was deleted)")
    holder_run = lease_run_id(lease)
    if holder_run and holder_run != run_id:
        holder = (lease.get("spec") or {}).get("holderIdentity") or "?"
        return Answerable(False, f"its Lease {lease_name} is held by another run: {holder} (flow run {holder_run})")
    d = decide(lease, "", now)
    if d.action is not LockAction.HELD:
        return Answerable(False, f"its Lease {lease_name} expired {-d.expires_in_s:.0f} s ago unrenewed: the "
                                 f"release process {d.holder or '?'} is gone")
    return Answerable(True, f"its process {d.holder} renews Lease {lease_name}")
