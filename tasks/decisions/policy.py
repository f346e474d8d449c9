"""Release windows and freezes (issue 24): when a release, canary or pipeline stage may change a Service. Pure: the
policy as read from the Prefect Variable `greenlight_release_policy` (JSON, editable in the UI), and the verdict
for one Service at one instant. tasks/prefect_adapter/release_policy.py reads the Variable and refuses visibly.

    {"windows": [{"name": "prod-weekdays", "services": ["prod/*"], "cron": "* 9-16 * * 1-5",
                  "timezone": "Europe/Berlin"}],
     "freezes": [{"name": "year-end", "services": ["*/*"], "from": "2026-12-20T00:00:00Z",
                  "to": "2027-01-04T00:00:00Z", "reason": "year-end change freeze"}]}

- A window's `cron` (five fields: minute hour day-of-month month day-of-week, in `timezone`) names the minutes in
  which a release may start: `* 9-16 * * 1-5` is Monday to Friday 09:00-16:59. A Service that some window's
  `services` patterns match may release only inside one of those windows; a Service no window names, at any time.
- A freeze (`from` <= now < `to`, ISO 8601 with an offset) refuses every Service its patterns match, with its
  `reason`, window or not.
- Patterns are `namespace/Service` shell-style (`prod/*`, `*/checkout`), as in the allow-list.
- An override (`--override-freeze REASON`) lets a refused release through; it is recorded. A rollback is never
  checked.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

POLICY_VARIABLE = "greenlight_release_policy"
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
LOOKAHEAD = timedelta(days=8)  # how far the next window is searched


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    """One cron field: `*`, `a`, `a-b`, `*/n`, `a-b/n`, comma lists; day names for day-of-week."""
    values: set[int] = set()
    for part in text.lower().split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            a, b = low, high
        else:
            first, _, last = span.partition("-")
            a = (names or {}).get(first, None) if not first.isdigit() else int(first)
            b = a if not last else ((names or {}).get(last) if not last.isdigit() else int(last))
            if a is None or b is None:
                raise ValueError(f"cron field {text!r}: {part!r} is not a number")
        if not (low <= a <= b <= high) or step < 1:
            raise ValueError(f"cron field {text!r}: {part!r} is outside {low}-{high}")
        values.update(range(a, b + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 folded into 0)
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> "Cron":
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(f"cron {text!r}: expected 5 fields (minute hour day month weekday), got {len(fields)}")
        m, h, d, mo, wd = (_field(f, lo, hi, _DAYS if i == 4 else None)
                           for i, (f, (lo, hi)) in enumerate(zip(fields, _RANGES)))
        return cls(m, h, d, mo, frozenset(v % 7 for v in wd), fields[2] == "*", fields[4] == "*")

    def matches(self, local: datetime) -> bool:
        """Whether the minute `local` (wall clock of the window's zone) is inside; cron's rule for days: when both
        day-of-month and day-of-week are restricted, either one matching is enough."""
        day_ok, weekday_ok = local.day in self.days, (local.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            days = day_ok and weekday_ok
        else:
            days = day_ok or weekday_ok
        return days and local.month in self.months and local.hour in self.hours and local.minute in self.minutes


@dataclass(frozen=True)
class Window:
    name: str
    services: tuple[str, ...]
    cron: Cron
    cron_text: str
    zone: str

    def open_at(self, now: datetime) -> bool:
        return self.cron.matches(now.astimezone(ZoneInfo(self.zone)))

    def next_open(self, now: datetime) -> datetime | None:
        """The first minute from `now` on in which the window is open (None within LOOKAHEAD)."""
        t = now.replace(second=0, microsecond=0)
        end = now + LOOKAHEAD
        while t < end:
            if self.open_at(t):
                return max(t, now)
            t += timedelta(minutes=1)
        return None


@dataclass(frozen=True)
class Freeze:
    name: str
    services: tuple[str, ...]
    start: datetime
    end: datetime
    reason: str


@dataclass(frozen=True)
class Policy:
    windows: tuple[Window, ...] = ()
    freezes: tuple[Freeze, ...] = ()


class PolicyRefusal(str, Enum):
    """Why the policy refuses: a stable contract (the refused event's `kind`)."""

    NONE = "none"
    FREEZE = "freeze"
    OUTSIDE_WINDOW = "outside-window"


@dataclass(frozen=True)
class PolicyVerdict:
    refusal: PolicyRefusal
    rule: str = ""  # the window(s) or freeze that decided
    reason: str = ""
    next_open: datetime | None = None
    override: str = ""  # the reason given to let a refused release through

    @property
    def allowed(self) -> bool:
        return self.refusal is PolicyRefusal.NONE or bool(self.override)


def _patterns(item: dict, where: str) -> tuple[str, ...]:
    services = item.get("services", ["*/*"])
    if isinstance(services, str):
        services = [s.strip() for s in services.split(",") if s.strip()]
    if not isinstance(services, list) or not all(isinstance(s, str) and "/" in s for s in services):
        raise ValueError(f"{where}: services must be namespace/Service patterns, e.g. [\"prod/*\"]")
    return tuple(services)


def _time(text: object, where: str) -> datetime:
    try:
        at = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise ValueError(f"{where}: {text!r} needs a time zone offset (e.g. Z or +01:00)")
    return at


def _window(item: dict, i: int) -> Window:
    where = f"windows[{i}] ({item.get('name', 'unnamed')})"
    zone = str(item.get("timezone", "UTC"))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{where}: unknown time zone {zone!r}") from None
    return Window(str(item.get("name") or f"window-{i}"), _patterns(item, where),
                  Cron.parse(str(item.get("cron", ""))), str(item.get("cron", "")), zone)


def _freeze(item: dict, i: int) -> Freeze:
    where = f"freezes[{i}] ({item.get('name', 'unnamed')})"
    start, end = _time(item.get("from"), where + " from"), _time(item.get("to"), where + " to")
    if end <= start:
        raise ValueError(f"{where}: `to` must be after `from`")
    return Freeze(str(item.get("name") or f"freeze-{i}"), _patterns(item, where), start, end,
                  str(item.get("reason") or "change freeze"))


def parse_policy(value: object) -> Policy:
    """The policy from the Variable's value (a dict, or its JSON text); None or empty: no policy. ValueError
    naming the entry when it is malformed."""
    if value in (None, "", {}):
        return Policy()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(value, dict) or set(value) - {"windows", "freezes"}:
        raise ValueError("expected an object with `windows` and/or `freezes` lists")
    windows, freezes = value.get("windows") or [], value.get("freezes") or []
    if not isinstance(windows, list) or not isinstance(freezes, list):
        raise ValueError("`windows` and `freezes` must be lists")
    try:
        return Policy(tuple(_window(w, i) for i, w in enumerate(windows)),
                      tuple(_freeze(f, i) for i, f in enumerate(freezes)))
    except (AttributeError, TypeError) as exc:
        raise ValueError(f"every window and freeze must be an object: {exc}") from None


def _matches(patterns: tuple[str, ...], namespace: str, service: str) -> bool:
    return any(fnmatch.fnmatchcase(f"{namespace}/{service}", p) for p in patterns)


def check_policy(policy: Policy, namespace: str, service: str, now: datetime, override: str = "") -> PolicyVerdict:
    """The verdict for a release of `namespace/service` starting `now` (timezone-aware)."""
    target = f"{namespace}/{service}"
    for f in policy.freezes:
        if _matches(f.services, namespace, service) and f.start <= now < f.end:
            return PolicyVerdict(PolicyRefusal.FREEZE, f.name, f"Service {target} is in freeze {f.name!r} until "
                                 f"{f.end.isoformat()} ({f.reason}); nothing was changed", f.end, override)
    mine = [w for w in policy.windows if _matches(w.services, namespace, service)]
    if not mine or any(w.open_at(now) for w in mine):
        return PolicyVerdict(PolicyRefusal.NONE)
    nexts = [t for t in (w.next_open(now) for w in mine) if t is not None]
    names = ", ".join(f"{w.name} ({w.cron_text} {w.zone})" for w in mine)
    when = f"; the next opens at {min(nexts).isoformat()}" if nexts else ""
    return PolicyVerdict(PolicyRefusal.OUTSIDE_WINDOW, ", ".join(w.name for w in mine),
                         f"Service {target} may release only inside its release window(s) {names}, and "
                         f"{now.isoformat()} is outside{when}; nothing was changed", min(nexts) if nexts else None,
                         override)
