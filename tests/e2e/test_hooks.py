"""Hooks on the real cluster through the real CLI (issue 14): Job hooks (on kwok: `fault-exit0-N` completes after
N s, `fault-exit1-N` fails: tests/README.md) and webhook gates (a receiver on 127.0.0.1 in this process), at their
points of blue-green and canary releases, each watched by the EndpointSampler (no instant without ready endpoints,
no failed ClusterIP request). The dry run's plan lists the hook steps and the run then has exactly those steps.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from prefect_greenlight.tasks.decisions.hooks import HOOKS_ANNOTATION, JOB_NAME_LABEL
from prefect_greenlight.tasks.decisions.lease import DURATION_S, SKEW_S
from prefect_greenlight.tasks.kube.client import list_objects, read
from prefect_greenlight.tasks.kube.waiting import wait_endpoints
from tests.e2e.fault_helpers import poll, require_local, run_cli, selector_of, start_cli
from tests.e2e.hook_receiver import Receiver
from tests.e2e.release_helpers import TUTORIAL1, greenlight, manifest_with, ready, tutorial1
from tests.e2e.sampler import EndpointSampler
from tests.e2e.test_plan import every_resource_version, settled_resource_versions

pytestmark = pytest.mark.usefixtures("prefect_api")
SVC, BLUE, GREEN = "production-svc", "blue-dep", "green-dep"
GREEN_IMAGE = "scubakiz/servicedemo:2.0-fault-exit0-2"  # green serves; a Job pod of this image completes after 2 s


def job_file(tmp_path, name: str, image: str, *command: str) -> str:
    path = tmp_path / f"{name}-job.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [
            {"name": name, "image": image, "command": list(command or ("alembic", "upgrade", "head"))}]}}}}))
    return str(path)


def bg(namespace: str, manifest, *extra: str) -> list[str]:
    return ["blue-green", "-n", namespace, "--service", SVC, "--manifest", str(manifest), "--scale-down-delay", "1",
            "--json", *extra]


def hook_jobs(kube, namespace) -> dict[str, dict]:
    return {j["metadata"]["name"]: j for j in
            list_objects(kube, "Job", namespace, "app.kubernetes.io/managed-by=greenlight")}


def job_pods(kube, namespace, job: str) -> list[dict]:
    return list_objects(kube, "Pod", namespace, f"{JOB_NAME_LABEL}={job}")


def hooks_record(kube, namespace) -> dict:
    return json.loads(read(kube, "Service", namespace, SVC)["metadata"]["annotations"][HOOKS_ANNOTATION])


def result_of(r) -> dict:
    return json.loads(r.stdout)


def assert_still_blue(kube, namespace, sampler) -> None:
    assert selector_of(kube, namespace, SVC) == {"target": BLUE}
    assert wait_endpoints(kube, namespace, SVC, BLUE, 3, 10).ok
    assert read(kube, "Deployment", namespace, GREEN) is None, "the failed green was removed"
    assert sampler.instants_serving({GREEN}) == 0, "the Service never moved to green"
    assert sampler.zero_ready_instants() == 0, sampler.describe()


# ------------------------------------------------------------------------------------------ blue-green
def test_job_and_webhook_hooks_run_where_the_plan_says(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    """A pre-release webhook, a pre-switch migration Job in green's image, a post-switch Job: the dry run plans
    them (and changes nothing), the run does exactly the planned steps; the Jobs are greenlight's (labels, the
    Service as owner, a TTL), their pods' last log lines are in the report, the record says what ran."""
    require_local(cluster)
    tutorial1(kubectl, kube, namespace)
    green = manifest_with(TUTORIAL1 / "green-dep.yaml", tmp_path, image=GREEN_IMAGE)
    with Receiver() as gate:
        args = bg(namespace, green, "--release-id", "r-hooks-1", "--hook-webhook",
                  f"pre-release={gate.url('/pre?token=s3cret')}", "--hook-job",
                  f"pre-switch={job_file(tmp_path, 'migrate', 'placeholder')}", "--hook-job",
                  f"post-switch={job_file(tmp_path, 'check', 'placeholder', 'alembic', 'check')}",
                  "--hook-green-image")
        before = settled_resource_versions(kubectl)
        dry = greenlight(cluster, prefect_api, *args, "--dry-run")
        assert dry.returncode == 0, dry.stderr[-3000:]
        assert every_resource_version(kubectl) == before, "a dry run with hooks changed something"
        plan = result_of(dry)["plan"]
        assert plan["step_names"] == ["preflight", "hook-pre-release-webhook", "apply", "wait-ready", "smoke-test",
                                      "hook-migrate", "approval", "switch", "verify-endpoints", "hook-check",
                                      "post-switch", "cleanup"]
        steps = {s["step"]: s for s in plan["steps"]}
        assert steps["hook-migrate"]["kind"] == "change" and GREEN_IMAGE in steps["hook-migrate"]["change"]
        assert "rolls back without switching" in steps["hook-migrate"]["gate"], steps["hook-migrate"]
        assert "switches back to blue" in steps["hook-check"]["gate"], steps["hook-check"]
        assert steps["hook-pre-release-webhook"]["kind"] == "gate" and "s3cret" not in dry.stdout
        assert len(plan["facts"]["hooks"]) == 3 and "create jobs.batch" in plan["facts"]["permissions_checked"]
        assert not gate.calls, "a dry run calls no webhook"

        with EndpointSampler(kube, namespace, SVC) as sampler:
            r = greenlight(cluster, prefect_api, *args)
            assert r.returncode == 0, r.stderr[-4000:]
        result = result_of(r)
    assert [s["step"] for s in result["steps"]] == plan["step_names"]
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    [call] = gate.calls
    assert call.body["phase"] == "pre-release" and call.body["release_id"] == "r-hooks-1", call.body
    assert (call.body["blue"], call.body["green"], call.body["images"]) == (BLUE, GREEN, [GREEN_IMAGE])
    assert call.key == call.body["delivery"] == "r-hooks-1/pre-release/pre-release-webhook"

    jobs = hook_jobs(kube, namespace)
    assert sorted(jobs) == sorted(steps[s]["touches"].removeprefix("Job ") for s in ("hook-migrate", "hook-check"))
    uid = read(kube, "Service", namespace, SVC)["metadata"]["uid"]
    for job in jobs.values():
        assert job["metadata"]["ownerReferences"][0]["uid"] == uid
        assert job["metadata"]["labels"]["greenlight.io/service"] == SVC
        assert job["spec"]["ttlSecondsAfterFinished"] == 3600
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == GREEN_IMAGE
        assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"]["conditions"])
    migrate = next(h for h in result["hooks"] if h["step"] == "hook-migrate")
    lines = migrate["logs"][0]["lines"]
    assert "$ alembic upgrade head" in lines and "done: exit code 0 after 2 s" in lines, migrate
    assert "$ alembic upgrade head" in r.stderr  # the log lines are printed too
    record = hooks_record(kube, namespace)
    assert record["finished"] == "released" and record["key"] == "r-hooks-1"
    assert sorted(record["done"]) == ["post-switch/check", "pre-release/pre-release-webhook", "pre-switch/migrate"]


FAILING_JOBS = {
    # image, --hook-timeout, the reason named, the Job left behind
    "backoff-limit": ("tools:fault-exit1-1", "600", "BackoffLimitExceeded", "kept"),
    "deadline": ("tools:fault-exit0-60", "3", "DeadlineExceeded", "kept"),
    "pull-error": ("tools:fault-pullerror", "600", "ImagePullBackOff", "deleted"),
}


@pytest.mark.parametrize("case", sorted(FAILING_JOBS))
def test_a_failed_pre_switch_job_rolls_back_and_the_service_never_moves(cluster, prefect_api, kube, namespace,
                                                                        kubectl, tmp_path, case):
    """The Job controller's verdicts (BackoffLimitExceeded, DeadlineExceeded: the Job is kept for inspection until
    its TTL) and a pod's doom reason (a pull error: greenlight deletes the Job so it stops) all fail the hook at
    once; the release rolls back without switching."""
    image, timeout, reason, left = FAILING_JOBS[case]
    require_local(cluster)
    tutorial1(kubectl, kube, namespace)
    failing = job_file(tmp_path, "migrate", image)
    started = time.monotonic()
    with EndpointSampler(kube, namespace, SVC) as sampler:
        r = greenlight(cluster, prefect_api, *bg(namespace, TUTORIAL1 / "green-dep.yaml", "--hook-job",
                                                 f"pre-switch={failing}", "--hook-timeout", timeout))
    took = time.monotonic() - started
    assert r.returncode == 1, r.stderr[-3000:]
    assert "release failed during pre-switch hook" in r.stderr and reason in r.stderr, r.stderr[-3000:]
    if case == "backoff-limit":
        assert "error: exit code 1 after 1 s" in r.stderr, "the failed pod's log lines are reported"
    assert_still_blue(kube, namespace, sampler)
    jobs = hook_jobs(kube, namespace)
    if left == "kept":
        [job] = jobs.values()
        # FailureTarget comes first; Failed once the Job's pods are gone (a deadline's pod takes 6-7 s on kwok)
        assert any(c["type"] in ("FailureTarget", "Failed") and c.get("reason") == reason
                   for c in job["status"]["conditions"]), job
    else:
        assert not jobs or all(j["metadata"].get("deletionTimestamp") for j in jobs.values()), jobs
    assert hooks_record(kube, namespace)["finished"] == "rolled-back"
    assert took < 90, f"failing fast: the release took {took:.0f} s"
    print(f"\n[hook figures] pre-switch Job failing by {reason}: release ended after {took:.1f} s")


def test_a_failed_post_switch_job_switches_back_verified(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    """...and the on-rollback webhook, answering 500, is reported without stopping the rollback."""
    require_local(cluster)
    tutorial1(kubectl, kube, namespace)
    failing = job_file(tmp_path, "contract", "tools:fault-exit1-1")
    with Receiver(lambda _call: 500) as gate, EndpointSampler(kube, namespace, SVC) as sampler:
        r = greenlight(cluster, prefect_api, *bg(namespace, TUTORIAL1 / "green-dep.yaml", "--hook-job",
                                                 f"post-switch={failing}", "--hook-webhook",
                                                 f"on-rollback={gate.url('/rolled-back')}"))
        assert r.returncode == 1, r.stderr[-3000:]
    err = r.stderr
    assert "release failed during post-switch hook" in err, err[-3000:]
    assert "ok: switch Service production-svc back to blue-dep" in err, err[-3000:]
    assert "FAILED: on-rollback hook on-rollback-webhook (hook on-rollback-webhook (on-rollback) failed: HTTP 500" \
        in err, err[-3000:]
    assert [c.body["phase"] for c in gate.calls] == ["on-rollback"]
    assert selector_of(kube, namespace, SVC) == {"target": BLUE}
    assert wait_endpoints(kube, namespace, SVC, BLUE, 3, 10).ok
    assert read(kube, "Deployment", namespace, GREEN) is None
    assert sampler.instants_serving({GREEN}) > 0, "green served between the switch and the switch back"
    assert sampler.zero_ready_instants() == 0, sampler.describe()


@pytest.mark.parametrize("answer", [204, 500, "hang"])
def test_a_pre_switch_webhook_gate(cluster, prefect_api, kube, namespace, kubectl, answer):
    """2xx goes on; 500, or no answer within the hook's timeout, rolls back without switching."""
    tutorial1(kubectl, kube, namespace)
    with Receiver(lambda _call: answer) as gate, EndpointSampler(kube, namespace, SVC) as sampler:
        r = greenlight(cluster, prefect_api, *bg(namespace, TUTORIAL1 / "green-dep.yaml", "--hook-webhook",
                                                 f"pre-switch={gate.url()}", "--hook-timeout", "2"))
    [call] = gate.calls
    assert call.body["phase"] == "pre-switch" and call.body["step"] == "hook-pre-switch-webhook", call.body
    if answer == 204:
        assert r.returncode == 0, r.stderr[-3000:]
        assert selector_of(kube, namespace, SVC) == {"target": GREEN} and ready(kube, namespace, GREEN) == 3
        assert sampler.zero_ready_instants() == 0, sampler.describe()
        return
    assert r.returncode == 1, r.stderr[-3000:]
    why = "HTTP 500: no: the gate says stop" if answer == 500 else "no answer within 2 s"
    assert f"hook pre-switch-webhook (pre-switch) failed: {why}" in r.stderr, r.stderr[-3000:]
    assert_still_blue(kube, namespace, sampler)


def test_a_rerun_after_a_kill_runs_no_completed_hook_twice(cluster, prefect_api, kube, namespace, kubectl,
                                                          tmp_path):
    """Killed while the second pre-switch Job runs: the re-run (a new release id) skips the webhook and the first
    Job (the Service's record), adopts the second Job (its own existence) instead of creating another, and
    finishes the release."""
    require_local(cluster)
    tutorial1(kubectl, kube, namespace)
    with Receiver() as gate, EndpointSampler(kube, namespace, SVC) as sampler:
        args = bg(namespace, TUTORIAL1 / "green-dep.yaml", "--hook-webhook", f"pre-release={gate.url()}",
                  "--hook-job", f"pre-switch={job_file(tmp_path, 'quick', 'tools:fault-exit0-1')}",
                  "--hook-job", f"pre-switch={job_file(tmp_path, 'slow', 'tools:fault-exit0-6')}")
        cli = start_cli(cluster, prefect_api, *args, log=tmp_path / "first.log")
        poll("the slow Job's pod running", lambda: cli.seen("created Job slow-") and any(
            (p.get("status") or {}).get("phase") == "Running" for j in hook_jobs(kube, namespace)
            if j.startswith("slow-") for p in job_pods(kube, namespace, j)), 120, 0.2)
        killed_at = cli.kill()
        first = {name: j["metadata"]["uid"] for name, j in hook_jobs(kube, namespace).items()}
        assert selector_of(kube, namespace, SVC) == {"target": BLUE}
        again = run_cli(cluster, prefect_api, *args, "--lock-wait", str(DURATION_S + SKEW_S + 20), timeout=300)
        took = time.monotonic() - killed_at
    assert again.returncode == 0, again.stderr[-4000:]
    assert len(gate.calls) == 1, "the webhook that answered 2xx is not called again"
    assert {name: j["metadata"]["uid"] for name, j in hook_jobs(kube, namespace).items()} == first, \
        "no Job was created again"
    for name in first:
        assert len(job_pods(kube, namespace, name)) == 1, f"{name} ran one pod"
    err = again.stderr
    assert "hooks: continuing release" in err and "already ran in this release" in err, err[-3000:]
    assert "Job slow-" in err and "exists already (created by an earlier run of this release)" in err, err[-3000:]
    steps = {s["step"]: s["detail"] for s in result_of(again)["steps"]}
    assert steps["hook-quick"].startswith("already ran in this release")
    assert steps["hook-pre-release-webhook"].startswith("already ran in this release")
    assert selector_of(kube, namespace, SVC) == {"target": GREEN}
    assert sampler.zero_ready_instants() == 0, sampler.describe()
    print(f"\n[hook figures] re-run after kill finished {took:.1f} s after the kill")


# ------------------------------------------------------------------------------------------------ canary
def _canary_spec(tmp_path, namespace: str, gate: Receiver, job: str) -> str:
    from tests.e2e.test_canary import CANARY, V1
    from tests.e2e.test_canary import SVC as CSVC

    spec = {"namespace": namespace, "service": CSVC, "stable": V1, "steps": [10, 50, 100],
            "analysis": {"http": None},
            "manifest": yaml.safe_load(CANARY.read_text()),
            "hooks": [{"name": "warm-cache", "at": "pre-release",
                       "job": {"manifest_file": job, "timeout_s": 60}},
                      {"name": "gate", "at": "between-steps", "webhook": {"url": gate.url("/gate")}},
                      {"name": "done", "at": "after-last-step", "webhook": {"url": gate.url("/done")}}]}
    path = tmp_path / "canary-spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_canary_hooks_are_planned_and_run_between_steps(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    from tests.e2e.test_canary import SVC as CSVC
    from tests.e2e.test_canary import V1, V2, given_tutorial2_canary

    require_local(cluster)
    given_tutorial2_canary(kubectl, kube, namespace)
    job = job_file(tmp_path, "warm", "tools:fault-exit0-1", "warm-cache")
    with Receiver() as gate:
        spec = _canary_spec(tmp_path, namespace, gate, job)
        dry = greenlight(cluster, prefect_api, "canary", "--spec", spec, "--json", "--dry-run")
        assert dry.returncode == 0, dry.stderr[-3000:]
        names = result_of(dry)["plan"]["step_names"]
        assert names == ["preflight", "hook-warm-cache", "step-10", "hook-gate-10", "step-50", "hook-gate-50",
                         "step-100", "hook-done", "cleanup"]
        with EndpointSampler(kube, namespace, CSVC) as sampler:
            r = greenlight(cluster, prefect_api, "canary", "--spec", spec, "--json")
            assert r.returncode == 0, r.stderr[-4000:]
    assert [s["step"] for s in result_of(r)["steps"]] == names
    assert [(c.body["percent"], c.body["next_percent"]) for c in gate.on("/gate")] == [(10, 50), (50, 100)]
    assert [c.body["step"] for c in gate.on("/done")] == ["hook-done"]
    assert {c.body["strategy"] for c in gate.calls} == {"canary"} and gate.calls[0].body["blue"] == V1
    assert ready(kube, namespace, V2) == 10
    assert sampler.min_ready_after_start() >= 10, sampler.describe()


def test_a_canary_between_steps_gate_that_says_no_aborts(cluster, prefect_api, kube, namespace, kubectl):
    from tests.e2e.test_canary import SVC as CSVC
    from tests.e2e.test_canary import V2, assert_back_to_stable, canary_args, given_tutorial2_canary

    given_tutorial2_canary(kubectl, kube, namespace)
    with Receiver(lambda call: 200 if call.n == 1 else 500) as gate, \
            EndpointSampler(kube, namespace, CSVC) as sampler:
        r = greenlight(cluster, prefect_api, *canary_args(namespace, "--steps", "10,50,100", "--no-analysis",
                                                          "--hook-webhook", f"between-steps={gate.url()}"))
        assert r.returncode == 1, r.stderr[-3000:]
    assert "hook between-steps-webhook (between-steps) failed: HTTP 500" in r.stderr, r.stderr[-3000:]
    assert [(c.body["percent"], c.body["next_percent"]) for c in gate.calls] == [(10, 50), (50, 100)]
    assert max(c.get(V2, 0) for c in sampler.ready_by_deployment()) == 5, "the canary never went past 50 %"
    assert_back_to_stable(kube, namespace, sampler)
