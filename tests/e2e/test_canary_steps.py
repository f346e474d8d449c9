"""The canary's step list on the real cluster: a list written as Argo Rollouts users write one (weights, a pause
until approved, a timed pause, an analysis) releases in that order; and the default analysis, a window rather than
an instant, catches a canary whose pods turn bad 8 s after they start before it reaches 100 %, stable restored
first."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from prefect_greenlight.tasks.kube.client import read
from tests.e2e.release_helpers import (
    TUTORIAL2,
    given_applied,
    given_ready,
    greenlight,
    greenlight_bg,
    manifest_with,
    paused_run_id,
    ready,
    replicas,
)
from tests.e2e.sampler import EndpointSampler
from tests.e2e.test_canary import CANARY, SVC, V1, V2, canary_args, given_tutorial2_canary, seen, splits

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_a_written_step_list_releases_with_a_pause_until_approved_and_a_timed_pause(
        cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    given_tutorial2_canary(kubectl, kube, namespace)
    spec = tmp_path / "steps.yaml"
    spec.write_text(yaml.safe_dump({"steps": [
        {"set_weight": 10}, {"pause": {}}, {"set_weight": 50}, {"analysis": {"interval_s": 1, "count": 2}},
        {"pause": {"duration_s": 4}}, {"set_weight": 100}]}))
    plan = greenlight(cluster, prefect_api, *canary_args(namespace, "--spec", str(spec), "--dry-run", "--json"))
    assert plan.returncode == 0, plan.stderr[-3000:]
    names = ["preflight", "step-10", "pause-10", "step-50", "analysis-50", "pause-50", "step-100", "cleanup"]
    assert json.loads(plan.stdout)["plan"]["step_names"] == names
    log = tmp_path / "canary.log"
    with EndpointSampler(kube, namespace, SVC) as sampler:
        proc = greenlight_bg(cluster, prefect_api, *canary_args(namespace, "--spec", str(spec), "--json"), log=log)
        run_id = paused_run_id(log, proc)
        ann = read(kube, "Service", namespace, SVC)["metadata"]["annotations"]
        assert (ann["greenlight.io/canary-percent"], ann["greenlight.io/canary-state"]) == ("10", "paused-approval")
        assert ready(kube, namespace, V2) == 1 and replicas(kube, namespace, V1) == 9
        time.sleep(3)
        assert proc.poll() is None, "a pause until approved does not go on by itself"
        r = greenlight(cluster, prefect_api, "approve", run_id, "--reason", "e2e", "--approver", "tester")
        assert r.returncode == 0, r.stderr[-2000:]
        assert proc.wait(300) == 0, log.read_text()[-3000:]
    text = log.read_text()
    result = json.loads(text[text.index("{\n"):])
    assert [s["step"] for s in result["steps"]] == names
    assert splits(result) == [(10, 1, 9), (50, 5, 5), (100, 10, 0)]
    timed = next(s for s in result["steps"] if s["step"] == "pause-50")
    assert timed["seconds"] >= 3.5, timed
    assert [(a["step"], a["outcome"]) for a in result["analysis"]] == [("50 %", "Successful")]
    assert result["analysis"][0]["message"].startswith("round 2/2: "), result["analysis"]
    assert not seen(sampler, 3, 7), "no 30 % step in this list"
    assert sampler.min_ready_after_start() >= 10, sampler.describe()
    assert read(kube, "Deployment", namespace, V1) is None and ready(kube, namespace, V2) == 10


def test_default_analysis_aborts_a_canary_that_turns_bad_8_s_after_it_starts(
        cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    """4 pods, steps 25/50/75/100, the default analysis: the canary's pods answer 500 from 8 s after they start.
    One round per step would pass every step; the window catches it at the first, and stable is back at 4 ready
    before the canary goes."""
    stable = manifest_with(TUTORIAL2 / "v1-deployment.yaml", tmp_path, replicas=4)
    given_applied(kubectl, stable, TUTORIAL2 / "canary-service.yaml")
    given_ready(kube, namespace, V1)
    bad = manifest_with(CANARY, tmp_path, image="my-app:fault-failafter-8")
    with EndpointSampler(kube, namespace, SVC, expect_failures=True) as sampler:
        r = greenlight(cluster, prefect_api, *canary_args(namespace, "--steps", "25,50,75,100", "--json",
                                                          manifest=bad), timeout=300)
    assert r.returncode == 1, r.stderr[-4000:]
    assert "analysis at 25 % failed" in r.stderr and "round " in r.stderr, r.stderr[-3000:]
    assert not seen(sampler, 4, 0), "never at 100 %"
    assert ready(kube, namespace, V1) == 4 and replicas(kube, namespace, V2) in (0, None)
    counts = sampler.ready_by_deployment()
    last_canary = max(i for i, c in enumerate(counts) if c.get(V2))
    assert all(c.get(V1, 0) == 4 for c in counts[last_canary:] if not c.get(V2)), sampler.describe()
    assert sampler.min_ready_after_start() >= 4, sampler.describe()
    ann = read(kube, "Service", namespace, SVC)["metadata"]["annotations"]
    assert ann["greenlight.io/canary-state"] == "aborted"
