"""The canary judge's settings (`judge:` in a canary spec): which metrics, sampled how, judged how (Kayenta's
canary config: metrics with a direction, allowed change, criticality and a no-data policy; group weights; pass and
marginal score thresholds). The judge itself is pure (tasks/decisions/judge.py); it compares the canary with a
same-age baseline (`baseline: true`), never with stable.
"""

from __future__ import annotations

from enum import Enum

from pydantic import Field, model_validator

from prefect_greenlight.tasks.spec.common import PortRef, SpecModel

PODS_PLACEHOLDER = "{pods}"


class Direction(str, Enum):
    """Which change of a metric is bad: `increase` (latency, errors), `decrease` (throughput), or `either`."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"


class NoDataPolicy(str, Enum):
    """How a metric without enough samples counts."""

    PAUSE = "pause"  # left out of the score; the judgement pauses for a human
    FAIL = "fail"  # counts as a failing metric (a critical one aborts)
    IGNORE = "ignore"  # left out of the score, nothing else


class MetricSource(str, Enum):
    HTTP_LATENCY = "http-latency"  # each probe's answer time, ms
    HTTP_ERRORS = "http-errors"  # each probe: 1 for a 5xx or no answer, else 0
    PROMETHEUS = "prometheus"  # every value of a range query over the window, per pod set


class JudgeMetric(SpecModel):
    name: str = Field(..., min_length=1, max_length=63, description="The metric's name in the report.")
    source: MetricSource = Field(MetricSource.HTTP_LATENCY, description="Where its samples come from.")
    url: str | None = Field(None, pattern=r"^https?://", description="Prometheus base URL (source prometheus).")
    query: str | None = Field(None, description="PromQL range query (source prometheus); `{pods}` is replaced by "
                              "a regex of the pod set's names, `{namespace}` by the namespace.")
    step_s: float = Field(5.0, gt=0, le=3600, description="Prometheus range query resolution.")
    group: str = Field("default", min_length=1, description="Group whose weight the metric counts in.")
    direction: Direction = Field(Direction.INCREASE, description="Which change is bad.")
    allowed_increase: float = Field(1.1, ge=1, description="canary/baseline mean ratio tolerated upwards.")
    allowed_decrease: float = Field(0.9, gt=0, le=1, description="... and downwards.")
    critical: bool = Field(False, description="A High or Low of this metric aborts whatever the score.")
    no_data: NoDataPolicy = Field(NoDataPolicy.PAUSE, description="How too few samples count.")

    @model_validator(mode="after")
    def _prometheus(self) -> "JudgeMetric":
        if self.source is MetricSource.PROMETHEUS:
            if not self.url or not self.query:
                raise ValueError(f"metric {self.name!r}: source prometheus needs url and query")
            if PODS_PLACEHOLDER not in self.query:
                raise ValueError(f"metric {self.name!r}: the query must name the pod set with {PODS_PLACEHOLDER} "
                                 "(it runs once for the canary's pods, once for the baseline's)")
        elif self.url or self.query:
            raise ValueError(f"metric {self.name!r}: url and query are for source prometheus only")
        return self


def _default_metrics() -> list[JudgeMetric]:
    return [JudgeMetric(name="latency", source=MetricSource.HTTP_LATENCY),
            JudgeMetric(name="errors", source=MetricSource.HTTP_ERRORS, critical=True)]


class JudgeProbe(SpecModel):
    """HTTP probes of canary and baseline pods through port-forward, sent each round of the window."""

    path: str = Field("/", pattern=r"^/", description="Request path.")
    port: PortRef | None = Field(None, description="Container port; default: the Service port's targetPort.")
    service_port: PortRef | None = Field(None, description="Service port whose targetPort is probed.")
    requests_per_pod: int = Field(5, ge=1, le=1000, description="Requests to each probed pod per round.")
    max_pods: int = Field(3, ge=1, le=100, description="Pods probed per set (the first N ready, by name).")
    timeout_s: float = Field(5.0, gt=0, le=300, description="Timeout of one request.")


class JudgeSpec(SpecModel):
    """The judge's window (`interval_s`, `count`: samples are taken every interval, judged at the end), the
    statistics and the thresholds."""

    interval_s: float = Field(2.0, gt=0, le=3600, description="Seconds between two rounds of samples.")
    count: int = Field(5, ge=1, le=1000, description="Rounds of samples per judgement.")
    confidence: float = Field(0.95, ge=0.5, lt=1, description="Mann-Whitney U test confidence level.")
    min_samples: int = Field(10, ge=1, le=100000, description="Samples each side needs; fewer is NoData.")
    pass_score: float = Field(95, ge=0, le=100, description="A score at least this goes on.")
    marginal_score: float = Field(75, ge=0, le=100, description="At least this (below pass) pauses; below aborts.")
    group_weights: dict[str, float] = Field(default_factory=dict, description="Weight per group; none: equal.")
    metrics: list[JudgeMetric] = Field(default_factory=_default_metrics, min_length=1, description=(
        "What is compared, canary against baseline; default: HTTP latency, and HTTP errors (critical)."))
    http: JudgeProbe = Field(default_factory=JudgeProbe, description="How the HTTP samples are taken (path, "
                             "requests per pod, pods per set).")

    @model_validator(mode="after")
    def _consistent(self) -> "JudgeSpec":
        if self.marginal_score > self.pass_score:
            raise ValueError(f"marginal_score {self.marginal_score:g} is above pass_score {self.pass_score:g}")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"metric names must be unique, got {names}")
        unknown = sorted(set(self.group_weights) - {m.group for m in self.metrics})
        if unknown:
            raise ValueError(f"group_weights name groups no metric is in: {unknown}")
        if any(w < 0 for w in self.group_weights.values()):
            raise ValueError("group weights must be >= 0")
        return self

    @property
    def window_s(self) -> float:
        return self.interval_s * (self.count - 1)

    def describe(self) -> str:
        metrics = ", ".join(f"{m.name} ({m.source.value}, {m.direction.value}, allowed "
                            f"{m.allowed_decrease:g}..{m.allowed_increase:g}"
                            f"{', critical' if m.critical else ''}, no data: {m.no_data.value})" for m in self.metrics)
        return (f"{self.count} rounds {self.interval_s:g} s apart; Mann-Whitney U at {self.confidence:.0%} "
                f"confidence, at least {self.min_samples} samples a side; score >= {self.pass_score:g} goes on, "
                f">= {self.marginal_score:g} pauses, below aborts; metrics: {metrics}")
