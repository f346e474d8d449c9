"""Canary analysis providers and the canary spec: the Prometheus provider against a tiny local http.server
returning canned Prometheus JSON (no real Prometheus), the HTTP probe judgement, and spec validation."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from prefect_greenlight.tasks.canary.analysis import AnalysisContext, AnalysisResult, Outcome, combine, run_providers
from prefect_greenlight.tasks.canary.analysis.http_probe import ProbeStats, judge
from prefect_greenlight.tasks.canary.analysis.prometheus import PrometheusQuery
from prefect_greenlight.tasks.canary.preflight import derive_canary
from prefect_greenlight.tasks.decisions.pause import PauseKind, decide
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.prefect_adapter.pause import PromoteForm as PauseForm
from prefect_greenlight.tasks.spec import parse_spec
from prefect_greenlight.tasks.spec.canary import TRACK_LABEL, CanarySpec, HttpAnalysis, PrometheusAnalysis

CTX = AnalysisContext("ns", "svc", "my-app-v2", "my-app-v1", 10)


def vector(*values):
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "value": [1700000000.0, v]} for v in values]}}


@pytest.fixture
def prometheus():
    """A local server: answers = {query: (status, body)}; seen = the queries it received."""
    answers: dict[str, tuple[int, dict]] = {}
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            url = urlparse(self.path)
            query = parse_qs(url.query).get("query", [""])[0]
            seen.append(query)
            status, body = answers.get(query, (200, vector())) if url.path == "/api/v1/query" else (404, {})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", answers, seen
    server.shutdown()


@pytest.mark.parametrize("body,condition,threshold,outcome,text", [
    (vector("0.01"), "<=", 0.05, Outcome.SUCCESSFUL, "value 0.01 meets <= 0.05"),
    (vector("0.2"), "<=", 0.05, Outcome.FAILED, "value 0.2 violates <= 0.05"),
    (vector("0.99"), ">=", 0.95, Outcome.SUCCESSFUL, "meets >= 0.95"),
    ({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}, "<", 2, Outcome.FAILED,
     "value 3 violates < 2"),
    (vector(), "<=", 1, Outcome.INCONCLUSIVE, "no values found"),
    (vector("1", "2"), "<=", 1, Outcome.INCONCLUSIVE, "2 samples"),
    (vector("NaN"), "<=", 1, Outcome.INCONCLUSIVE, "NaN"),
    ({"status": "error", "errorType": "bad_data", "error": "parse error"}, "<=", 1, Outcome.INCONCLUSIVE,
     "query failed: bad_data: parse error"),
])
def test_prometheus_query(prometheus, body, condition, threshold, outcome, text):
    url, answers, seen = prometheus
    query = 'sum(rate(http_errors{deployment="{canary}",namespace="{namespace}"}[1m]))'
    rendered = 'sum(rate(http_errors{deployment="my-app-v2",namespace="ns"}[1m]))'
    answers[rendered] = (400 if body.get("status") == "error" else 200, body)
    cfg = PrometheusAnalysis(url=url, query=query, condition=condition, threshold=threshold)
    result = PrometheusQuery(cfg).analyse(CTX)
    assert seen == [rendered]
    assert result.outcome is outcome and text in result.message, result.message


def test_prometheus_unreachable_is_inconclusive():
    cfg = PrometheusAnalysis(url="http://127.0.0.1:9", query="up", threshold=1, timeout_s=2)
    result = PrometheusQuery(cfg).analyse(CTX)
    assert result.outcome is Outcome.INCONCLUSIVE and "unreachable" in result.message


def stats(ok, sent, latency_ms, pods=1):
    return ProbeStats(sent, ok, tuple([latency_ms] * (sent if latency_ms is not None else 0)), pods)


@pytest.mark.parametrize("canary,stable,outcome,text", [
    (stats(10, 10, 20), stats(10, 10, 20), Outcome.SUCCESSFUL, "canary 10/10 non-5xx"),
    (stats(0, 10, 20), stats(10, 10, 20), Outcome.FAILED, "canary success rate 0% < 95%"),
    (stats(0, 10, 20), stats(0, 10, 20), Outcome.INCONCLUSIVE, "both versions below 95%"),
    (stats(96, 100, 20), stats(100, 100, 20), Outcome.SUCCESSFUL, ""),
    (stats(10, 10, 1500), stats(10, 10, 20), Outcome.FAILED, "p95 1500 ms > 1000 ms"),
    (stats(10, 10, 700), stats(10, 10, 100), Outcome.FAILED, "> 3 x stable's 100 ms"),
    (stats(10, 10, 150), stats(10, 10, 10), Outcome.SUCCESSFUL, ""),  # below the latency floor
    (stats(0, 10, None), stats(10, 10, 20), Outcome.INCONCLUSIVE, "no answer from the canary"),
    (stats(10, 10, 20), stats(0, 0, None, 0), Outcome.SUCCESSFUL, "stable no requests"),  # at 100 %
])
def test_http_judge(canary, stable, outcome, text):
    got, message = judge(HttpAnalysis(), canary, stable)
    assert got is outcome and text in message, message


def test_drop_against_stable():
    got, message = judge(HttpAnalysis(min_success_rate=0.5), stats(80, 100, 20), stats(100, 100, 20))
    assert got is Outcome.FAILED and "more than 5% below stable's 100%" in message


def test_combine_and_broken_provider():
    ok = AnalysisResult("a", Outcome.SUCCESSFUL, "")
    assert combine([ok]) is Outcome.SUCCESSFUL
    assert combine([ok, AnalysisResult("b", Outcome.INCONCLUSIVE, "")]) is Outcome.INCONCLUSIVE
    assert combine([AnalysisResult("b", Outcome.INCONCLUSIVE, ""), AnalysisResult("c", Outcome.FAILED, "")]) \
        is Outcome.FAILED

    class Broken:
        name = "broken"

        def analyse(self, ctx):
            raise RuntimeError("boom")

    [result] = run_providers([Broken()], CTX)
    assert result.outcome is Outcome.INCONCLUSIVE and "boom" in result.message


BASE = {"service": "my-app-service", "stable": "my-app-v1", "image": "my-app:v2"}


@pytest.mark.parametrize("change,message", [
    ({"steps": [10, 50, 30, 100]}, "strictly increasing"),
    ({"steps": [10, 50]}, "the last step must be 100"),
    ({"steps": [0, 100]}, "percentages 1..100"),
    ({"steps": []}, "at least one step"),
    ({"approve_steps": [20]}, "approve_steps [20] are not among the steps"),
    ({"image": None}, "give exactly one of manifest"),
    ({"image": "Bad Image"}, "not a valid image reference"),
    ({"total": 0}, "greater than or equal to 1"),
    ({"canary_name": "my-app-v1"}, "canary_name must differ"),
])
def test_spec_validation(change, message):
    with pytest.raises(BadInput) as err:
        parse_spec(CanarySpec, {**BASE, **change})
    assert message in str(err.value)


def test_spec_defaults():
    spec = parse_spec(CanarySpec, BASE)
    assert spec.steps == [10, 30, 50, 100] and spec.cleanup.value == "delete"
    assert spec.analysis.failure_limit == 0 and spec.analysis.http.path == "/"
    assert spec.canary_name_or_default == "my-app-v1-canary"


def test_derive_canary_separates_selectors():
    stable = {"metadata": {"name": "my-app-v1", "labels": {"app": "my-app"}},
              "spec": {"replicas": 10, "revisionHistoryLimit": 3, "selector": {"matchLabels": {"app": "my-app"}},
                       "template": {"metadata": {"labels": {"app": "my-app", "version": "v1"}},
                                    "spec": {"containers": [{"name": "web", "image": "my-app:v1"}]}}}}
    canary = derive_canary(stable, "my-app:v2", "my-app-v1-canary", None)
    assert canary["metadata"]["name"] == "my-app-v1-canary"
    assert canary["spec"]["selector"]["matchLabels"] == {"app": "my-app", TRACK_LABEL: "canary"}
    assert canary["spec"]["template"]["metadata"]["labels"] == {"app": "my-app", "version": "v1",
                                                                TRACK_LABEL: "canary"}
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == "my-app:v2"
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == "my-app:v1", "stable untouched"
    with pytest.raises(BadInput, match="container 'nope' not found"):
        derive_canary(stable, "my-app:v2", "x", "nope")


def test_pause_decisions():
    assert decide(PauseKind.APPROVAL, None, 5).approved is False
    assert decide(PauseKind.TIMED, None, 5).approved is True
    answer = PauseForm(approve=True, full=True, reason="ok", approver="me")
    d = decide(PauseKind.APPROVAL, answer, 1, allows_full=True)
    assert d.approved and d.full and d.note() == "promoted to 100 % by me (human): ok"
    rejected = decide(PauseKind.APPROVAL, PauseForm(approve=False, full=True), 1, allows_full=True)
    assert not rejected.approved and not rejected.full
