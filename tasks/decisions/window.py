"""The rollback window (issue 24): after a blue-green switch, blue stays scaled and ready for `rollback_window_s`
(no traffic, its HPA held), so a `greenlight rollback` inside it is a selector switch only. The window is recorded
on the Service (annotation `greenlight.io/rollback-window`), next to the release record, so `greenlight status`,
the rollback, an alert's rollback and the clean-up run scheduled for its end all read the same thing, and it
survives a lost Prefect database or a restarted worker.

Pure: the record, its annotation, and the decisions what the scheduled clean-up and an alert may do. Like Argo
Rollouts' scaleDownDelaySeconds: a new release inside the window first takes the warm previous version out of
service as configured (Argo scales an older ReplicaSet down at once when a newer update arrives), then releases.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum

from prefect_greenlight.tasks.decisions.annotations import PREFIX, ReleaseRecord

WINDOW = PREFIX + "rollback-window"
WINDOW_PATH = "/metadata/annotations/" + WINDOW.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True)
class RollbackWindow:
    """Blue (`warm`) kept scaled and ready until `until` (UTC, ISO 8601 with Z) after release `release_id`, then
    taken out of service as `mode` says (scale-to-zero | delete) by the flow run `cleanup_run`."""

    release_id: str
    warm: str  # the Deployment kept warm (the release's blue)
    live: str  # the Deployment the release switched to (its green)
    until: str
    mode: str
    replicas: int = 0  # blue's replicas when the window opened
    cleanup_run: str = ""  # the Prefect flow run scheduled for `until`

    def ends(self) -> datetime:
        return parse_time(self.until)

    def value(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def format_time(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_end(now: datetime, window_s: float) -> datetime:
    """The end of a window opened `now` (rounded up to the whole second the annotation keeps)."""
    end = now + timedelta(seconds=window_s)
    return end.replace(microsecond=0) + (timedelta(seconds=1) if end.microsecond else timedelta(0))


def read_window(service: dict | None) -> RollbackWindow | None:
    """The window recorded on a Service (None: none, or an unreadable value)."""
    raw = (((service or {}).get("metadata") or {}).get("annotations") or {}).get(WINDOW)
    try:
        data = json.loads(raw) if raw else None
        return RollbackWindow(**data) if isinstance(data, dict) else None
    except (TypeError, ValueError):
        return None


def set_window_ops(service: dict, window: RollbackWindow) -> list[dict]:
    if (service.get("metadata") or {}).get("annotations"):
        return [{"op": "add", "path": WINDOW_PATH, "value": window.value()}]
    return [{"op": "add", "path": "/metadata/annotations", "value": {WINDOW: window.value()}}]


def clear_window_ops(service: dict, release_id: str) -> list[dict]:
    """Remove the window of `release_id` (guarded: a newer release's window stays); [] when it is not there."""
    found = read_window(service)
    if found is None or found.release_id != release_id:
        return []
    raw = service["metadata"]["annotations"][WINDOW]
    return [{"op": "test", "path": WINDOW_PATH, "value": raw}, {"op": "remove", "path": WINDOW_PATH}]


class WindowState(str, Enum):
    """What a window is, seen from the Service now: a stable contract (events and results carry it)."""

    NONE = "no-window"  # no window recorded (the release had none, or it was cleaned up)
    OPEN = "open"  # blue warm, the release's green serves, before `until`
    ENDED = "ended"  # `until` has passed; the clean-up is due
    ROLLED_BACK = "rolled-back"  # the Service went back to the warm Deployment inside the window
    SUPERSEDED = "superseded"  # another release or rollback moved the Service since


@dataclass(frozen=True)
class WindowVerdict:
    state: WindowState
    reason: str
    window: RollbackWindow | None = None

    @property
    def open(self) -> bool:
        return self.state is WindowState.OPEN


def window_state(window: RollbackWindow | None, record: ReleaseRecord, now: datetime) -> WindowVerdict:
    """Where a Service's rollback window stands `now`, from its window and release record."""
    if window is None:
        return WindowVerdict(WindowState.NONE, "no rollback window is recorded on the Service")
    if record.live_deployment == window.warm:
        return WindowVerdict(WindowState.ROLLED_BACK, f"the Service serves {window.warm} again (rolled back inside "
                             f"the window of release {window.release_id})", window)
    if record.release_id != window.release_id or record.live_deployment != window.live:
        return WindowVerdict(WindowState.SUPERSEDED, f"release {record.release_id or '?'} moved the Service to "
                             f"{record.live_deployment or '?'} since release {window.release_id}", window)
    left = (window.ends() - now).total_seconds()
    if left > 0:
        return WindowVerdict(WindowState.OPEN, f"{window.warm} is kept warm for {left:.0f} s more, until "
                             f"{window.until}", window)
    return WindowVerdict(WindowState.ENDED, f"the window of release {window.release_id} ended at {window.until} "
                         f"({-left:.0f} s ago)", window)


def cleanup_due(verdict: WindowVerdict, force: bool = False) -> bool:
    """Whether the scheduled run takes the warm Deployment out of service now: when the window ended (or
    `force`: a new release closes it early), never while the Service selects it."""
    return verdict.state is WindowState.ENDED or (force and verdict.state is WindowState.OPEN)
