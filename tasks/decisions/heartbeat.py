"""How often the greenlight worker says a release is alive, and how long a silence means its worker is gone.

The greenlight worker emits `prefect.flow-run.heartbeat` for every run it owns, every `every_s` seconds, with its
work pool (type greenlight) as a related resource. An automation that greenlight installs (Prefect's documented
pattern for "zombie" flow runs, scoped to greenlight pools) marks a run Crashed when, after one heartbeat, neither
another heartbeat nor a final state arrives within `silence_s`. The server evaluates such proactive triggers every
`granularity_s` (PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY, 5 s by default), so a worker killed right after a
heartbeat has its runs Crashed at most `silence_s + granularity_s` later (plus the event's own way to the server).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from prefect_greenlight.tasks.errors import BadInput

HEARTBEAT_S = 15.0
SILENCE_S = 60
GRANULARITY_S = 5.0
BOUND_S = 90.0  # what greenlight promises: a killed worker's runs are Crashed within this
MIN_HEARTBEAT_S = 1.0


class HeartbeatProblem(str, Enum):
    TOO_FAST = "heartbeat-too-fast"          # every_s below MIN_HEARTBEAT_S: events for nothing
    SILENCE_TOO_SHORT = "silence-too-short"  # below two heartbeats: one late heartbeat would crash a live run
    OVER_BOUND = "over-bound"                # silence + granularity exceeds BOUND_S: crashes found too late


@dataclass(frozen=True)
class HeartbeatPlan:
    every_s: float = HEARTBEAT_S
    silence_s: int = SILENCE_S
    granularity_s: float = GRANULARITY_S

    def crashed_within_s(self) -> float:
        """The latest a killed worker's run is marked Crashed after the kill (event delivery aside)."""
        return self.silence_s + self.granularity_s

    def problems(self) -> list[HeartbeatProblem]:
        found = []
        if self.every_s < MIN_HEARTBEAT_S:
            found.append(HeartbeatProblem.TOO_FAST)
        if self.silence_s < 2 * self.every_s:
            found.append(HeartbeatProblem.SILENCE_TOO_SHORT)
        if self.crashed_within_s() > BOUND_S:
            found.append(HeartbeatProblem.OVER_BOUND)
        return found


def _number(name: str, text: str | None, default: float) -> float:
    if text is None or text.strip() == "":
        return default
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"{name}={text!r}: not a number of seconds") from None


def heartbeat_plan(every: str | None, silence: str | None, granularity: str | None = None) -> HeartbeatPlan:
    """The plan from GREENLIGHT_WORKER_HEARTBEAT_S, GREENLIGHT_WORKER_CRASH_AFTER_S and the server's proactive
    granularity (seconds, as the environment gives them); BadInput naming what would let a live run be crashed.
    Exceeding BOUND_S is allowed (the user's choice), and reported by `problems()`."""
    plan = HeartbeatPlan(every_s=_number("GREENLIGHT_WORKER_HEARTBEAT_S", every, HEARTBEAT_S),
                         silence_s=int(_number("GREENLIGHT_WORKER_CRASH_AFTER_S", silence, SILENCE_S)),
                         granularity_s=_number("granularity", granularity, GRANULARITY_S))
    fatal = [p for p in plan.problems() if p is not HeartbeatProblem.OVER_BOUND]
    if fatal:
        raise BadInput([f"heartbeat every {plan.every_s:g} s, crash after {plan.silence_s} s of silence: {p.value}"
                        for p in fatal])
    return plan
