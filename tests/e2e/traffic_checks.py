"""What the ClusterIP traffic of a scenario must show, held against the EndpointSlices the sampler recorded
(tests/e2e/sampler.py calls `judge_traffic` when its block ends without an exception):

1. No failed request (connection errors, timeouts, 5xx) — unless the sampler was made with `expect_failures`,
   where the test asserts its own bound (a version that dies under traffic).
2. No *new* connection answered by a Deployment more than PROXY_LAG_S after the Service's ready endpoints stopped
   including it (kube-proxy has caught up by then; a keep-alive connection may stay on its pod, as in any
   cluster, until it is replaced).
3. Wherever the ready endpoints held still for longer than PROXY_LAG_S + MIN_WINDOW_S, each Deployment's share of
   answers on new connections matches its share of ready endpoints within z = 4 standard deviations (kube-proxy
   picks a backend at random per new connection, so those answers are independent draws; see traffic.share).
"""

from __future__ import annotations

from dataclasses import dataclass

# kube-proxy's minSyncPeriod (1 s, the default) + the EndpointSlice controller + one sync, on a busy 2-core host:
# typically 0.02-0.9 s, but kube-proxy's own histogram (printed in the session summary) has a tail past 3 s under
# load (a stale answer at 2.5 s failed one CI run). Below the pods' 6-7 s drain (kwok-stages.yaml `pod-delete`).
PROXY_LAG_S = 4.0
MIN_WINDOW_S = 2.0  # a window shorter than this holds too few requests to judge a share
MIN_DRAWS = 40


@dataclass(frozen=True)
class Interval:
    start: float  # wall clock
    end: float
    ready: dict[str, int]  # Deployment -> ready endpoints


def intervals(sampler, end_wall: float) -> list[Interval]:
    """The sampler's instants as wall-clock intervals of constant ready endpoints per Deployment."""
    counts = sampler.ready_by_deployment()
    starts = [i.t + sampler.wall_offset for i in sampler.instants]
    out = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else end_wall
        if end > start:
            out.append(Interval(start, end, counts[k]))
    return out


def stale_answers(result, spans: list[Interval]) -> list[tuple[str, float, str]]:
    """(deployment, time, pod) of new-connection answers from a Deployment whose ready endpoints had left the
    Service more than PROXY_LAG_S before. Only after they left: before a Deployment's endpoints first appear in
    the sampler's record, an answer from it means the sampler's own watch saw the EndpointSlice later than
    kube-proxy did (kube-proxy routes only to what a slice holds, and the sampler watches the same slices), not
    that traffic went astray; a loaded CI host once delayed that watch by over 4 s."""
    out: list[tuple[str, float, str]] = []
    seen: set[str] = set()
    for span in spans:
        present = {d for d, n in span.ready.items() if n > 0}
        seen |= present
        absent = seen - present
        if not absent or span.end - span.start <= PROXY_LAG_S:
            continue
        for r in result.answered(span.start + PROXY_LAG_S, span.end):
            if r.conn == "new" and r.deployment in absent:
                out.append((r.deployment, r.t, r.pod))
    return out


def share_misses(result, spans: list[Interval]) -> list[str]:
    """Check 3. A window ends early at the first answer from a Deployment the sampler has not recorded yet but
    does later: from then on kube-proxy knows a slice the sampler's watch has not delivered (see stale_answers), so
    the recorded endpoints no longer describe what kube-proxy routes to. An answer from a Deployment the sampler
    never records still counts against the share."""
    misses = []
    later = _first_seen(spans)
    for k, span in enumerate(spans):
        total = sum(span.ready.values())
        start = span.start + PROXY_LAG_S
        ahead = {d for d, first in later.items() if first > k}
        end = min([r.t for r in result.answered(start, span.end) if r.conn == "new" and r.deployment in ahead],
                  default=span.end)
        if total == 0 or end - start < MIN_WINDOW_S:
            continue
        if len([r for r in result.answered(start, end) if r.conn == "new"]) < MIN_DRAWS:
            continue
        for deployment, n in span.ready.items():
            check = result.share(deployment, n / total, start, end)
            if not check.ok:
                misses.append(f"{deployment} with {n} of {total} ready endpoints: {check.describe()}")
    return misses


def _first_seen(spans: list[Interval]) -> dict[str, int]:
    """Deployment -> the index of the first span in which it has ready endpoints."""
    first: dict[str, int] = {}
    for k, span in enumerate(spans):
        for deployment, n in span.ready.items():
            if n > 0:
                first.setdefault(deployment, k)
    return first


def judge_traffic(sampler) -> None:
    """Assert 1-3 above; stale answers are also counted in the session's tally as forbidden."""
    result = sampler.requests
    failed = result.failed()
    if not sampler.expect_failures:
        assert not failed, (f"{len(failed)} of {result.sent()} requests through the ClusterIP failed: "
                            f"{[(round(r.t, 2), r.status, r.pod, r.error) for r in failed[:5]]}; {result.summary()}")
    spans = intervals(sampler, result.ended)
    stale = stale_answers(result, spans)
    for deployment, t, _pod in stale:
        sampler.traffic.forbid(deployment, after=t, before=t + 1e-6)
    assert not stale, (f"{len(stale)} new connections answered by a Deployment without ready endpoints for over "
                       f"{PROXY_LAG_S} s: {stale[:5]}; {sampler.describe()}")
    misses = share_misses(result, spans)
    assert not misses, "answers do not follow the ready endpoints: " + "; ".join(misses[:5])


def serving_window(sampler, deployment: str) -> tuple[float, float] | None:
    """Wall-clock span from the first to the end of the last instant in which `deployment` had ready endpoints."""
    spans = [s for s in intervals(sampler, sampler.requests.ended) if s.ready.get(deployment)]
    return (spans[0].start, spans[-1].end) if spans else None


def assert_failures_only_while_serving(sampler, deployment: str) -> int:
    """For a scenario that must lose requests (`deployment` fails under traffic, then is rolled back): every failed
    request was sent while the Service routed to `deployment` (until PROXY_LAG_S after its endpoints went), and
    every failed answer came from it. Returns (and prints) the count."""
    result = sampler.requests
    failed = result.failed()
    window = serving_window(sampler, deployment)
    assert window is not None, f"{deployment} never served: {sampler.describe()}"
    start, end = window[0], window[1] + PROXY_LAG_S
    outside = [r for r in failed if not start <= r.t <= end]
    foreign = [r for r in failed if r.pod and r.deployment != deployment]
    print(f"\n{len(failed)} of {result.sent()} requests failed while {deployment} served "
          f"({end - start:.1f} s, until its endpoints were gone + {PROXY_LAG_S} s)")
    assert not outside, f"{len(outside)} failures outside [{start:.2f}, {end:.2f}]: {outside[:3]}"
    assert not foreign, f"{len(foreign)} failures answered by other Deployments: {foreign[:3]}"
    return len(failed)
