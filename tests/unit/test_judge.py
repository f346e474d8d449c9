"""The canary judge (tasks/decisions/judge.py) on fixed sample sets: U and p equal scipy's, effect sizes equal
hand-computed ones (ties, empty sets), verdicts and scores as Kayenta's NetflixACAJudge documents them."""

from __future__ import annotations

import math

import pytest
from scipy.stats import mannwhitneyu

from prefect_greenlight.tasks.decisions.judge import (
    Decision,
    Direction,
    MetricResult,
    MetricRule,
    NoDataPolicy,
    Thresholds,
    Verdict,
    judge,
    judge_metric,
    mean_ratio,
    score,
    u_test,
)

# Kayenta's ClassifierSuite (spinnaker/kayenta, kayenta-judge, Apache-2.0): its sample vectors, 30 each, judged
# with fraction 0.10 (allowed 1.1 / 0.9) at 95 % confidence. The numbers only.
K_NEAR_10_A = [9.7767343120109462, 10.587071850477695, 7.8375506388901766, 9.3243326886113884, 8.3774505409784421,
               8.9359264399606282, 8.2707663324728511, 9.7484308126716925, 11.623746715547156, 9.2753442679633942,
               8.1538047749171518, 10.562020975754294, 13.498135575451835, 11.054419256110332, 6.9538903590055092,
               12.521008342195479, 9.0216358603546443, 4.9234856699531662, 11.251360203607172, 11.598449508040337,
               8.435232204668182, 11.110228516867279, 10.70063380164755, 8.9212773652115249, 10.086167067942661,
               11.42107515483087, 9.3792347813644952, 7.7980320148552593, 10.62339807275746, 11.909642062063739]
K_NEAR_10_B = [11.1453586774086, 9.9618059885597017, 7.068574306369829, 7.3012661810483657, 9.7944630265656727,
               9.6037918603687302, 6.1867793350339388, 12.345599159550174, 10.371891733859533, 8.6094300785016724,
               9.913162673361084, 10.361375299003466, 14.206800387518818, 10.946153754753301, 10.215876627044048,
               11.739760899484603, 10.907627468626439, 12.823353694464775, 8.1018609771732137, 8.4981616408804932,
               12.113441374697231, 13.272210809932028, 10.114579381663297, 6.9463958767978067, 6.2105278541727778,
               10.160401684903775, 8.3457712066455461, 8.383822063895833, 7.0020205070083765, 10.755757401808442]
K_NEAR_20_A = [20.878412601720026, 21.78550581191622, 19.70828084717019, 15.859946903461562, 19.510058772176841,
               19.392005525270303, 22.926528314912101, 17.156530276709894, 18.655117916226171, 23.422607911610392,
               24.055817684156644, 22.62689958516501, 21.979472967817678, 21.659318607218694, 20.067707574072426,
               22.119570836305414, 16.44037132663307, 21.559622826341268, 21.000181443489218, 17.779369411412663,
               17.806006358943584, 18.537200618386109, 20.555550300210797, 19.552928184468378, 21.771118944087092,
               21.809622806176627, 20.961762909905271, 20.977571577503021, 19.106303205498794, 16.976918966987078]
K_NEAR_20_B = [20.758113589510348, 22.802059629464559, 20.612340363492208, 20.973274654749986, 23.469237330498622,
               21.53133988954805, 21.767353687439805, 18.308050730374301, 19.062145167827566, 25.879498436001779,
               18.982629726336128, 19.387920182269266, 18.995398251246982, 24.228420230932805, 20.050985172694688,
               18.2340451091756, 17.870515494460435, 23.058103863806618, 18.400259567501134, 16.971352091177167,
               19.467529066052151, 17.90465423342031, 17.553948617825831, 16.104611843907193, 24.38171081433039,
               15.919294339922635, 20.479409626304697, 19.08307201492406, 17.455788050722866, 18.853826823235142]

KAYENTA = dict(allowed_increase=1.1, allowed_decrease=0.9, confidence=0.95, min_samples=1)


@pytest.mark.parametrize("canary, baseline, direction, verdict", [
    (K_NEAR_10_A, K_NEAR_10_B, Direction.EITHER, Verdict.PASS),      # "Pass Metric"
    (K_NEAR_20_A, K_NEAR_10_B, Direction.EITHER, Verdict.HIGH),      # "High Metric"
    (K_NEAR_10_A, K_NEAR_20_B, Direction.EITHER, Verdict.LOW),       # "Low Metric"
    (K_NEAR_10_A, K_NEAR_20_B, Direction.INCREASE, Verdict.PASS),    # "Directional Test: Increase"
    (K_NEAR_20_A, K_NEAR_10_B, Direction.DECREASE, Verdict.PASS),    # "Directional Test: Decrease"
    (K_NEAR_20_A, K_NEAR_10_B, Direction.INCREASE, Verdict.HIGH),    # "Directional Test: High Metric"
    (K_NEAR_10_A, K_NEAR_20_B, Direction.DECREASE, Verdict.LOW),     # "Directional Test: Low Metric"
])
def test_kayenta_classifier_cases(canary, baseline, direction, verdict):
    result = judge_metric(MetricRule("m", direction=direction, **KAYENTA), canary, baseline)
    assert result.verdict is verdict, result.reason
    ref = mannwhitneyu(canary, baseline, alternative="two-sided")
    assert result.u == pytest.approx(float(ref.statistic))
    assert result.p == pytest.approx(float(ref.pvalue))


@pytest.mark.parametrize("canary, baseline", [
    ([1, 2, 3], [4, 5, 6]),
    ([1, 2, 2, 3], [2, 3, 3, 4]),               # ties across the sets
    ([5, 5, 5, 6, 7], [5, 5, 6, 6, 8, 9]),      # ties inside and across, unequal sizes
    (K_NEAR_10_A[:12], K_NEAR_10_B[:9]),        # the exact distribution (small, no ties)
])
def test_u_and_p_equal_scipy(canary, baseline):
    u, p = u_test(canary, baseline)
    ref = mannwhitneyu(canary, baseline, alternative="two-sided")
    assert (u, p) == pytest.approx((float(ref.statistic), float(ref.pvalue)))


def test_u_and_cles_by_hand_with_ties():
    # canary 1,2,2,3 vs baseline 2,3,3,4: pairs where canary > baseline count 1, ties 1/2:
    # 1 -> 0; 2 -> 0.5 (tie with 2) twice; 3 -> 1 (> 2) + 0.5 + 0.5 (ties with 3, 3) = 2. U = 3 of 16.
    r = judge_metric(MetricRule("m", min_samples=1), [1, 2, 2, 3], [2, 3, 3, 4])
    assert r.u == 3.0
    assert r.cles == pytest.approx(3 / 16)
    assert r.ratio == pytest.approx(2.0 / 3.0)  # means 2 and 3
    assert (r.canary_median, r.baseline_median) == (2.0, 3.0)


def test_all_values_equal_is_a_pass_with_p_1_not_nan():
    r = judge_metric(MetricRule("errors", min_samples=3), [0, 0, 0, 0], [0, 0, 0])
    assert (r.verdict, r.u, r.p, r.ratio, r.cles) == (Verdict.PASS, 6.0, 1.0, 1.0, 0.5)


def test_mean_ratio_edges():
    assert mean_ratio([0, 0], [0, 0]) == 1.0
    assert mean_ratio([1, 0], [0, 0]) == math.inf
    assert mean_ratio([13, 13], [10, 10]) == pytest.approx(1.3)


@pytest.mark.parametrize("canary, baseline", [([], []), ([], [1.0] * 20), ([1.0] * 20, []),
                                              ([1.0] * 9, [1.0] * 20), ([float("nan")] * 20, [1.0] * 20)])
def test_too_few_samples_is_nodata_never_pass(canary, baseline):
    r = judge_metric(MetricRule("latency", min_samples=10), canary, baseline)
    assert r.verdict is Verdict.NODATA
    assert r.u is None and r.p is None
    assert f"{r.n_canary} canary and {r.n_baseline} baseline samples; 10 of each needed" == r.reason


def test_significant_but_within_the_allowed_band_passes():
    canary = [100 + i * 0.01 for i in range(50)]
    baseline = [99 + i * 0.01 for i in range(50)]  # every canary sample larger: p tiny, ratio ~1.01
    r = judge_metric(MetricRule("latency"), canary, baseline)
    assert r.p < 1e-6 and r.verdict is Verdict.PASS


def _m(name: str, verdict: Verdict, group: str = "g", critical: bool = False,
       no_data: NoDataPolicy = NoDataPolicy.PAUSE) -> MetricResult:
    return MetricResult(name, group, verdict, critical, no_data, 0, 0)


# Kayenta's ScorerSuite (WeightedSumScorer): one group, 1/2/3 metrics; two groups weighted 75/25 and 50/50;
# a single NoData scores 0; a critical High scores 0.
@pytest.mark.parametrize("metrics, weights, want", [
    ([_m("a", Verdict.PASS)], None, 100.0),
    ([_m("a", Verdict.HIGH)], None, 0.0),
    ([_m("a", Verdict.PASS), _m("b", Verdict.HIGH)], None, 50.0),
    ([_m("a", Verdict.PASS), _m("b", Verdict.HIGH), _m("c", Verdict.LOW)], None, 100 / 3),
    ([_m("a", Verdict.PASS, "g1"), _m("b", Verdict.PASS, "g1"), _m("c", Verdict.HIGH, "g2")],
     {"g1": 75, "g2": 25}, 75.0),
    ([_m("a", Verdict.PASS, "g1"), _m("b", Verdict.HIGH, "g1"), _m("c", Verdict.HIGH, "g2")],
     {"g1": 50, "g2": 50}, 25.0),
    ([_m("a", Verdict.NODATA, no_data=NoDataPolicy.FAIL)], None, 0.0),
    ([_m("a", Verdict.NODATA)], None, None),  # pause / ignore: not scored
    ([_m("a", Verdict.PASS), _m("b", Verdict.NODATA, no_data=NoDataPolicy.IGNORE)], None, 100.0),
])
def test_scores(metrics, weights, want):
    got = score(metrics, weights)
    assert got == (None if want is None else pytest.approx(want))


def test_critical_failure_fails_whatever_the_score():
    j = judge([_m("a", Verdict.PASS), _m("b", Verdict.PASS), _m("c", Verdict.HIGH, critical=True)],
              Thresholds(pass_score=60, marginal_score=50))
    assert j.decision is Decision.FAIL and j.score == pytest.approx(200 / 3)
    assert "critical metric(s) failed: c High" in j.reason


def test_critical_nodata_fails_only_under_the_fail_policy():
    pause = judge([_m("a", Verdict.PASS), _m("c", Verdict.NODATA, critical=True)])
    fail = judge([_m("a", Verdict.PASS), _m("c", Verdict.NODATA, critical=True, no_data=NoDataPolicy.FAIL)])
    assert (pause.decision, fail.decision) == (Decision.MARGINAL, Decision.FAIL)


@pytest.mark.parametrize("verdicts, want", [
    ([Verdict.PASS] * 20, Decision.PASS),                           # 100
    ([Verdict.PASS] * 19 + [Verdict.HIGH], Decision.PASS),          # 95 >= pass 95
    ([Verdict.PASS] * 18 + [Verdict.HIGH] * 2, Decision.MARGINAL),  # 90
    ([Verdict.PASS] * 15 + [Verdict.HIGH] * 5, Decision.MARGINAL),  # 75 >= marginal 75
    ([Verdict.PASS] * 14 + [Verdict.LOW] * 6, Decision.FAIL),       # 70
])
def test_thresholds(verdicts, want):
    assert judge([_m(str(i), v) for i, v in enumerate(verdicts)]).decision is want


def test_nodata_pauses_instead_of_passing():
    j = judge([_m("latency", Verdict.PASS), _m("queue", Verdict.NODATA)])
    assert j.decision is Decision.MARGINAL and j.score == 100.0
    assert "1 metric(s) had no data: queue" in j.reason
    nothing = judge([_m("latency", Verdict.NODATA), _m("errors", Verdict.NODATA)])
    assert nothing.decision is Decision.MARGINAL and nothing.score is None
    assert "no metric had data (2 metric(s))" in nothing.reason
    assert judge([_m("latency", Verdict.PASS), _m("q", Verdict.NODATA, no_data=NoDataPolicy.IGNORE)]).decision \
        is Decision.PASS


def test_latency_30_percent_higher_is_high_and_fails():
    baseline = [50 + (i * 37) % 21 - 10 for i in range(60)]      # 40..60 ms spread
    canary = [x * 1.3 for x in baseline]
    r = judge_metric(MetricRule("latency", critical=True), canary, baseline)
    assert r.verdict is Verdict.HIGH and r.ratio == pytest.approx(1.3)
    assert judge([r]).decision is Decision.FAIL


def test_row_is_the_reports():
    r = judge_metric(MetricRule("m", min_samples=1), [1, 2, 2, 3], [2, 3, 3, 4])
    assert set(r.row()) == {"metric", "group", "verdict", "canary_median", "baseline_median", "n_canary",
                            "n_baseline", "U", "p", "ratio", "CLES", "critical", "reason"}
    assert r.row()["verdict"] == "Pass" and r.row()["U"] == 3.0
