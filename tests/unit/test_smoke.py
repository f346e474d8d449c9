"""smoke.judge (one answer against one check) and summarize."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.decisions.smoke import SmokeFailure, SmokeResult, judge, summarize
from prefect_greenlight.tasks.spec import SmokeCheck


@pytest.mark.parametrize("check, status, body, latency, error, failure, detail", [
    (SmokeCheck(), 200, "ok", 12.3, "", None, "HTTP 200 in 12 ms"),
    (SmokeCheck(), 200, "", None, "", None, "HTTP 200"),
    # unreachable
    (SmokeCheck(), None, "", None, "connection refused", SmokeFailure.UNREACHABLE, "connection refused"),
    (SmokeCheck(), None, "", None, "", SmokeFailure.UNREACHABLE, "no answer"),
    # status mismatch, both directions
    (SmokeCheck(), 503, "ok", 5, "", SmokeFailure.STATUS, "HTTP 503, expected 200"),
    (SmokeCheck(expect_status=204), 200, "", 5, "", SmokeFailure.STATUS, "HTTP 200, expected 204"),
    (SmokeCheck(expect_status=404, path="/missing"), 404, "", 5, "", None, "HTTP 404 in 5 ms"),
    # body_contains
    (SmokeCheck(body_contains="version 2"), 200, "app version 2 ready", 5, "", None, "HTTP 200 in 5 ms"),
    (SmokeCheck(body_contains="version 2"), 200, "app version 1 ready", 5, "", SmokeFailure.BODY,
     "body lacks 'version 2'"),
    (SmokeCheck(body_contains="Version"), 200, "version", 5, "", SmokeFailure.BODY, "body lacks 'Version'"),
    # body_regex (search, not match)
    (SmokeCheck(body_regex=r"v\d+\.\d+"), 200, "running v2.10 now", 5, "", None, "HTTP 200 in 5 ms"),
    (SmokeCheck(body_regex=r"^v2"), 200, "running v2", 5, "", SmokeFailure.BODY, "body does not match /^v2/"),
    # both body checks must pass
    (SmokeCheck(body_contains="ok", body_regex="green"), 200, "ok blue", 5, "", SmokeFailure.BODY,
     "body does not match /green/"),
    # latency
    (SmokeCheck(max_latency_ms=100), 200, "", 100.0, "", None, "HTTP 200 in 100 ms"),
    (SmokeCheck(max_latency_ms=100), 200, "", 100.4, "", SmokeFailure.SLOW, "100 ms > 100 ms"),
    (SmokeCheck(max_latency_ms=100), 200, "", 250, "", SmokeFailure.SLOW, "250 ms > 100 ms"),
    (SmokeCheck(max_latency_ms=100), 200, "", None, "", None, "HTTP 200"),
    # status is judged before the body, the body before latency
    (SmokeCheck(body_contains="x", max_latency_ms=1), 500, "", 999, "", SmokeFailure.STATUS, "HTTP 500"),
    (SmokeCheck(body_contains="x", max_latency_ms=1), 200, "", 999, "", SmokeFailure.BODY, "body lacks"),
])
def test_judge(check, status, body, latency, error, failure, detail):
    got_failure, got_detail = judge(check, status, body, latency, error)
    assert got_failure is failure
    assert detail in got_detail


def test_failure_values_are_a_stable_contract():
    assert [f.value for f in SmokeFailure] == ["unreachable", "unexpected-status", "body-mismatch", "too-slow"]


def result(pod, ok, failure=None, detail=""):
    return SmokeResult(pod, "/healthz", ok, 1 if ok else 3, 200 if ok else 503, 4.0, failure, detail)


def test_summarize_all_passed():
    assert summarize([result("a", True), result("b", True)]) == "2 of 2 smoke checks passed"


def test_summarize_names_first_failure():
    rs = [result("a", True), result("b", False, SmokeFailure.STATUS, "HTTP 503, expected 200"),
          result("c", False, SmokeFailure.UNREACHABLE, "refused")]
    assert summarize(rs) == ("2 of 3 smoke checks failed; first: pod b /healthz: unexpected-status "
                             "(HTTP 503, expected 200)")


def test_summarize_nothing_checked():
    assert summarize([]) == "0 of 0 smoke checks passed"


def test_row_rounds_latency():
    r = SmokeResult("p", "/", True, 2, 200, 12.345, None, "HTTP 200")
    assert r.row() == {"pod": "p", "path": "/", "ok": True, "status": 200, "latency_ms": 12.3, "attempts": 2,
                       "detail": "HTTP 200"}
    assert SmokeResult("p", "/", False, 1).row()["latency_ms"] is None
