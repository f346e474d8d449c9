"""The canary replica plan (Argo's round-half-up rule, stable = total - canary) and the endpoint split check."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.decisions.canary import StepCounts, replica_counts, split_verdict, step_plan
from prefect_greenlight.tasks.decisions.endpoints import OTHER, EndpointCounts
from prefect_greenlight.tasks.spec.canary import DEFAULT_STEPS

# total -> [(canary, stable) for 10, 30, 50, 100 %]
PLANS = {
    1: [(1, 0), (1, 0), (1, 0), (1, 0)],      # at least one canary pod once percent > 0
    3: [(1, 2), (1, 2), (2, 1), (3, 0)],      # 0.3 -> 1 (minimum), 0.9 -> 1, 1.5 -> 2 (half up)
    10: [(1, 9), (3, 7), (5, 5), (10, 0)],    # the tutorial
    11: [(1, 10), (3, 8), (6, 5), (11, 0)],   # 1.1 -> 1, 3.3 -> 3, 5.5 -> 6 (half up)
    100: [(10, 90), (30, 70), (50, 50), (100, 0)],
}


@pytest.mark.parametrize("total", sorted(PLANS))
def test_default_steps(total):
    plan = step_plan(total, DEFAULT_STEPS)
    assert [(s.canary, s.stable) for s in plan] == PLANS[total]
    assert all(s.canary + s.stable == total for s in plan)
    assert [s.percent for s in plan] == list(DEFAULT_STEPS)


@pytest.mark.parametrize("total,percent,canary", [
    (10, 41, 4), (10, 45, 5), (10, 44, 4), (10, 1, 1), (10, 0, 0), (10, 99, 10), (4, 25, 1), (4, 37, 1),
    (4, 38, 2), (200, 1, 2), (7, 50, 4),
])
def test_rounding(total, percent, canary):
    assert replica_counts(total, percent) == StepCounts(percent, canary, total - canary)


@pytest.mark.parametrize("total,percent", [(0, 10), (10, 101), (10, -1)])
def test_rejects_nonsense(total, percent):
    with pytest.raises(ValueError):
        replica_counts(total, percent)


def test_split_exact():
    want = StepCounts(30, 3, 7)
    ok = split_verdict(EndpointCounts({"v2": 3, "v1": 7}, {"v1": 2}), "v2", "v1", want)
    assert ok.ok and ok.message == "3 canary / 7 stable ready endpoints"
    short = split_verdict(EndpointCounts({"v2": 3, "v1": 8}), "v2", "v1", want)
    assert not short.ok and "3 canary / 8 stable ready endpoints, want 3 / 7" in short.message
    stray = split_verdict(EndpointCounts({"v2": 3, "v1": 7, OTHER: 1}), "v2", "v1", want)
    assert not stray.ok and "1 of unknown owners" in stray.message
    final = split_verdict(EndpointCounts({"v2": 10}), "v2", "v1", StepCounts(100, 10, 0))
    assert final.ok and (final.canary_ready, final.stable_ready) == (10, 0)
