"""HTTP probe analysis: GET `path` `requests_per_pod` times on each of up to `max_pods` ready canary pods and
as many stable pods, over one kept-alive port-forward connection per pod (`prefect_greenlight.tasks.kube.portforward.Tunnel`).

A request succeeds when it is answered with a non-5xx status (Flagger's request-success-rate). `judge` is pure:
  - canary success rate below `min_success_rate` -> Failed, unless stable fails as badly (then Inconclusive:
    something both versions depend on is broken, which says nothing about the canary);
  - canary more than `max_success_drop` below stable -> Failed;
  - canary latency percentile above `max_latency_ms`, or above `max_latency_ratio` x stable's (only when above
    `latency_floor_ms`, so port-forward noise on fast answers never fails a canary) -> Failed;
  - no answer at all from the canary -> Inconclusive.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from prefect_greenlight.tasks.canary.analysis import AnalysisContext, AnalysisResult, Outcome
from prefect_greenlight.tasks.decisions.workload import resolve_port, service_port
from prefect_greenlight.tasks.kube.client import Kube
from prefect_greenlight.tasks.kube.observe import ready_pods_of
from prefect_greenlight.tasks.kube.portforward import Target, Tunnel
from prefect_greenlight.tasks.spec.canary import HttpAnalysis


@dataclass(frozen=True)
class ProbeStats:
    sent: int
    succeeded: int
    latencies_ms: tuple[float, ...]
    pods: int

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.sent if self.sent else None

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile of answered requests."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    def describe(self, p: float) -> str:
        if not self.sent:
            return "no requests"
        lat = self.percentile(p)
        return (f"{self.succeeded}/{self.sent} non-5xx ({self.success_rate:.0%}) from {self.pods} pods, "
                f"p{p:g} {'-' if lat is None else f'{lat:.0f} ms'}")


def merge(stats: list[ProbeStats]) -> ProbeStats:
    return ProbeStats(sum(s.sent for s in stats), sum(s.succeeded for s in stats),
                      tuple(x for s in stats for x in s.latencies_ms), sum(s.pods for s in stats))


def judge(cfg: HttpAnalysis, canary: ProbeStats, stable: ProbeStats) -> tuple[Outcome, str]:
    p = cfg.percentile
    summary = f"canary {canary.describe(p)}; stable {stable.describe(p)}"
    c_rate, s_rate = canary.success_rate, stable.success_rate
    if c_rate is None or not canary.latencies_ms:
        return Outcome.INCONCLUSIVE, f"no answer from the canary: {summary}"
    if c_rate < cfg.min_success_rate:
        if s_rate is not None and s_rate < cfg.min_success_rate:
            return Outcome.INCONCLUSIVE, f"both versions below {cfg.min_success_rate:.0%} success: {summary}"
        return Outcome.FAILED, f"canary success rate {c_rate:.0%} < {cfg.min_success_rate:.0%}: {summary}"
    if s_rate is not None and c_rate < s_rate - cfg.max_success_drop:
        return Outcome.FAILED, (f"canary success rate {c_rate:.0%} is more than {cfg.max_success_drop:.0%} below "
                                f"stable's {s_rate:.0%}: {summary}")
    c_lat, s_lat = canary.percentile(p), stable.percentile(p)
    if c_lat is not None and c_lat > cfg.max_latency_ms:
        return Outcome.FAILED, f"canary p{p:g} {c_lat:.0f} ms > {cfg.max_latency_ms:.0f} ms: {summary}"
    if c_lat is not None and s_lat is not None and c_lat > cfg.latency_floor_ms and \
            c_lat > cfg.max_latency_ratio * s_lat:
        return Outcome.FAILED, (f"canary p{p:g} {c_lat:.0f} ms > {cfg.max_latency_ratio:g} x stable's "
                                f"{s_lat:.0f} ms: {summary}")
    return Outcome.SUCCESSFUL, summary


def _port(pod: dict, cfg: HttpAnalysis, service_ports: tuple[dict, ...]) -> int:
    """The Service port's targetPort as this pod declares it, unless the analysis names a port (preflight has
    checked that the canary declares every name needed; a stable pod lacking it is probed on 80 and fails)."""
    return resolve_port(pod["spec"], cfg.port, service_port(service_ports, cfg.service_port)) or 80


def probe_pod(kube: Kube, pod: dict, cfg: HttpAnalysis, service_ports: tuple[dict, ...] = ()) -> ProbeStats:
    """`requests_per_pod` GETs over one kept-alive connection (one port-forward stream), after one warm-up GET
    that is not counted: the first request's time is mostly the port-forward stream being set up through the
    apiserver and the kubelet, which says nothing about the version (and made a loaded machine's canary look 10x
    slower than stable). A failed warm-up is not counted either: the measured requests say whether the pod serves."""
    target = Target(pod["metadata"]["namespace"], pod["metadata"]["name"], _port(pod, cfg, service_ports))
    ok, latencies = 0, []
    with Tunnel(kube, target) as tunnel, requests.Session() as session:
        try:
            session.get(tunnel.url(cfg.path), timeout=cfg.timeout_s)
        except requests.RequestException:
            pass
        for _ in range(cfg.requests_per_pod):
            started = time.perf_counter()
            try:
                resp = session.get(tunnel.url(cfg.path), timeout=cfg.timeout_s)
            except requests.RequestException:
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            ok += resp.status_code < 500
    return ProbeStats(cfg.requests_per_pod, ok, tuple(latencies), 1)


class HttpProbe:
    name = "http"

    def __init__(self, kube: Kube, cfg: HttpAnalysis,
                 pods_of: Callable[[Kube, str, str], list[dict]] | None = None, service_ports: tuple[dict, ...] = ()):
        self.kube, self.cfg, self.service_ports = kube, cfg, service_ports
        self.pods_of = pods_of or ready_pods_of

    def _probe(self, pods: list[dict]) -> ProbeStats:
        if not pods:
            return ProbeStats(0, 0, (), 0)
        with ThreadPoolExecutor(max_workers=min(8, len(pods))) as pool:
            return merge(list(pool.map(lambda pod: probe_pod(self.kube, pod, self.cfg, self.service_ports), pods)))

    def analyse(self, ctx: AnalysisContext) -> AnalysisResult:
        canary_pods = self.pods_of(self.kube, ctx.namespace, ctx.canary)[: self.cfg.max_pods]
        stable_pods = self.pods_of(self.kube, ctx.namespace, ctx.stable)[: max(1, len(canary_pods))]
        canary, stable = self._probe(canary_pods), self._probe(stable_pods)
        outcome, message = judge(self.cfg, canary, stable)
        p = self.cfg.percentile
        return AnalysisResult(self.name, outcome, message, {
            "canary_success_rate": canary.success_rate, "stable_success_rate": stable.success_rate,
            f"canary_p{p:g}_ms": _round(canary.percentile(p)), f"stable_p{p:g}_ms": _round(stable.percentile(p)),
            "canary_pods": canary.pods, "stable_pods": stable.pods})


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)
