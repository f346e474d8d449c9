"""Pure decisions of a canary release: replica counts per step, and whether the Service's EndpointSlices hold
exactly the expected split. No I/O here; table-tested in tests/unit/test_canary_plan.py.

Without a traffic router the traffic weight is approximated by replica counts (Argo Rollouts' basic canary):
a Service selecting both versions spreads connections roughly evenly over all ready endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect_greenlight.tasks.decisions.endpoints import OTHER, EndpointCounts


@dataclass(frozen=True)
class StepCounts:
    percent: int
    canary: int
    stable: int
    baseline: int = 0  # pods of the same-age baseline (`baseline: true`), taken from stable's share

    def describe(self) -> str:
        if self.baseline:
            return f"{self.percent} %: {self.canary} canary / {self.baseline} baseline / {self.stable} stable"
        return f"{self.percent} %: {self.canary} canary / {self.stable} stable"


def replica_counts(total: int, percent: int) -> StepCounts:
    """Canary and stable replicas for one step.

    Rounding (Argo Rollouts' CalculateReplicaCountsForBasicCanary, without a traffic router):
      canary = round-half-up(total * percent / 100), at least 1 once percent > 0, at most total;
      stable = total - canary, for every step (so 10 % of 10 -> 1 canary / 9 stable, 41 % of 10 -> 4 / 6).

    The tutorial's first step shows 1 canary BESIDE 10 stable (11 pods). We keep the sum at `total` instead,
    so the ratio is exact at every step and the last step ends with exactly `total` canary pods. Capacity
    never drops below `total` anyway: each step scales the canary up and waits until it is READY before it
    scales stable down, so during a step the Service briefly has total + delta ready pods, never fewer than
    total. Integer arithmetic only (no float rounding surprises): round-half-up(x/100) = (x + 50) // 100.
    """
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be 0..100, got {percent}")
    canary = (total * percent + 50) // 100
    if percent > 0:
        canary = max(canary, 1)
    canary = min(canary, total)
    return StepCounts(percent, canary, total - canary)


def with_baseline(counts: StepCounts) -> StepCounts:
    """A step's counts with a baseline beside the canary: as many pods as the canary, at most what stable has
    left (baseline = min(canary, total - canary)), taken from stable: stable = total - canary - baseline. So the
    canary's share of the pods is unchanged and baseline pods get what canary pods get, one pod's share each
    (10 of 10 at 10 %: 1 canary / 1 baseline / 8 stable; at 50 %: 5 / 5 / 0; at 70 %: 7 / 3 / 0; at 100 %: none)."""
    total = counts.canary + counts.stable
    baseline = min(counts.canary, total - counts.canary)
    return StepCounts(counts.percent, counts.canary, total - counts.canary - baseline, baseline)


def step_plan(total: int, steps: list[int] | tuple[int, ...], baseline: bool = False) -> list[StepCounts]:
    """Counts for every step. Steps whose counts equal the previous step's are kept (their analysis and pause
    still happen); with total 1 every step is 1 canary / 0 stable."""
    plan = [replica_counts(total, p) for p in steps]
    return [with_baseline(c) for c in plan] if baseline else plan


def moves(current: StepCounts, want: StepCounts) -> tuple[tuple[str, int], ...]:
    """Which Deployments to scale to what, in order, so capacity never drops below the total: every raise
    (canary, baseline, stable) before any lower (stable, baseline, canary)."""
    pairs = (("canary", current.canary, want.canary), ("baseline", current.baseline, want.baseline),
             ("stable", current.stable, want.stable))
    raises = [(name, to) for name, now, to in pairs if to > now]
    lowers = [(name, to) for name, now, to in reversed(pairs) if to < now]
    return tuple(raises + lowers)


@dataclass(frozen=True)
class SplitVerdict:
    ok: bool
    message: str
    canary_ready: int
    stable_ready: int


def split_verdict(counts: EndpointCounts, canary: str, stable: str, want: StepCounts,
                  baseline: str | None = None) -> SplitVerdict:
    """The Service's READY endpoints are exactly `want.canary` pods of `canary` and `want.stable` of `stable`
    (and `want.baseline` of `baseline` when there is one), and nothing else. Not-ready endpoints (terminating pods
    of a scale-down) are ignored."""
    c, s = counts.ready.get(canary, 0), counts.ready.get(stable, 0)
    b = counts.ready.get(baseline, 0) if baseline else 0
    names = (canary, stable, baseline) if baseline else (canary, stable)
    strays = {k: v for k, v in counts.ready.items() if k not in names}
    if strays:
        listed = ", ".join(f"{v} of {'unknown owners' if k == OTHER else k}" for k, v in sorted(strays.items()))
        return SplitVerdict(False, f"Service has ready endpoints outside {'/'.join(names)}: {listed}", c, s)
    got, wanted = (c, s, b), (want.canary, want.stable, want.baseline)
    mid = f" / {b} baseline" if baseline else ""
    if got != wanted:
        want_mid = f" / {want.baseline}" if baseline else ""
        return SplitVerdict(False, f"{c} canary{mid} / {s} stable ready endpoints, want {want.canary}{want_mid} / "
                            f"{want.stable}", c, s)
    return SplitVerdict(True, f"{c} canary{mid} / {s} stable ready endpoints", c, s)


def overlapping(selector_a: dict[str, str], labels_b: dict[str, str]) -> bool:
    """Does selector A also select pods labelled B? (Overlapping Deployment selectors: a warning, not an error.)"""
    return bool(selector_a) and all(labels_b.get(k) == v for k, v in selector_a.items())
