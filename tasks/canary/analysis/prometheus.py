"""Prometheus analysis: one instant query (`GET {url}/api/v1/query?query=...`) compared with a threshold.

The query may name the versions: `{canary}`, `{stable}`, `{namespace}` are replaced before it is sent. The
answer must be a scalar or a vector with exactly one sample. No sample, NaN, several samples, an HTTP error or
an unreachable server -> Inconclusive ("no values found" is no verdict: Argo's and Kayenta's lesson).
"""

from __future__ import annotations

import math
import operator

import requests

from prefect_greenlight.tasks.canary.analysis import AnalysisContext, AnalysisResult, Outcome
from prefect_greenlight.tasks.spec.canary import Comparison, PrometheusAnalysis

_OPS = {Comparison.LT: operator.lt, Comparison.LE: operator.le, Comparison.GT: operator.gt,
        Comparison.GE: operator.ge}


def render(query: str, ctx: AnalysisContext) -> str:
    return (query.replace("{canary}", ctx.canary).replace("{stable}", ctx.stable)
            .replace("{namespace}", ctx.namespace))


def value_of(body: dict) -> tuple[float | None, str]:
    """The single value of a Prometheus query answer, or (None, why not)."""
    if body.get("status") != "success":
        return None, f"query failed: {body.get('errorType', '?')}: {body.get('error', '?')}"
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        raw = result[1] if isinstance(result, list) and len(result) == 2 else None
    elif kind == "vector":
        if not result:
            return None, "no values found"
        if len(result) > 1:
            return None, f"{len(result)} samples; the query must return one"
        raw = (result[0].get("value") or [None, None])[1]
    else:
        return None, f"unsupported result type {kind!r}"
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None, f"not a number: {raw!r}"
    if math.isnan(value):
        return None, "NaN"
    return value, ""


def judge(cfg: PrometheusAnalysis, value: float | None, why: str) -> tuple[Outcome, str]:
    if value is None:
        return Outcome.INCONCLUSIVE, why
    ok = _OPS[cfg.condition](value, cfg.threshold)
    verdict = "meets" if ok else "violates"
    return (Outcome.SUCCESSFUL if ok else Outcome.FAILED,
            f"value {value:g} {verdict} {cfg.condition.value} {cfg.threshold:g}")


class PrometheusQuery:
    name = "prometheus"

    def __init__(self, cfg: PrometheusAnalysis, session: requests.Session | None = None):
        self.cfg, self.session = cfg, session or requests.Session()

    def analyse(self, ctx: AnalysisContext) -> AnalysisResult:
        query = render(self.cfg.query, ctx)
        try:
            resp = self.session.get(f"{self.cfg.url.rstrip('/')}/api/v1/query", params={"query": query},
                                    timeout=self.cfg.timeout_s)
            body = resp.json()
        except (requests.RequestException, ValueError) as exc:
            return AnalysisResult(self.name, Outcome.INCONCLUSIVE, f"Prometheus unreachable: {exc}",
                                  {"query": query})
        value, why = value_of(body)
        if value is None and resp.status_code >= 400 and body.get("status") != "error":
            why = f"HTTP {resp.status_code}"
        outcome, message = judge(self.cfg, value, why)
        return AnalysisResult(self.name, outcome, f"{query}: {message}", {"query": query, "value": value})
