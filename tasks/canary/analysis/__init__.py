"""Canary analysis: providers that each judge the canary once and answer Successful / Failed / Inconclusive
with a message (Argo Rollouts' AnalysisRun phases; Flagger's metric checks). One file per provider:

- `http_probe.HttpProbe`: HTTP requests through port-forward to canary AND stable pods, success rate of
  non-5xx answers and a latency percentile, compared with thresholds and with stable.
- `prometheus.PrometheusQuery`: one instant query compared with a threshold.

`combine` is pure: any Failed -> Failed; else any Inconclusive -> Inconclusive; else Successful.

An analysis is a window, not an instant (`run_window`): `count` rounds of every provider, `interval_s` apart; the
first Failed round ends it (Failed); otherwise its outcome is its worst round's, and that round's results are
reported (the first Inconclusive one, else the last).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from prefect_greenlight.tasks.spec.canary import AnalysisWindow


class Outcome(str, Enum):
    """Values are a stable contract (artifacts, JSON output, tests)."""

    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class AnalysisContext:
    """What a provider may need to know about the step being analysed."""

    namespace: str
    service: str
    canary: str
    stable: str
    percent: int


@dataclass(frozen=True)
class AnalysisResult:
    provider: str
    outcome: Outcome
    message: str
    metrics: dict = field(default_factory=dict)

    def row(self, percent: int) -> dict:
        return {"step": f"{percent} %", "provider": self.provider, "outcome": self.outcome.value,
                "message": self.message, **{k: v for k, v in self.metrics.items() if not isinstance(v, dict)}}


class Provider(Protocol):
    name: str

    def analyse(self, ctx: AnalysisContext) -> AnalysisResult: ...


def combine(results: list[AnalysisResult]) -> Outcome:
    if any(r.outcome is Outcome.FAILED for r in results):
        return Outcome.FAILED
    if any(r.outcome is Outcome.INCONCLUSIVE for r in results):
        return Outcome.INCONCLUSIVE
    return Outcome.SUCCESSFUL


def run_providers(providers: list[Provider], ctx: AnalysisContext) -> list[AnalysisResult]:
    """Every provider once; a provider that raises is Inconclusive (a broken probe is no verdict on the canary)."""
    out = []
    for p in providers:
        try:
            out.append(p.analyse(ctx))
        except Exception as exc:  # noqa: BLE001 - reported as a result, never swallowed
            out.append(AnalysisResult(p.name, Outcome.INCONCLUSIVE, f"{type(exc).__name__}: {exc}"))
    return out


@dataclass(frozen=True)
class Round:
    """One round of a window: its number (1-based) of `count`, and every provider's result."""

    number: int
    count: int
    results: tuple[AnalysisResult, ...]

    @property
    def outcome(self) -> Outcome:
        return combine(list(self.results))

    def describe(self) -> str:
        return (f"round {self.number}/{self.count}: {self.outcome.value}: "
                + "; ".join(f"{r.provider}: {r.message}" for r in self.results))


@dataclass(frozen=True)
class WindowResult:
    """The window's outcome, the round that decided it, and how many rounds ran."""

    deciding: Round
    ran: int

    @property
    def outcome(self) -> Outcome:
        return self.deciding.outcome

    @property
    def results(self) -> list[AnalysisResult]:
        n, c = self.deciding.number, self.deciding.count
        return [AnalysisResult(r.provider, r.outcome, f"round {n}/{c}: {r.message}", r.metrics)
                for r in self.deciding.results]

    def rounds_run(self) -> str:
        return f"{self.ran} of {self.deciding.count} round(s)"

    def describe(self) -> str:
        return f"{self.outcome.value} after {self.rounds_run()}: {self.deciding.describe()}"


def decide_window(rounds: list[Round]) -> Round:
    """Pure: the round that decides a window: the first Failed, else the first Inconclusive, else the last."""
    for outcome in (Outcome.FAILED, Outcome.INCONCLUSIVE):
        found = next((r for r in rounds if r.outcome is outcome), None)
        if found is not None:
            return found
    return rounds[-1]


def run_window(providers: list[Provider], ctx: AnalysisContext, window: AnalysisWindow,
               on_round: Callable[[Round], None] = lambda r: None,
               sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> WindowResult:
    """`window.count` rounds, each starting `window.interval_s` after the previous one started; a Failed round
    ends the window at once."""
    rounds: list[Round] = []
    start = clock()
    for n in range(1, window.count + 1):
        if n > 1:
            sleep(max(0.0, start + (n - 1) * window.interval_s - clock()))
        rounds.append(Round(n, window.count, tuple(run_providers(providers, ctx))))
        on_round(rounds[-1])
        if rounds[-1].outcome is Outcome.FAILED:
            break
    return WindowResult(decide_window(rounds), len(rounds))
