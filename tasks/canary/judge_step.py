"""`judge-<p>`: the canary against its same-age baseline (tasks/decisions/judge.py, Kayenta's method). Over the
step's window (`count` rounds `interval_s` apart) it samples both pod sets the same way at the same moments:

- HTTP probes through port-forward (tasks/canary/analysis/http_probe.probe_pod) to up to `max_pods` ready pods
  of each set, in parallel: each answer's time (`http-latency`, ms) and whether it failed (`http-errors`: 1 for a
  5xx or no answer, else 0);
- Prometheus range queries over the window (`prometheus`), once per set with `{pods}` replaced by a regex of that
  set's pod names: every value of every series is a sample.

Then the pure judge decides: pass goes on, marginal pauses for a human, fail aborts. The report: a table artifact
per step (each metric's medians, U, p, effect, verdict), a markdown artifact with the score and text histograms,
and an image artifact per HTTP latency metric (canary vs baseline distributions as an SVG data URL).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from prefect.artifacts import create_image_artifact

from prefect_greenlight.tasks.canary.analysis.http_probe import probe_pod
from prefect_greenlight.tasks.decisions.judge import Judgement, judge, judge_metric, rules_of, thresholds_of
from prefect_greenlight.tasks.decisions.judge_picture import data_url, svg, text_bars
from prefect_greenlight.tasks.kube.client import Kube
from prefect_greenlight.tasks.kube.observe import ready_pods_of
from prefect_greenlight.tasks.record.report import artifact_key, in_run, markdown_artifact, say, table_artifact
from prefect_greenlight.tasks.spec.judge import PODS_PLACEHOLDER, JudgeMetric, JudgeSpec, MetricSource

SETS = ("canary", "baseline")


@dataclass(frozen=True)
class PodSets:
    namespace: str
    canary: str  # Deployment names
    baseline: str


@dataclass
class Samples:
    """Every metric's samples per set, gathered over the window."""

    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    pods: dict[str, set[str]] = field(default_factory=lambda: {s: set() for s in SETS})

    def add(self, metric: str, which: str, xs: list[float]) -> None:
        self.values.setdefault(metric, {s: [] for s in SETS})[which].extend(xs)

    def of(self, metric: str) -> dict[str, list[float]]:
        return self.values.get(metric, {s: [] for s in SETS})


def _probe_set(kube: Kube, pods: list[dict], spec: JudgeSpec, ports: tuple[dict, ...]) -> tuple[list, list]:
    """(latencies ms, error flags) of one round over a set's pods; a pod that cannot be reached adds errors."""
    if not pods:
        return [], []

    def one(pod: dict) -> tuple[list[float], list[float]]:
        try:
            stats = probe_pod(kube, pod, spec.http, ports)
        except Exception:  # noqa: BLE001 - an unreachable pod is what the error metric counts
            return [], [1.0] * spec.http.requests_per_pod
        return list(stats.latencies_ms), [0.0] * stats.succeeded + [1.0] * (stats.sent - stats.succeeded)

    with ThreadPoolExecutor(max_workers=min(8, len(pods))) as pool:
        found = list(pool.map(one, pods))
    return [x for lat, _ in found for x in lat], [x for _, err in found for x in err]


def sample_round(kube: Kube, sets: PodSets, spec: JudgeSpec, ports: tuple[dict, ...], samples: Samples,
                 pods_of: Callable[[Kube, str, str], list[dict]] = ready_pods_of) -> str:
    """One round: both sets probed at once; the HTTP metrics' samples added. Returns the round's counts."""
    chosen = {s: pods_of(kube, sets.namespace, getattr(sets, s))[: spec.http.max_pods] for s in SETS}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(SETS, pool.map(lambda s: _probe_set(kube, chosen[s], spec, ports), SETS)))
    for which, (latencies, errors) in results.items():
        samples.pods[which] |= {p["metadata"]["name"] for p in chosen[which]}
        for m in spec.metrics:
            if m.source is MetricSource.HTTP_LATENCY:
                samples.add(m.name, which, latencies)
            elif m.source is MetricSource.HTTP_ERRORS:
                samples.add(m.name, which, errors)
    return ", ".join(f"{s} {len(chosen[s])} pod(s) {len(results[s][0])} answer(s)" for s in SETS)


def prometheus_samples(m: JudgeMetric, namespace: str, pods: set[str], start: float, end: float,
                       session: requests.Session) -> list[float]:
    """Every value of the range query over [start, end] for one pod set; [] when Prometheus has none (NoData)."""
    if not pods:
        return []
    # pod names are DNS-1123: only "." is special in a regex; "[.]" needs no backslash, which a double-quoted PromQL
    # string would take as an escape of its own
    regex = "|".join(p.replace(".", "[.]") for p in sorted(pods))
    query = m.query.replace(PODS_PLACEHOLDER, regex).replace("{namespace}", namespace)
    try:
        body = session.get(f"{m.url.rstrip('/')}/api/v1/query_range", timeout=10, params={
            "query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{m.step_s:g}"}).json()
    except (requests.RequestException, ValueError) as exc:
        say(f"judge: Prometheus {m.url} unreachable for {m.name}: {exc}")
        return []
    if body.get("status") != "success":
        say(f"judge: Prometheus query for {m.name} failed: {body.get('error', '?')}")
        return []
    out = []
    for series in (body.get("data") or {}).get("result") or []:
        for _, raw in series.get("values") or []:
            try:
                v = float(raw)
            except (TypeError, ValueError):
                continue
            if not math.isnan(v):
                out.append(v)
    return out


def run_judge(kube: Kube, sets: PodSets, spec: JudgeSpec, interval_s: float, count: int,
              ports: tuple[dict, ...] = (), sleep: Callable[[float], None] = time.sleep) -> tuple[Judgement, Samples]:
    """`count` rounds of samples `interval_s` apart, the range queries over the window, then the judgement."""
    samples, start, started = Samples(), time.time(), time.monotonic()
    for n in range(1, count + 1):
        if n > 1:
            sleep(max(0.0, started + (n - 1) * interval_s - time.monotonic()))
        say(f"judge round {n}/{count}: {sample_round(kube, sets, spec, ports, samples)}")
    end = time.time()
    with requests.Session() as session:
        for m in spec.metrics:
            if m.source is MetricSource.PROMETHEUS:
                for which in SETS:
                    samples.add(m.name, which, prometheus_samples(m, sets.namespace, samples.pods[which],
                                                                  start, end, session))
    results = [judge_metric(rule, samples.of(rule.name)["canary"], samples.of(rule.name)["baseline"])
               for rule in rules_of(spec)]
    return judge(results, thresholds_of(spec)), samples


def report(key: str, percent: int, judgement: Judgement, samples: Samples, spec: JudgeSpec) -> list[dict]:
    """The step's artifacts: the table, the markdown with text histograms, an image per latency metric."""
    rows = [{"step": f"{percent} %", "provider": f"judge {m.name}", "outcome": m.verdict.value, "message": m.reason,
             **m.row()} for m in judgement.metrics]
    table_artifact(f"{key}-table", rows, f"Canary judge at {percent} %: {judgement.describe()}")
    units = {m.name: "ms" if m.source is MetricSource.HTTP_LATENCY else "" for m in spec.metrics}
    bars = "\n\n".join(f"```\n{text_bars(m.name, units[m.name], samples.of(m.name))}\n```" for m in spec.metrics)
    markdown_artifact(f"{key}-report", f"### Canary judge at {percent} %\n\n**{judgement.decision.value}**: "
                      f"{judgement.describe()}\n\n{bars}\n", f"Canary vs baseline at {percent} %")
    for m in spec.metrics:
        if m.source is MetricSource.HTTP_LATENCY and in_run():
            try:
                create_image_artifact(image_url=data_url(svg(m.name, "ms", samples.of(m.name))),
                                      key=artifact_key(key, m.name),
                                      description=f"{m.name}: canary vs baseline at {percent} %")
            except Exception as exc:  # noqa: BLE001 - a picture is a report, not a release step
                say(f"could not record the {m.name} picture: {exc}")
    return rows
