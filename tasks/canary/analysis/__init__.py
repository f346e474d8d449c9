"""Canary analysis: providers that each judge the canary once and answer Successful / Failed / Inconclusive
with a message (Argo Rollouts' AnalysisRun phases; Flagger's metric checks). One file per provider:

- `http_probe.HttpProbe`: HTTP requests through port-forward to canary AND stable pods, success rate of
  non-5xx answers and a latency percentile, compared with thresholds and with stable.
- `prometheus.PrometheusQuery`: one instant query compared with a threshold.

`combine` is pure: any Failed -> Failed; else any Inconclusive -> Inconclusive; else Successful.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol


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
