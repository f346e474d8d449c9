"""The canary judge against a same-age baseline (issue 23) on the real local cluster, through the real CLI: stable
answers in 50 +- 10 ms (`fault-latency-50-10`), 4 pods, steps 25/100 with a judge step at 25 % (1 canary / 1
baseline / 2 stable), 4 rounds 1 s apart of 10 probes per pod.

- a canary 30 % slower (65 +- 13 ms) is judged High and aborted: stable back to 4 ready first, the canary at 0,
  the baseline deleted;
- the same image on both sides passes and releases, the baseline gone at the end;
- a metric with no data (a Prometheus that does not answer) pauses instead of passing; the abort removes it;
- a kill at a step, then a re-run, leaves exactly one baseline (and none once released).
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from prefect_greenlight.tasks.kube.client import list_objects, read
from tests.e2e.fault_helpers import require_local, run_cli, start_cli
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

pytestmark = pytest.mark.usefixtures("prefect_api")
SVC, V1, V2, BASELINE = "my-app-service", "my-app-v1", "my-app-v2", "my-app-v1-baseline"
STABLE_IMAGE = "my-app:v1-fault-latency-50-10"
JUDGE = {"count": 4, "interval_s": 1, "http": {"requests_per_pod": 10}}


def given_stable(kubectl, kube, namespace, tmp_path) -> None:
    given_applied(kubectl, manifest_with(TUTORIAL2 / "v1-deployment.yaml", tmp_path, image=STABLE_IMAGE, replicas=4),
                  TUTORIAL2 / "canary-service.yaml")
    given_ready(kube, namespace, V1)


def spec_file(tmp_path, steps=None, **judge) -> str:
    path = tmp_path / "judge.yaml"
    path.write_text(yaml.safe_dump({"baseline": True, "judge": {**JUDGE, **judge}, "analysis": {"http": None},
                                    "steps": steps or [25, 100]}))
    return str(path)


def args(namespace, tmp_path, image: str, spec: str, *extra: str) -> list[str]:
    return ["canary", "-n", namespace, "--service", SVC, "--stable", V1, "--manifest",
            str(manifest_with(TUTORIAL2 / "v2-canary-deployment.yaml", tmp_path, image=image)), "--spec", spec,
            *extra]


def baselines(kube, namespace) -> list[dict]:
    return list_objects(kube, "Deployment", namespace, "greenlight.io/track=baseline")


def result_of(text: str) -> dict:
    return json.loads(text[text.index("{\n"):])


def assert_only_stable(kube, namespace, sampler) -> None:
    assert ready(kube, namespace, V1) == 4 and replicas(kube, namespace, V2) in (0, None)
    assert read(kube, "Deployment", namespace, BASELINE) is None and not baselines(kube, namespace)
    assert sampler.min_ready_after_start() >= 4, sampler.describe()


def test_a_canary_30_percent_slower_than_the_baseline_is_judged_high_and_aborted(
        cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    require_local(cluster)
    given_stable(kubectl, kube, namespace, tmp_path)
    with EndpointSampler(kube, namespace, SVC) as sampler:
        r = greenlight(cluster, prefect_api, *args(namespace, tmp_path, "my-app:v2-fault-latency-65-13",
                                                   spec_file(tmp_path), "--json"), timeout=300)
    assert r.returncode == 1, r.stderr[-4000:]
    assert "the judge at 25 % failed the canary against the baseline" in r.stderr, r.stderr[-4000:]
    assert "1 Pass, 1 High" in r.stderr and "score 50.0 < marginal 75" in r.stderr, r.stderr[-4000:]
    assert any(c.get(V2) == 1 and c.get(BASELINE) == 1 and c.get(V1) == 2 for c in sampler.ready_by_deployment()), \
        "the judged split: 1 canary / 1 baseline / 2 stable"
    assert_only_stable(kube, namespace, sampler)
    ann = read(kube, "Service", namespace, SVC)["metadata"]["annotations"]
    assert ann["greenlight.io/canary-state"] == "aborted"


def test_the_same_image_on_both_sides_passes(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    require_local(cluster)
    given_stable(kubectl, kube, namespace, tmp_path)
    with EndpointSampler(kube, namespace, SVC) as sampler:
        r = greenlight(cluster, prefect_api, *args(namespace, tmp_path, STABLE_IMAGE, spec_file(tmp_path), "--json"),
                       timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    result = json.loads(r.stdout)
    rows = {row["metric"]: row for row in result["analysis"]}
    assert (rows["latency"]["verdict"], rows["errors"]["verdict"]) == ("Pass", "Pass"), rows
    assert rows["latency"]["n_canary"] == rows["latency"]["n_baseline"] == 40, rows
    assert 40 <= rows["latency"]["baseline_median"] <= 70 and rows["latency"]["U"] is not None, rows
    assert [s["step"] for s in result["steps"]] == ["preflight", "step-25", "judge-25", "step-100", "cleanup"]
    judged = next(s for s in result["steps"] if s["step"] == "judge-25")
    print(f"judge-25 took {judged['seconds']} s (window 3 s); latency {rows['latency']}")
    assert read(kube, "Deployment", namespace, BASELINE) is None and not baselines(kube, namespace)
    assert ready(kube, namespace, V2) == 4 and sampler.min_ready_after_start() >= 4, sampler.describe()


def test_a_metric_with_no_data_pauses_instead_of_passing(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    require_local(cluster)
    given_stable(kubectl, kube, namespace, tmp_path)
    metrics = [{"name": "latency"}, {"name": "queue", "source": "prometheus", "url": "http://127.0.0.1:9",
                                     "query": 'queue_depth{pod=~"{pods}"}'}]
    log = tmp_path / "canary.log"
    with EndpointSampler(kube, namespace, SVC) as sampler:
        proc = greenlight_bg(cluster, prefect_api, *args(namespace, tmp_path, STABLE_IMAGE,
                                                         spec_file(tmp_path, metrics=metrics)), log=log)
        paused_run_id(log, proc, timeout=180)
        text = log.read_text()
        assert "1 metric(s) had no data: queue" in text, text[-3000:]
        ann = read(kube, "Service", namespace, SVC)["metadata"]["annotations"]
        assert (ann["greenlight.io/canary-percent"], ann["greenlight.io/canary-state"]) == \
            ("25", "paused-inconclusive"), ann
        assert len(baselines(kube, namespace)) == 1 and ready(kube, namespace, BASELINE) == 1
        aborted = greenlight(cluster, prefect_api, "abort", "-n", namespace, "--service", SVC, "--reason", "no data")
        assert aborted.returncode == 0, aborted.stderr[-3000:]
        assert proc.wait(120) == 1, log.read_text()[-3000:]
    assert_only_stable(kube, namespace, sampler)


def test_a_kill_at_a_step_then_a_rerun_leaves_exactly_one_baseline(
        cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    require_local(cluster)
    given_stable(kubectl, kube, namespace, tmp_path)
    steps = [{"set_weight": 25}, {"judge": {}}, {"pause": {"duration_s": 300}}, {"set_weight": 100}]
    with EndpointSampler(kube, namespace, SVC) as sampler:
        cli = start_cli(cluster, prefect_api, *args(namespace, tmp_path, STABLE_IMAGE, spec_file(tmp_path, steps)),
                        log=tmp_path / "first.log")
        paused_run_id(cli.log, cli.proc, timeout=180)
        cli.kill()
        assert [b["metadata"]["name"] for b in baselines(kube, namespace)] == [BASELINE]
        assert (replicas(kube, namespace, V2), replicas(kube, namespace, BASELINE), replicas(kube, namespace, V1)) \
            == (1, 1, 2)
        steps[2] = {"pause": {"duration_s": 1}}
        again = start_cli(cluster, prefect_api, *args(namespace, tmp_path, STABLE_IMAGE, spec_file(tmp_path, steps),
                                                      "--json", "--lock-wait", "60"), log=tmp_path / "again.log")
        most = 0
        while again.proc.poll() is None:
            most = max(most, len(baselines(kube, namespace)))
            time.sleep(0.2)
        text = again.log.read_text()
        assert again.proc.returncode == 0, text[-4000:]
    assert "resuming the unfinished canary my-app-v2 of stable my-app-v1" in text, text[-3000:]
    assert most == 1, "never a second baseline"
    assert [s["step"] for s in result_of(text)["steps"]] == ["preflight", "step-25", "judge-25", "pause-25",
                                                            "step-100", "cleanup"]
    assert read(kube, "Deployment", namespace, BASELINE) is None and ready(kube, namespace, V2) == 4
    assert sampler.min_ready_after_start() >= 4, sampler.describe()


def test_the_plan_names_the_baseline_and_the_judge_and_bad_input_exits_2(
        cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    given_stable(kubectl, kube, namespace, tmp_path)
    dry = run_cli(cluster, prefect_api, *args(namespace, tmp_path, STABLE_IMAGE, spec_file(tmp_path), "--dry-run",
                                              "--json"))
    assert dry.returncode == 0, dry.stderr[-3000:]
    planned = json.loads(dry.stdout)
    assert planned["plan"]["step_names"] == ["preflight", "step-25", "judge-25", "step-100", "cleanup"]
    text = planned["plan_text"]
    assert f"apply baseline {BASELINE} ({V1}'s pod template, greenlight.io/track: baseline) 0 -> 1" in text, text
    assert "Mann-Whitney U at 95% confidence, at least 10 samples a side; score >= 95 goes on" in text, text
    assert planned["steps_planned"] == ["25 %: 1 canary / 1 baseline / 2 stable", "100 %: 4 canary / 0 stable"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"judge": {}, "steps": [25, 100]}))
    r = run_cli(cluster, prefect_api, *args(namespace, tmp_path, STABLE_IMAGE, str(path)))
    assert r.returncode == 2 and "set `baseline: true`" in r.stderr, r.stderr[-2000:]
    one = spec_file(tmp_path, [{"set_weight": 10}, {"judge": {}}, {"set_weight": 100}])
    r = run_cli(cluster, prefect_api, *args(namespace, tmp_path, STABLE_IMAGE, one, "--total", "1"))
    assert r.returncode == 2 and "judge step at 10 %: 10 %: 1 canary / 0 stable leaves no pod" in r.stderr, \
        r.stderr[-2000:]
    assert read(kube, "Deployment", namespace, V2) is None and not baselines(kube, namespace)
    assert replicas(kube, namespace, V1) == 4
