"""Canary releases on the real cluster through the real CLI, the second tutorial's manifests, each watched by the
availability sampler on my-app-service: ready endpoints never drop below the total after the initial state, the
per-step split is verified by EndpointSlices, and an abort brings stable back READY before the canary goes."""

from __future__ import annotations

import json

import pytest

from prefect_greenlight.tasks.kube.client import read
from prefect_greenlight.tasks.kube.waiting import wait_endpoints
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
    resource_versions,
)
from tests.e2e.sampler import EndpointSampler
from tests.e2e.traffic_checks import assert_failures_only_while_serving

pytestmark = pytest.mark.usefixtures("prefect_api")
SVC, V1, V2 = "my-app-service", "my-app-v1", "my-app-v2"
CANARY = TUTORIAL2 / "v2-canary-deployment.yaml"
TUTORIAL_SPLITS = [(10, 1, 9), (30, 3, 7), (50, 5, 5), (100, 10, 0)]


def given_tutorial2_canary(kubectl, kube, namespace) -> None:
    """my-app-v1 with 10 replicas behind my-app-service (selector app: my-app only), all 10 in the slices."""
    given_applied(kubectl, TUTORIAL2 / "v1-deployment.yaml", TUTORIAL2 / "canary-service.yaml")
    given_ready(kube, namespace, V1)
    assert wait_endpoints(kube, namespace, SVC, V1, 10, 60).ok


def canary_args(namespace, *extra, manifest=CANARY):
    return ["canary", "-n", namespace, "--service", SVC, "--stable", V1, "--manifest", str(manifest), *extra]


def splits(result) -> list[tuple[int, int, int]]:
    return [(s["percent"], s["canary_ready"], s["stable_ready"]) for s in result["splits"]]


def seen(sampler, canary: int, stable: int) -> bool:
    return any(c.get(V2, 0) == canary and c.get(V1, 0) == stable for c in sampler.ready_by_deployment())


def assert_back_to_stable(kube, namespace, sampler) -> None:
    assert ready(kube, namespace, V1) == 10 and replicas(kube, namespace, V1) == 10
    assert replicas(kube, namespace, V2) in (0, None)
    assert wait_endpoints(kube, namespace, SVC, V1, 10, 10).ok
    assert sampler.min_ready_after_start() >= 10, sampler.describe()
    assert read(kube, "Service", namespace, SVC)["metadata"]["annotations"]["greenlight.io/canary-state"] == "aborted"


def history(cluster, prefect_api, namespace) -> list[dict]:
    r = greenlight(cluster, prefect_api, "history", "-n", namespace, "--service", SVC, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@pytest.mark.both_ends
def test_tutorial2_canary_runs_to_100_percent(cluster, prefect_api, kube, namespace, kubectl):
    given_tutorial2_canary(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, SVC) as sampler:
        r = greenlight(cluster, prefect_api, *canary_args(namespace, "--json"), timeout=400)
        assert r.returncode == 0, r.stderr[-4000:]
    result = json.loads(r.stdout)
    assert result["outcome"] == "released" and result["live_deployment"] == V2
    assert splits(result) == TUTORIAL_SPLITS
    assert "overlap" in r.stderr, "the tutorial's selectors overlap: warned"
    assert {a["step"] for a in result["analysis"]} == {"10 %", "30 %", "50 %", "100 %"}
    assert all(a["outcome"] == "Successful" for a in result["analysis"]), result["analysis"]
    for _, c, s in TUTORIAL_SPLITS:
        assert seen(sampler, c, s), f"{c}/{s} never seen: {sampler.describe()}"
    assert sampler.min_ready_after_start() >= 10, sampler.describe()
    assert read(kube, "Deployment", namespace, V1) is None, "the old stable is deleted, as in the tutorial"
    assert ready(kube, namespace, V2) == 10
    ann = read(kube, "Service", namespace, SVC)["metadata"]["annotations"]
    assert (ann["greenlight.io/canary-state"], ann["greenlight.io/canary-percent"]) == ("promoted", "100")
    st = greenlight(cluster, prefect_api, "status", "-n", namespace, "--service", SVC)
    assert st.returncode == 0 and "canary: my-app-v2 100 % (canary/stable pods 10/0 of 10)" in st.stdout, st.stdout
    assert [(h["strategy"], h["outcome"], h["from_deployment"], h["to_deployment"])
            for h in history(cluster, prefect_api, namespace)] == [("canary", "released", V1, V2)]


def test_unhealthy_canary_aborts_at_first_analysis(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    given_tutorial2_canary(kubectl, kube, namespace)
    bad = manifest_with(CANARY, tmp_path, image="my-app:fault-unhealthy")
    with EndpointSampler(kube, namespace, SVC, expect_failures=True) as sampler:
        r = greenlight(cluster, prefect_api, *canary_args(namespace, manifest=bad), timeout=300)
    assert r.returncode == 1, r.stderr[-4000:]
    assert "analysis at 10 % failed" in r.stderr and "canary success rate 0%" in r.stderr, r.stderr[-3000:]
    assert seen(sampler, 1, 9), sampler.describe()
    assert not seen(sampler, 3, 7), "aborted at the first analysed step"
    assert_back_to_stable(kube, namespace, sampler)
    # stable was back at 10 ready before the canary left: every instant without the canary has 10 stable
    after = sampler.ready_by_deployment()[[i for i, c in enumerate(sampler.ready_by_deployment()) if c.get(V2)][-1]:]
    assert all(c.get(V1, 0) == 10 for c in after if not c.get(V2)), sampler.describe()
    assert seen(sampler, 1, 10), f"stable 10 ready beside the canary during the abort: {sampler.describe()}"
    # the canary's share of requests (1 in 10) got its 500s until the abort removed it; stable's never failed
    assert_failures_only_while_serving(sampler, V2) > 0


def test_crashlooping_canary_fails_fast_and_aborts(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    given_tutorial2_canary(kubectl, kube, namespace)
    bad = manifest_with(CANARY, tmp_path, image="my-app:fault-crashloop")
    with EndpointSampler(kube, namespace, SVC) as sampler:
        r = greenlight(cluster, prefect_api, *canary_args(namespace, "--ready-timeout", "120", manifest=bad),
                       timeout=300)
    assert r.returncode == 1 and "CrashLoopBackOff" in r.stderr, r.stderr[-4000:]
    assert sampler.instants_serving({V2}) == 0, sampler.describe()
    assert_back_to_stable(kube, namespace, sampler)


@pytest.mark.parametrize("answer", ["approve", "reject"])
def test_approval_between_steps(cluster, prefect_api, kube, namespace, kubectl, tmp_path, answer):
    given_tutorial2_canary(kubectl, kube, namespace)
    log = tmp_path / "canary.log"
    with EndpointSampler(kube, namespace, SVC) as sampler:
        proc = greenlight_bg(cluster, prefect_api, *canary_args(namespace, "--approve-steps", "30",
                                                                "--approval-timeout", "120", "--json"), log=log)
        run_id = paused_run_id(log, proc)
        ann = read(kube, "Service", namespace, SVC)["metadata"]["annotations"]
        assert (ann["greenlight.io/canary-percent"], ann["greenlight.io/canary-state"]) == ("30", "paused-approval")
        assert ready(kube, namespace, V2) == 3 and replicas(kube, namespace, V1) == 7
        r = greenlight(cluster, prefect_api, answer, run_id, "--reason", "e2e", "--approver", "tester")
        assert r.returncode == 0, r.stderr[-2000:]
        assert proc.wait(300) == (0 if answer == "approve" else 1), log.read_text()[-3000:]
    assert sampler.min_ready_after_start() >= 10, sampler.describe()
    if answer == "approve":
        assert seen(sampler, 5, 5) and seen(sampler, 10, 0), sampler.describe()
        assert read(kube, "Deployment", namespace, V1) is None and ready(kube, namespace, V2) == 10
    else:
        assert "rejected by tester" in log.read_text()
        assert not seen(sampler, 5, 5), sampler.describe()
        assert_back_to_stable(kube, namespace, sampler)


def promoted_full_at_10(cluster, prefect_api, kube, namespace, tmp_path, paused: str, *extra: str) -> dict:
    """A canary that pauses at 10 % (the Service records `paused`) answered `promote --full`: it went straight to
    100 % (never 30 or 50 %) without a drop in ready pods and removed the old stable. Returns its result."""
    log = tmp_path / "canary.log"
    with EndpointSampler(kube, namespace, SVC) as sampler:
        proc = greenlight_bg(cluster, prefect_api, *canary_args(namespace, *extra, "--json"), log=log)
        run_id = paused_run_id(log, proc)
        ann = read(kube, "Service", namespace, SVC)["metadata"]["annotations"]
        assert (ann["greenlight.io/canary-percent"], ann["greenlight.io/canary-state"]) == ("10", paused)
        r = greenlight(cluster, prefect_api, "promote", run_id, "--full", "--approver", "tester")
        assert r.returncode == 0, r.stderr[-2000:]
        assert proc.wait(300) == 0, log.read_text()[-3000:]
    text = log.read_text()
    result = json.loads(text[text.index("{\n"):])
    assert splits(result) == [(10, 1, 9), (100, 10, 0)]
    assert not seen(sampler, 3, 7) and not seen(sampler, 5, 5), sampler.describe()
    assert sampler.min_ready_after_start() >= 10, sampler.describe()
    assert read(kube, "Deployment", namespace, V1) is None and ready(kube, namespace, V2) == 10
    return result


def test_promote_full_from_a_pause_goes_straight_to_100(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    given_tutorial2_canary(kubectl, kube, namespace)
    result = promoted_full_at_10(cluster, prefect_api, kube, namespace, tmp_path, "paused-approval",
                                 "--approve-steps", "10")
    assert {a["step"] for a in result["analysis"]} == {"10 %"}, "no analysis after promote --full"


def test_promote_full_at_an_inconclusive_pause_goes_straight_to_100(cluster, prefect_api, kube, namespace, kubectl,
                                                                    tmp_path):
    """An analysis that cannot decide (its Prometheus is unreachable) pauses for a human; `promote --full` there
    goes straight to 100 %, no further analysis or pause (it was once dropped: the canary went on to 30 %)."""
    import yaml

    given_tutorial2_canary(kubectl, kube, namespace)
    spec = tmp_path / "inconclusive.yaml"
    spec.write_text(yaml.safe_dump({"analysis": {"http": None, "inconclusive_timeout_s": 120, "prometheus": [
        {"url": "http://127.0.0.1:9", "query": "up", "threshold": 1, "timeout_s": 2}]}}))
    result = promoted_full_at_10(cluster, prefect_api, kube, namespace, tmp_path, "paused-inconclusive",
                                 "--spec", str(spec))
    assert [(a["step"], a["outcome"]) for a in result["analysis"]] == [("10 %", "Inconclusive")]
    assert [s["step"] for s in result["steps"]] == ["preflight", "step-10", "analysis-10", "pause-10", "step-100",
                                                    "cleanup"]


def test_abort_command_rejects_a_paused_canary(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    given_tutorial2_canary(kubectl, kube, namespace)
    log = tmp_path / "canary.log"
    with EndpointSampler(kube, namespace, SVC) as sampler:
        proc = greenlight_bg(cluster, prefect_api, *canary_args(namespace, "--approve-steps", "30"), log=log)
        paused_run_id(log, proc)
        r = greenlight(cluster, prefect_api, "abort", "-n", namespace, "--service", SVC, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert proc.wait(60) == 1, log.read_text()[-3000:]
    assert_back_to_stable(kube, namespace, sampler)


def _bad_manifest(tmp_path, **labels):
    import yaml

    doc = yaml.safe_load(CANARY.read_text())
    doc["spec"]["selector"]["matchLabels"] = labels
    doc["spec"]["template"]["metadata"]["labels"] = labels
    path = tmp_path / "bad-canary.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


BAD = {
    "steps-not-increasing": (lambda t: ["--stable", V1, "--manifest", str(CANARY), "--steps", "10,50,30,100"],
                             "steps must be strictly increasing"),
    "last-step-not-100": (lambda t: ["--stable", V1, "--manifest", str(CANARY), "--steps", "10,50"],
                          "the last step must be 100"),
    "unknown-stable": (lambda t: ["--stable", "nope", "--manifest", str(CANARY)],
                       "stable Deployment 'nope' not found"),
    "canary-selects-nothing-of-service": (lambda t: ["--stable", V1, "--manifest", _bad_manifest(t, app="other")],
                                          "selects nothing of canary 'my-app-v2'"),
    "approve-step-not-a-step": (lambda t: ["--stable", V1, "--manifest", str(CANARY), "--approve-steps", "20"],
                                "approve_steps [20] are not among the steps"),
    "manifest-and-image": (lambda t: ["--stable", V1, "--manifest", str(CANARY), "--image", "my-app:v2"],
                           "not allowed with argument"),
    "written-steps-and-approve-steps": (lambda t: ["--stable", V1, "--manifest", str(CANARY), "--approve-steps", "10",
                                                   "--spec", _written_steps(t)],
                                        "approve_steps and pause_s are shorthand"),
    "written-step-of-two-kinds": (lambda t: ["--stable", V1, "--manifest", str(CANARY), "--spec",
                                             _written_steps(t, {"set_weight": 10, "pause": {}})],
                                  "a step is exactly one of set_weight, pause, analysis"),
}


def _written_steps(tmp_path, first: dict | None = None) -> str:
    import yaml

    out = tmp_path / f"steps-{len(str(first))}.yaml"
    out.write_text(yaml.safe_dump({"steps": [first or {"set_weight": 10}, {"pause": {}}, {"set_weight": 100}]}))
    return str(out)


def test_bad_canary_input_exits_2_and_changes_nothing(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    given_tutorial2_canary(kubectl, kube, namespace)
    for case, (args_of, expected) in sorted(BAD.items()):
        before = resource_versions(kube, namespace)
        r = greenlight(cluster, prefect_api, "canary", "-n", namespace, "--service", SVC, *args_of(tmp_path))
        assert r.returncode == 2, f"{case}: {r.stderr[-2000:]}"
        assert expected in r.stderr, f"{case}: {r.stderr[-2000:]}"
        assert resource_versions(kube, namespace) == before, case


def test_abort_after_the_release_process_died(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    """Killed while paused: Prefect still says Paused, nobody answers; abort restores stable from the record."""
    import os
    import signal

    given_tutorial2_canary(kubectl, kube, namespace)
    log = tmp_path / "canary.log"
    with EndpointSampler(kube, namespace, SVC) as sampler:
        proc = greenlight_bg(cluster, prefect_api, *canary_args(namespace, "--approve-steps", "30"), log=log)
        paused_run_id(log, proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert (ready(kube, namespace, V2), replicas(kube, namespace, V1)) == (3, 7)
        r = greenlight(cluster, prefect_api, "abort", "-n", namespace, "--service", SVC, timeout=300)
        assert r.returncode == 0 and "let its lock expire without aborting" in r.stderr, r.stderr[-3000:]
    assert_back_to_stable(kube, namespace, sampler)
    # the killed run wrote nothing; the abort that restored stable is the one history entry
    assert [(h["strategy"], h["outcome"], h["to_deployment"])
            for h in history(cluster, prefect_api, namespace)] == [("abort", "aborted", V1)]


def test_image_mode_derives_a_non_overlapping_canary(cluster, prefect_api, kube, namespace, kubectl):
    given_tutorial2_canary(kubectl, kube, namespace)
    with EndpointSampler(kube, namespace, SVC) as sampler:
        r = greenlight(cluster, prefect_api, "canary", "-n", namespace, "--service", SVC, "--stable", V1,
                       "--image", "my-app:v2.0.0", "--steps", "50,100", "--cleanup", "scale-to-zero", "--json",
                       timeout=300)
        assert r.returncode == 0, r.stderr[-4000:]
    result = json.loads(r.stdout)
    assert result["canary"] == "my-app-v1-canary" and splits(result) == [(50, 5, 5), (100, 10, 0)]
    canary = read(kube, "Deployment", namespace, "my-app-v1-canary")
    assert canary["spec"]["selector"]["matchLabels"] == {"app": "my-app", "greenlight.io/track": "canary"}
    assert replicas(kube, namespace, V1) == 0, "--cleanup scale-to-zero keeps the old stable at 0"
    assert sampler.min_ready_after_start() >= 10, sampler.describe()
