"""The canary judge: canary against a same-age baseline, metric by metric, with statistics (Kayenta's
NetflixACAJudge, without Spinnaker). Pure: samples in, verdicts out; no I/O, no Prefect, no Kubernetes client.

Per metric (`judge_metric`):
  - fewer than `min_samples` samples on either side -> NoData (never a Pass: no evidence is no verdict);
  - a two-sided Mann-Whitney U test (`scipy.stats.mannwhitneyu`) of canary against baseline at `confidence`;
  - the effect size: the ratio of means, canary / baseline (Kayenta's), with the common-language effect size
    CLES = U / (n_canary x n_baseline) (the probability that a canary sample exceeds a baseline one, ties half)
    beside it;
  - High when the difference is significant (p < 1 - confidence) and the ratio exceeds `allowed_increase`, Low when
    it is significant and below `allowed_decrease`, each only in the metric's `direction` (an increase of latency is
    bad, a decrease is not); else Pass.

The judgement (`judge`): a group's score is the share of its scored metrics that Pass; the score (0-100) is the
groups' weighted mean (equal weights unless given; Kayenta's WeightedSumScorer). A metric's no-data policy decides
how a NoData counts: `pause` (the default) leaves it out of the score and pauses for a human; `fail` counts it as
failing (and a critical one aborts); `ignore` leaves it out. A High or Low of a critical metric aborts whatever the
score. Then: score >= `pass_score` goes on, >= `marginal_score` pauses, below aborts; no scored metric at all
pauses (never passes).
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from enum import Enum

try:  # the `judge` extra (pyproject.toml): without scipy a spec with `judge:` is refused at preflight
    from scipy.stats import mannwhitneyu
except ImportError:  # pragma: no cover - exercised by tests/unit/test_canary_baseline.py with it hidden
    mannwhitneyu = None

from prefect_greenlight.tasks.spec.judge import Direction, JudgeSpec, NoDataPolicy

JUDGE_EXTRA = "the canary judge needs scipy: pip install 'prefect-greenlight[judge]'"


class Verdict(str, Enum):
    """A metric's classification. Values are a stable contract (artifacts, the result's JSON, tests)."""

    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "NoData"


class Decision(str, Enum):
    """What the release does after a judgement."""

    PASS = "pass"  # go on
    MARGINAL = "marginal"  # pause for a human
    FAIL = "fail"  # abort


def available() -> bool:
    """Whether the judge can run here (scipy, the `judge` extra, is installed)."""
    return mannwhitneyu is not None


@dataclass(frozen=True)
class MetricRule:
    """How one metric is judged (the spec's `judge.metrics[]`, resolved)."""

    name: str
    group: str = "default"
    direction: Direction = Direction.INCREASE
    allowed_increase: float = 1.1  # canary/baseline mean ratio above this (and significant) is High
    allowed_decrease: float = 0.9  # ... below this (and significant) is Low
    critical: bool = False
    no_data: NoDataPolicy = NoDataPolicy.PAUSE
    min_samples: int = 10
    confidence: float = 0.95


@dataclass(frozen=True)
class MetricResult:
    name: str
    group: str
    verdict: Verdict
    critical: bool
    no_data: NoDataPolicy
    n_canary: int
    n_baseline: int
    canary_median: float | None = None
    baseline_median: float | None = None
    u: float | None = None  # U of the canary sample
    p: float | None = None
    ratio: float | None = None  # mean(canary) / mean(baseline)
    cles: float | None = None  # U / (n_canary * n_baseline)
    reason: str = ""

    def row(self) -> dict:
        """The report table's row."""
        return {"metric": self.name, "group": self.group, "verdict": self.verdict.value,
                "canary_median": _r(self.canary_median), "baseline_median": _r(self.baseline_median),
                "n_canary": self.n_canary, "n_baseline": self.n_baseline, "U": _r(self.u), "p": _r(self.p, 4),
                "ratio": _r(self.ratio, 3), "CLES": _r(self.cles, 3), "critical": self.critical,
                "reason": self.reason}


def _r(x: float | None, digits: int = 2) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, digits)


def mean_ratio(canary: list[float], baseline: list[float]) -> float:
    """mean(canary) / mean(baseline); 1.0 when both are 0, +inf when only the baseline's is 0."""
    c, b = statistics.fmean(canary), statistics.fmean(baseline)
    if b == 0:
        return 1.0 if c == 0 else math.copysign(math.inf, c)
    return c / b


def u_test(canary: list[float], baseline: list[float]) -> tuple[float, float]:
    """(U of the canary, two-sided p). All values equal on both sides: no evidence of a difference, p = 1 (scipy
    would answer NaN: the normal approximation's variance is 0)."""
    if len(set(canary) | set(baseline)) == 1:
        return len(canary) * len(baseline) / 2, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = mannwhitneyu(canary, baseline, alternative="two-sided")
    p = float(res.pvalue)
    return float(res.statistic), 1.0 if math.isnan(p) else p


def judge_metric(rule: MetricRule, canary: list[float], baseline: list[float]) -> MetricResult:
    """One metric's verdict from its canary and baseline samples (NaNs dropped)."""
    canary = [float(x) for x in canary if not math.isnan(x)]
    baseline = [float(x) for x in baseline if not math.isnan(x)]
    base = dict(name=rule.name, group=rule.group, critical=rule.critical, no_data=rule.no_data,
                n_canary=len(canary), n_baseline=len(baseline))
    if len(canary) < rule.min_samples or len(baseline) < rule.min_samples:
        return MetricResult(**base, verdict=Verdict.NODATA,
                            reason=f"{len(canary)} canary and {len(baseline)} baseline samples; "
                                   f"{rule.min_samples} of each needed")
    u, p = u_test(canary, baseline)
    ratio = mean_ratio(canary, baseline)
    alpha = 1 - rule.confidence
    verdict, reason = Verdict.PASS, f"p {p:.3g} >= {alpha:.3g}: no significant difference"
    if p < alpha:
        verdict, reason = _significant(rule, ratio, p, alpha)
    return MetricResult(**base, verdict=verdict, canary_median=statistics.median(canary),
                        baseline_median=statistics.median(baseline), u=u, p=p, ratio=ratio,
                        cles=u / (len(canary) * len(baseline)), reason=reason)


def _significant(rule: MetricRule, ratio: float, p: float, alpha: float) -> tuple[Verdict, str]:
    sig = f"p {p:.3g} < {alpha:.3g}"
    if ratio > rule.allowed_increase and rule.direction is not Direction.DECREASE:
        return Verdict.HIGH, f"{sig} and canary/baseline {ratio:.3g} > allowed {rule.allowed_increase:g}"
    if ratio < rule.allowed_decrease and rule.direction is not Direction.INCREASE:
        return Verdict.LOW, f"{sig} and canary/baseline {ratio:.3g} < allowed {rule.allowed_decrease:g}"
    return Verdict.PASS, (f"{sig} but canary/baseline {ratio:.3g} is within {rule.allowed_decrease:g}.."
                          f"{rule.allowed_increase:g} or in the harmless direction ({rule.direction.value})")


@dataclass(frozen=True)
class Thresholds:
    pass_score: float = 95.0
    marginal_score: float = 75.0
    group_weights: tuple[tuple[str, float], ...] = ()  # none: every group weighs the same


def thresholds_of(spec: JudgeSpec) -> Thresholds:
    return Thresholds(spec.pass_score, spec.marginal_score, tuple(sorted(spec.group_weights.items())))


def rules_of(spec: JudgeSpec) -> list[MetricRule]:
    """The spec's metrics as the judge's rules, with its confidence and minimum sample count."""
    return [MetricRule(m.name, m.group, m.direction, m.allowed_increase, m.allowed_decrease, m.critical, m.no_data,
                       spec.min_samples, spec.confidence) for m in spec.metrics]


@dataclass(frozen=True)
class Judgement:
    decision: Decision
    score: float | None  # None: no metric was scored
    metrics: tuple[MetricResult, ...]
    reason: str

    def describe(self) -> str:
        score = "no score" if self.score is None else f"score {self.score:.1f}"
        counts = ", ".join(f"{sum(m.verdict is v for m in self.metrics)} {v.value}" for v in Verdict
                           if any(m.verdict is v for m in self.metrics))
        return f"{self.decision.value}: {score} ({counts or 'no metrics'}): {self.reason}"


def scored(m: MetricResult) -> bool:
    return m.verdict is not Verdict.NODATA or m.no_data is NoDataPolicy.FAIL


def score(metrics: list[MetricResult], group_weights: dict[str, float] | None = None) -> float | None:
    """0-100: per group the share of its scored metrics that Pass, weighted by group (equal unless given; a group
    absent from the weights weighs 0 when weights are given). None when nothing is scored."""
    groups: dict[str, list[MetricResult]] = {}
    for m in metrics:
        if scored(m):
            groups.setdefault(m.group, []).append(m)
    if not groups:
        return None
    weights = {g: (group_weights.get(g, 0.0) if group_weights else 1.0) for g in groups}
    total = sum(weights.values())
    if total <= 0:
        return None
    return 100 * sum(weights[g] * sum(m.verdict is Verdict.PASS for m in ms) / len(ms)
                     for g, ms in groups.items()) / total


def judge(metrics: list[MetricResult], thresholds: Thresholds = Thresholds()) -> Judgement:
    """The step's decision from its metrics' verdicts."""
    s = score(metrics, dict(thresholds.group_weights) or None)
    critical = [m for m in metrics if m.critical and scored(m) and m.verdict is not Verdict.PASS]
    if critical:
        names = ", ".join(f"{m.name} {m.verdict.value}" for m in critical)
        return Judgement(Decision.FAIL, s, tuple(metrics), f"critical metric(s) failed: {names}")
    paused = [m.name for m in metrics if m.verdict is Verdict.NODATA and m.no_data is NoDataPolicy.PAUSE]
    if s is None:
        return Judgement(Decision.MARGINAL, None, tuple(metrics),
                         f"no metric had data ({len(metrics)} metric(s)); a human decides")
    if s < thresholds.marginal_score:
        return Judgement(Decision.FAIL, s, tuple(metrics), f"score {s:.1f} < marginal {thresholds.marginal_score:g}")
    if s < thresholds.pass_score:
        return Judgement(Decision.MARGINAL, s, tuple(metrics),
                         f"score {s:.1f} < pass {thresholds.pass_score:g} (>= marginal "
                         f"{thresholds.marginal_score:g})")
    if paused:
        return Judgement(Decision.MARGINAL, s, tuple(metrics),
                         f"score {s:.1f} >= pass {thresholds.pass_score:g}, but {len(paused)} metric(s) had no "
                         f"data: {', '.join(paused)}")
    return Judgement(Decision.PASS, s, tuple(metrics), f"score {s:.1f} >= pass {thresholds.pass_score:g}")
