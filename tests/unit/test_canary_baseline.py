"""The baseline beside the canary and the judge step in the canary's list (issue 23), on a fake cluster: replica
math with a baseline, the order of moves (raise before lower), the spec's rules, the judge's decision driving the
run (pass goes on, marginal pauses, fail aborts), the plan naming the baseline and the judge, the picture."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from pydantic import ValidationError

from prefect_greenlight.tasks.canary import preflight as preflight_module
from prefect_greenlight.tasks.canary import strategy as canary
from prefect_greenlight.tasks.canary.judge_step import Samples, prometheus_samples, report
from prefect_greenlight.tasks.canary.preflight import derive_baseline
from prefect_greenlight.tasks.canary.progress import CanaryProgress
from prefect_greenlight.tasks.decisions.canary import StepCounts, moves, split_verdict, step_plan
from prefect_greenlight.tasks.decisions.endpoints import EndpointCounts
from prefect_greenlight.tasks.decisions.judge import (
    Decision,
    Judgement,
    MetricResult,
    MetricRule,
    NoDataPolicy,
    Verdict,
    judge,
    judge_metric,
)
from prefect_greenlight.tasks.decisions.judge_picture import data_url, histogram, svg, text_bars
from prefect_greenlight.tasks.decisions.plan import PlanFacts
from prefect_greenlight.tasks.errors import BadInput, ReleaseFailed
from prefect_greenlight.tasks.spec.canary import CanarySpec
from prefect_greenlight.tasks.spec.judge import JudgeMetric, JudgeSpec
from tests.unit import test_engine
from tests.unit.builders import deployment
from tests.unit.test_engine import canary_plan_of, names, run_canary

fake_canary = test_engine.fake_canary  # the fixture: the canary's I/O replaced

BASE = {"service": "s", "stable": "app-v1", "image": "app:2"}


@pytest.mark.parametrize("total, percent, want", [
    (10, 10, (1, 1, 8)), (10, 30, (3, 3, 4)), (10, 50, (5, 5, 0)), (10, 70, (7, 3, 0)), (10, 100, (10, 0, 0)),
    (4, 25, (1, 1, 2)), (1, 50, (1, 0, 0)), (3, 10, (1, 1, 1)),
])
def test_baseline_counts(total, percent, want):
    (c,) = step_plan(total, [percent], baseline=True)
    assert (c.canary, c.baseline, c.stable) == want and c.canary + c.baseline + c.stable == total


def test_describe_names_the_baseline_only_when_there_is_one():
    assert StepCounts(10, 1, 8, 1).describe() == "10 %: 1 canary / 1 baseline / 8 stable"
    assert StepCounts(10, 1, 9).describe() == "10 %: 1 canary / 9 stable"


@pytest.mark.parametrize("current, want, order", [
    ((0, 0, 10), (1, 1, 8), (("canary", 1), ("baseline", 1), ("stable", 8))),
    ((1, 1, 8), (3, 3, 4), (("canary", 3), ("baseline", 3), ("stable", 4))),
    ((5, 5, 0), (10, 0, 0), (("canary", 10), ("baseline", 0))),
    ((3, 3, 4), (3, 3, 4), ()),
    ((1, 0, 6), (1, 1, 8), (("baseline", 1), ("stable", 8))),  # a resume after an abort that did not finish
])
def test_every_raise_before_any_lower_so_capacity_never_drops(current, want, order):
    now = StepCounts(0, current[0], current[2], current[1])
    target = StepCounts(0, want[0], want[2], want[1])
    assert moves(now, target) == order
    pods = {"canary": now.canary, "baseline": now.baseline, "stable": now.stable}
    for which, replicas in order:
        pods[which] = replicas
        assert sum(pods.values()) >= min(now.canary + now.baseline + now.stable, sum(want))


def test_the_split_counts_the_baseline_and_nothing_else():
    want = StepCounts(10, 1, 8, 1)
    ok = split_verdict(EndpointCounts({"c": 1, "b": 1, "s": 8}, {}), "c", "s", want, "b")
    assert ok.ok and ok.message == "1 canary / 1 baseline / 8 stable ready endpoints"
    short = split_verdict(EndpointCounts({"c": 1, "s": 8}, {}), "c", "s", want, "b")
    assert not short.ok and short.message == "1 canary / 0 baseline / 8 stable ready endpoints, want 1 / 1 / 8"
    stray = split_verdict(EndpointCounts({"c": 1, "b": 1, "s": 8}, {}), "c", "s", StepCounts(10, 1, 9))
    assert not stray.ok and "outside c/s: 1 of b" in stray.message


def test_the_baseline_is_stables_template_kept_apart():
    stable = deployment("app-v1", {"app": "my-app"})
    b = derive_baseline(stable, "app-v1-baseline")
    assert b["metadata"]["name"] == "app-v1-baseline" and b["spec"]["replicas"] == 0
    assert b["spec"]["selector"]["matchLabels"] == {"app": "my-app", "greenlight.io/track": "baseline"}
    assert b["spec"]["template"]["metadata"]["labels"]["greenlight.io/track"] == "baseline"
    assert b["spec"]["template"]["spec"] == stable["spec"]["template"]["spec"]
    assert b["metadata"]["annotations"] == {"greenlight.io/baseline-of": "app-v1"}
    assert "greenlight.io/track" not in stable["spec"]["selector"]["matchLabels"], "stable itself untouched"


@pytest.mark.parametrize("fields, message", [
    ({"judge": {}}, "set `baseline: true`"),
    ({"baseline": True, "steps": [10, {"judge": {}}, 100]}, "1 judge step(s) but no `judge` settings"),
    ({"baseline": True, "judge": {}, "steps": [10, 100, {"judge": {}}]}, "a judge step after set_weight 100"),
    ({"baseline": True, "judge": {"pass_score": 70, "marginal_score": 80}}, "marginal_score 80 is above"),
    ({"baseline": True, "judge": {"metrics": [{"name": "q", "source": "prometheus", "url": "http://p",
                                               "query": "up"}]}}, "must name the pod set with {pods}"),
    ({"baseline": True, "judge": {"group_weights": {"nope": 1}}}, "group_weights name groups no metric is in"),
])
def test_bad_judge_specs_say_why(fields, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("{", r"\{").replace("}", r"\}")):
        CanarySpec(**BASE, **fields)


def test_percentages_get_a_judge_step_below_100():
    spec = CanarySpec(**BASE, baseline=True, judge={"count": 4, "interval_s": 1}, steps=[25, 50, 100],
                      analysis={"http": None})
    assert [s.describe() for s in spec.step_list()] == [
        "set_weight 25", "judge against the baseline, 4 rounds 1 s apart", "set_weight 50",
        "judge against the baseline, 4 rounds 1 s apart", "set_weight 100"]


def _judged(monkeypatch, decision: Decision, **spec) -> tuple:
    plan = canary_plan_of(**{"baseline": True, "judge": {"count": 1}, "analysis": {"http": None}, **spec})
    plan = dataclasses.replace(plan, steps=tuple(step_plan(10, plan.spec.weights, True)),
                               baseline_manifest=derive_baseline(deployment("my-app-v1", {"app": "my-app"}),
                                                                 "my-app-v1-baseline"))
    calls = []

    def run_judge(kube, sets, spec_, interval_s, count, ports=()):
        calls.append((sets.canary, sets.baseline, count))
        m = MetricResult("latency", "default", Verdict.HIGH if decision is Decision.FAIL else Verdict.PASS, True,
                         NoDataPolicy.PAUSE, 10, 10)
        return Judgement(decision, 0.0 if decision is Decision.FAIL else 100.0, (m,), "why"), Samples()

    monkeypatch.setattr(canary, "run_judge", run_judge)
    monkeypatch.setattr(canary, "report", lambda *a: [{"step": "x"}])
    monkeypatch.setattr(canary, "remove_baseline", lambda *a: "deleted baseline")
    return plan, calls


def test_a_passing_judge_goes_on_with_the_baseline_moved_at_every_step(monkeypatch, fake_canary):
    plan, calls = _judged(monkeypatch, Decision.PASS)
    r, _ = run_canary(plan)
    assert [n for n in names(r) if not n.startswith("hook")] == [
        "step-10", "judge-10", "step-30", "judge-30", "step-100", "cleanup"]
    assert fake_canary.moves == [(1, 1, 8), (3, 3, 4), (10, 0, 0)]
    assert calls == [("my-app-v1-canary", "my-app-v1-baseline", 1)] * 2
    assert "deleted baseline" in r.timeline.rows()[-1]["detail"]


def test_a_marginal_judgement_pauses_for_a_human(monkeypatch, fake_canary):
    plan, _ = _judged(monkeypatch, Decision.MARGINAL)
    r, _ = run_canary(plan)
    assert [n for n in names(r) if not n.startswith("hook")][:3] == ["step-10", "judge-10", "pause-10"]
    assert ("1/3", "paused-inconclusive", "10") in fake_canary.records


def test_a_failing_judgement_aborts(monkeypatch, fake_canary):
    plan, _ = _judged(monkeypatch, Decision.FAIL)
    with pytest.raises(ReleaseFailed, match="the judge at 10 % failed the canary against the baseline"):
        run_canary(plan)
    assert fake_canary.restored == 1 and fake_canary.records[-1] == ("0/3", "aborted", "0")


def test_the_plan_names_the_baseline_and_the_judges_settings(monkeypatch):
    plan, _ = _judged(monkeypatch, Decision.PASS)
    text = canary.canary_plan(plan, PlanFacts())
    steps = {s.name: s for s in text.steps}
    assert "apply baseline my-app-v1-baseline (my-app-v1's pod template, greenlight.io/track: baseline) 0 -> 1" \
        in steps["step-10"].change
    assert "1 ready my-app-v1-baseline / 8 ready my-app-v1" in steps["step-10"].gate
    assert "Mann-Whitney U at 95% confidence, at least 10 samples a side; score >= 95 goes on, >= 75 pauses" \
        in steps["judge-10"].details[0]
    assert "the baseline my-app-v1-baseline deleted" in steps["step-10"].undo
    assert "delete the baseline my-app-v1-baseline" in steps["cleanup"].change
    assert any("baseline my-app-v1-baseline: my-app-v1's pod template" in d for d in steps["preflight"].details)


def test_the_picture():
    assert histogram([0, 1, 2, 3], 0, 4, 4) == [1, 1, 1, 1]
    assert histogram([4, 4], 0, 4, 4) == [0, 0, 0, 2], "the top edge is in the last bin"
    sets = {"canary": [13.0, 14.0, 15.0], "baseline": [10.0, 11.0, 12.0]}
    picture = svg("latency", "ms", sets)
    assert picture.startswith("<svg") and picture.endswith("</svg>")
    assert "latency: canary vs baseline (3 / 3 samples)" in picture and "canary: median 14" in picture
    assert data_url(picture).startswith("data:image/svg+xml;base64,")
    bars = text_bars("latency", "ms", sets).splitlines()
    assert bars[0] == "latency (ms): canary # (n=3, median 14), baseline = (n=3, median 11)"
    assert len(bars) == 17 and sum(int(line.split()[-2]) for line in bars[1:]) == 3
    assert text_bars("q", "", {"canary": [], "baseline": []}).startswith("q (): canary # (n=0, median -)")


def test_the_judges_rows_fit_the_report_and_the_pause_form():
    j = judge([judge_metric(MetricRule("latency", min_samples=1), [1.0, 2.0, 3.0], [1.0, 2.0, 3.0])])
    samples = Samples()
    samples.add("latency", "canary", [1.0, 2.0, 3.0])
    rows = report("k", 10, j, samples, JudgeSpec())  # outside a flow run: no artifact, the rows only
    assert rows[0]["provider"] == "judge latency" and rows[0]["outcome"] == "Pass" and rows[0]["U"] == 4.5
    progress = CanaryProgress.start(canary_plan_of(), "r")
    progress.analyses += rows
    form = progress.pause_form(StepCounts(10, 1, 9), "inconclusive")
    assert "- analysis judge latency: Pass p 1 >= 0.05: no significant difference" in form


def test_without_the_judge_extra_a_judge_spec_is_bad_input(monkeypatch):
    monkeypatch.setattr(preflight_module, "judge_available", lambda: False)
    spec = CanarySpec(**BASE, baseline=True, judge={})
    with pytest.raises(BadInput, match=r"pip install 'prefect-greenlight\[judge\]'"):
        preflight_module._baseline(spec, {}, deployment("app-v1", {"app": "my-app"}),
                                   tuple(step_plan(10, spec.weights, True)))
    assert preflight_module._baseline(CanarySpec(**BASE, baseline=True), {}, deployment("app-v1", {"app": "a"}),
                                      tuple(step_plan(10, [10, 30, 50, 100], True)))["metadata"]["name"] == "app-v1-baseline"


def test_the_judge_module_imports_without_scipy():
    code = ("import sys; sys.modules['scipy'] = None; sys.modules['scipy.stats'] = None\n"
            "from prefect_greenlight.tasks.decisions import judge\nprint(judge.available())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


class _Answer:
    def __init__(self, body):
        self.body = body

    def json(self):
        return self.body


class _Session:
    def __init__(self, body):
        self.body, self.asked = body, []

    def get(self, url, params=None, timeout=None):
        self.asked.append((url, params))
        return _Answer(self.body)


def test_prometheus_range_query_samples_per_pod_set():
    metric = JudgeMetric(name="cpu", source="prometheus", url="http://prom:9090/",
                         query='rate(cpu{namespace="{namespace}", pod=~"{pods}"}[1m])', step_s=5)
    body = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"pod": "a-1"}, "values": [[1, "0.5"], [6, "NaN"], [11, "0.7"]]},
        {"metric": {"pod": "a.2"}, "values": [[1, "1"], [6, "x"]]}]}}
    session = _Session(body)
    assert prometheus_samples(metric, "ns", {"a.2", "a-1"}, 100.0, 130.0, session) == [0.5, 0.7, 1.0]
    url, params = session.asked[0]
    assert url == "http://prom:9090/api/v1/query_range"
    assert params == {"query": 'rate(cpu{namespace="ns", pod=~"a-1|a[.]2"}[1m])', "start": "100.000",
                      "end": "130.000", "step": "5"}
    assert prometheus_samples(metric, "ns", set(), 0, 1, session) == [], "no pods: no query, no data"
    assert prometheus_samples(metric, "ns", {"a"}, 0, 1, _Session({"status": "error", "error": "bad"})) == []
