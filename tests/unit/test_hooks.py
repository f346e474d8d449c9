"""Hooks, decided (tasks/decisions/hooks.py, describe_hooks.py) and specified (tasks/spec/hooks.py): the spec's
points per strategy, the Job greenlight creates, whether a Job is done or doomed, the record that makes a hook run
at most once per release, the webhook's payload and verdict, the hook steps of a plan, the CLI's hook flags."""

from __future__ import annotations

import argparse
import http.server
import json
import threading
import time

import pytest
import yaml

from prefect_greenlight.cli.main import build_parser, build_spec
from prefect_greenlight.tasks.decisions.describe_hooks import HookPlan, planned_hooks
from prefect_greenlight.tasks.decisions.hooks import (
    HOOKS_ANNOTATION,
    HookContext,
    HookRecord,
    JobVerdict,
    adopt_problem,
    hook_key,
    job_body,
    job_name,
    job_status,
    read_hook_record,
    record_for,
    release_fingerprint,
    release_source,
    safe_url,
    step_name,
    webhook_outcome,
    webhook_payload,
)
from prefect_greenlight.tasks.decisions.plan import PlanFacts
from prefect_greenlight.tasks.errors import BadInput, ReleaseFailed, UndoOutcome
from prefect_greenlight.tasks.hooks.webhook import call_webhook
from prefect_greenlight.tasks.spec import BlueGreenSpec, Deadlines, Hook, HookPoint, WebhookHook, parse_spec
from prefect_greenlight.tasks.spec.canary import CanarySpec
from tests.unit.builders import T0, condition, container_status, meta, pod, service, terminated

JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
       "spec": {"template": {"spec": {"containers": [
           {"name": "migrate", "image": "tools:1", "command": ["alembic", "upgrade", "head"]},
           {"name": "sidecar", "image": "proxy:1"}]}}}}
CTX = HookContext("ns", "production-svc", "blue-green", "r1", "blue-dep", "green-dep", ("app:2",), "app:2")


def hook(name="migrate", at="pre-switch", **job) -> Hook:
    return Hook.model_validate({"name": name, "at": at, "job": {"manifest": JOB, **job}})


def webhook(name="gate", at="pre-switch", url="http://gate.example/confirm?token=s3cret") -> Hook:
    return Hook.model_validate({"name": name, "at": at, "webhook": {"url": url}})


def bg_spec(hooks: list[dict]) -> dict:
    return {"service": "production-svc", "image": "app:2", "hooks": hooks}


# -- the spec -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, needle", [
    ({"name": "x", "at": "pre-switch"}, "exactly one of job or webhook"),
    ({"name": "x", "at": "pre-switch", "webhook": {"url": "http://a"}, "job": {"manifest": JOB}},
     "exactly one of job or webhook"),
    ({"name": "x", "at": "pre-switch", "job": {"manifest": {**JOB, "kind": "Pod"}}}, "must be a batch/v1 Job"),
    ({"name": "x", "at": "pre-switch", "job": {"manifest": {"apiVersion": "batch/v1", "kind": "Job"}}},
     "a Job needs at least one container"),
    ({"name": "x", "at": "pre-switch", "job": {"manifest": {**JOB, "spec": {"template": {"spec": {
        "restartPolicy": "Always", "containers": [{"name": "a", "image": "b"}]}}}}}}, "restart Never or OnFailure"),
    ({"name": "x", "at": "pre-switch", "job": {"manifest": JOB, "green_image": True, "container": "nope"}},
     "container 'nope' is not among the Job's containers"),
    ({"name": "x", "at": "pre-switch", "job": {"manifest": JOB, "container": "migrate"}}, "needs green_image"),
    ({"name": "x", "at": "pre-switch", "webhook": {"url": "ftp://a"}}, "should match pattern"),
    ({"name": "Not_A_Label", "at": "pre-switch", "webhook": {"url": "http://a"}}, "should match pattern"),
    ({"name": "x", "at": "whenever", "webhook": {"url": "http://a"}}, "Input should be"),
])
def test_a_bad_hook_is_refused_naming_the_field(bad, needle):
    with pytest.raises(BadInput) as err:
        parse_spec(BlueGreenSpec, bg_spec([bad]))
    assert needle in str(err.value) and "hooks.0" in str(err.value), str(err.value)


def test_each_strategy_has_its_own_points_and_names_are_unique():
    with pytest.raises(BadInput, match="a blue-green release has the points pre-release, pre-switch"):
        parse_spec(BlueGreenSpec, bg_spec([{"name": "g", "at": "between-steps", "webhook": {"url": "http://a"}}]))
    canary = {"service": "s", "stable": "v1", "image": "app:2"}
    with pytest.raises(BadInput, match="a canary release has the points"):
        parse_spec(CanarySpec, {**canary, "hooks": [{"name": "g", "at": "pre-switch", "webhook": {"url": "http://a"}}]})
    ok = parse_spec(CanarySpec, {**canary, "hooks": [{"name": "g", "at": p, "webhook": {"url": "http://a"}} for p in
                                                     ("between-steps",)]})
    assert ok.hooks[0].at is HookPoint.BETWEEN_STEPS
    with pytest.raises(BadInput, match="hook names must be unique: g used more than once"):
        parse_spec(BlueGreenSpec, bg_spec([{"name": "g", "at": "pre-switch", "webhook": {"url": "http://a"}},
                                           {"name": "g", "at": "post-switch", "webhook": {"url": "http://b"}}]))


# -- the Job ------------------------------------------------------------------------------------------------
def test_the_job_is_greenlights_with_the_green_image_where_asked():
    h = hook(green_image=True, container="migrate", ttl_s=120)
    body = job_body(h, CTX, "migrate-1a2b3c4d", "pre-switch/migrate", "r1", "svc-uid")
    meta_ = body["metadata"]
    assert meta_["name"] == "migrate-1a2b3c4d" and meta_["namespace"] == "ns"
    assert meta_["labels"] == {"app.kubernetes.io/managed-by": "greenlight", "greenlight.io/service": "production-svc",
                               "greenlight.io/hook": "migrate", "greenlight.io/hook-point": "pre-switch",
                               "greenlight.io/release-id": "r1"}
    assert meta_["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "production-svc",
                                         "uid": "svc-uid"}]
    assert meta_["annotations"] == {"greenlight.io/hook-key": "pre-switch/migrate", "greenlight.io/release-key": "r1"}
    spec = body["spec"]
    assert (spec["ttlSecondsAfterFinished"], spec["activeDeadlineSeconds"], spec["backoffLimit"]) == (120, 600, 0)
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert [c["image"] for c in pod_spec["containers"]] == ["app:2", "proxy:1"], "only the named container"
    assert JOB["spec"]["template"]["spec"]["containers"][0]["image"] == "tools:1", "the spec's manifest is untouched"
    every = job_body(hook(green_image=True), CTX, "n", "k", "r1", "u")["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in every] == ["app:2", "app:2"]


def test_what_the_manifest_sets_is_kept():
    manifest = {**JOB, "spec": {**JOB["spec"], "backoffLimit": 3, "ttlSecondsAfterFinished": 5,
                                "activeDeadlineSeconds": 99}}
    h = Hook.model_validate({"name": "m", "at": "pre-switch", "job": {"manifest": manifest}})
    spec = job_body(h, CTX, "n", "k", "r1", "u")["spec"]
    assert (spec["backoffLimit"], spec["ttlSecondsAfterFinished"], spec["activeDeadlineSeconds"]) == (3, 5, 99)
    assert [c["image"] for c in spec["template"]["spec"]["containers"]] == ["tools:1", "proxy:1"]


def test_job_names_are_labels_stable_per_release_and_hook():
    long = hook(name="a" * 63)
    name = job_name(long, "r1", hook_key(long))
    assert len(name) <= 63 and name.startswith("a" * 54 + "-")
    h = hook()
    assert job_name(h, "r1", "pre-switch/migrate") == job_name(h, "r1", "pre-switch/migrate")
    assert job_name(h, "r1", "pre-switch/migrate") != job_name(h, "r2", "pre-switch/migrate")
    assert job_name(h, "r1", "between-steps/migrate@10") != job_name(h, "r1", "between-steps/migrate@30")


def test_only_greenlights_own_job_for_this_hook_is_adopted():
    mine = {"metadata": {"name": "m-1", "labels": {"app.kubernetes.io/managed-by": "greenlight"},
                         "annotations": {"greenlight.io/hook-key": "pre-switch/migrate"}}}
    assert adopt_problem(mine, "pre-switch/migrate") is None
    assert "was not created by greenlight for hook post-switch/migrate" in adopt_problem(mine, "post-switch/migrate")
    assert adopt_problem({"metadata": {"name": "m-1"}}, "pre-switch/migrate")


def _job(*conditions: dict, **status) -> dict:
    return {"kind": "Job", "metadata": meta("Job", "migrate-1"), "status": {"conditions": list(conditions), **status}}


def _job_pod(job: dict, *statuses: dict, phase: str = "Running") -> dict:
    p = pod("migrate-1-abcde", None, statuses=list(statuses))
    p["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": "migrate-1",
                                         "uid": job["metadata"]["uid"], "controller": True}]
    p["status"]["phase"] = phase
    return p


D = Deadlines(crash_restarts=2)


@pytest.mark.parametrize("conds, verdict, reason", [
    ((condition("SuccessCriteriaMet", "True", "CompletionsReached"), condition("Complete", "True")), "done", ""),
    ((condition("Complete", "True"),), "done", ""),
    ((condition("FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),),
     "failed", "BackoffLimitExceeded"),
    ((condition("Failed", "True", "DeadlineExceeded", "Job was active longer than specified deadline"),),
     "failed", "DeadlineExceeded"),
    ((condition("Complete", "False"),), "waiting", ""),
])
def test_a_job_is_done_or_failed_by_its_own_conditions(conds, verdict, reason):
    status = job_status(_job(*conds, succeeded=1), [], T0, D)
    assert (status.verdict.value, status.reason) == (verdict, reason), status
    if reason:
        assert reason in status.message and "0 active, 1 succeeded" in status.message


@pytest.mark.parametrize("statuses, phase, verdict, reason", [
    ([container_status("migrate", waiting="ErrImagePull", message="failed to pull: not found")], "Pending",
     "failed", "ImagePullBackOff"),
    ([container_status("migrate", waiting="CreateContainerConfigError", message='secret "db" not found')], "Pending",
     "failed", "CreateContainerConfigError"),
    ([container_status("migrate", waiting="CrashLoopBackOff", restarts=2, last=terminated())], "Running",
     "failed", "CrashLoopBackOff"),
    ([container_status("migrate", waiting="ContainerCreating")], "Pending", "waiting", ""),
    # a failed pod is the Job controller's to count against backoffLimit, not a doom of greenlight's
    ([container_status("migrate", last=terminated())], "Failed", "waiting", ""),
])
def test_a_jobs_pods_fail_it_fast_on_their_doom_reasons(statuses, phase, verdict, reason):
    job = _job(active=1)
    status = job_status(job, [_job_pod(job, *statuses, phase=phase)], T0, D)
    assert (status.verdict.value, status.reason) == (verdict, reason), status
    if verdict == "failed":
        assert status.pod == "migrate-1-abcde"


def test_pods_of_another_job_and_a_deleted_job():
    job, other = _job(active=1), _job(active=1)
    other["metadata"]["uid"] = "someone-else"
    doomed = _job_pod(other, container_status("migrate", waiting="InvalidImageName"), phase="Pending")
    assert job_status(job, [doomed], T0, D).verdict is JobVerdict.WAITING
    gone = job_status(None, [], T0, D)
    assert (gone.verdict, gone.reason) == (JobVerdict.FAILED, "Deleted")


# -- the record ---------------------------------------------------------------------------------------------
def test_the_record_is_this_releases_until_it_finished():
    assert record_for(None, "fp", "r2") == HookRecord("fp", "r2")
    running = HookRecord("fp", "r1").with_done("pre-switch/migrate", "Job migrate-1: Complete")
    assert record_for(running, "fp", "r2") is running, "a re-run continues the release it belongs to"
    assert record_for(running, "other", "r2") == HookRecord("other", "r2"), "another release starts afresh"
    assert record_for(running.finished_as("released"), "fp", "r2") == HookRecord("fp", "r2"), \
        "a release that ended is over: the same version released again runs its hooks again"
    svc = service("production-svc", {}, annotations={HOOKS_ANNOTATION: running.annotation()})
    back = read_hook_record(svc)
    assert back is not None and dict(back.done) == {"pre-switch/migrate": "Job migrate-1: Complete"}
    assert (back.fingerprint, back.key, back.finished) == ("fp", "r1", "")
    assert read_hook_record(service("s", {}, annotations={HOOKS_ANNOTATION: "{not json"})) is None
    assert read_hook_record(service("s", {})) is None


def test_the_fingerprint_is_what_is_released_not_how():
    a = BlueGreenSpec(service="s", image="app:2")
    b = BlueGreenSpec(service="s", image="app:2", lock_wait_s=40, approval={"mode": "manual"}, release_id="x")
    c = BlueGreenSpec(service="s", image="app:3")
    fp = [release_fingerprint("blue-green", s.service, release_source(s)) for s in (a, b, c)]
    assert fp[0] == fp[1] != fp[2]
    assert release_fingerprint("canary", "s", release_source(a)) != fp[0]


def test_keys_and_step_names():
    between = Hook.model_validate({"name": "gate", "at": "between-steps", "webhook": {"url": "http://a"}})
    assert (hook_key(between, 30), step_name(between, 30)) == ("between-steps/gate@30", "hook-gate-30")
    assert (hook_key(hook()), step_name(hook())) == ("pre-switch/migrate", "hook-migrate")


# -- the webhook --------------------------------------------------------------------------------------------
def test_the_webhook_is_told_the_release():
    body = webhook_payload(CTX, webhook(), "hook-gate", "r1/pre-switch/gate")
    assert body == {"release_id": "r1", "service": "production-svc", "namespace": "ns", "strategy": "blue-green",
                    "blue": "blue-dep", "green": "green-dep", "images": ["app:2"], "step": "hook-gate",
                    "phase": "pre-switch", "hook": "gate", "delivery": "r1/pre-switch/gate"}
    assert webhook_payload(CTX, webhook(), "s", "d", 10, 30)["percent"] == 10


@pytest.mark.parametrize("status, error, ok, message", [
    (200, "", True, "HTTP 200"), (204, "", True, "HTTP 204"), (299, "", True, "HTTP 299"),
    (302, "", False, "HTTP 302"), (500, "boom", False, "HTTP 500: boom"), (404, "", False, "HTTP 404"),
    (None, "", False, "no answer within 2 s"), (None, "ConnectionError", False, "ConnectionError"),
])
def test_2xx_is_go_and_anything_else_fails(status, error, ok, message):
    assert webhook_outcome(status, error, 2) == (ok, message)


def test_urls_are_shown_without_their_secrets():
    assert safe_url("https://user:pw@gate.example:8443/a/b?token=s3cret#x") == "https://gate.example:8443/a/b"
    assert safe_url("http://127.0.0.1:9") == "http://127.0.0.1:9"


class _Gate:
    def __init__(self, answer):
        seen = self.seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                seen.append((self.headers["Idempotency-Key"], json.loads(self.rfile.read(
                    int(self.headers["Content-Length"])))))
                if answer == "hang":
                    time.sleep(1.5)
                    return
                self.send_response(answer)
                if answer == 302:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"nope")

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/gate?token=s3cret"


@pytest.mark.parametrize("answer, ok, starts", [(200, True, "HTTP 200 ("), (500, False, "HTTP 500: nope ("),
                                                (302, False, "HTTP 302: nope ("),
                                                ("hang", False, "no answer within 0.5 s (")])
def test_call_webhook_against_a_local_gate(answer, ok, starts):
    gate = _Gate(answer)
    try:
        got, detail = call_webhook(WebhookHook(url=gate.url, timeout_s=0.5), {"phase": "pre-switch"}, "r1/k")
    finally:
        gate.server.shutdown()
    assert got is ok and detail.startswith(starts), detail
    assert gate.seen == [("r1/k", {"phase": "pre-switch"})]
    assert "s3cret" not in detail


def test_a_webhook_nobody_answers_fails_without_naming_the_url():
    ok, detail = call_webhook(WebhookHook(url="http://127.0.0.1:9/x?token=s3cret", timeout_s=1), {}, "k")
    assert not ok and detail.startswith("ConnectionError") and "s3cret" not in detail


# -- the plan -----------------------------------------------------------------------------------------------
def test_hook_steps_in_the_plan_and_what_a_failure_does():
    plan = HookPlan((hook(green_image=True, container="migrate"), webhook(at="post-switch"),
                     webhook("notify", "on-rollback")),
                    HookRecord("fp", "r1"), "app:2")
    [job_step] = plan.steps(HookPoint.PRE_SWITCH)
    assert job_step.name == "hook-migrate"
    assert job_step.touches == f"Job {job_name(hook(), 'r1', 'pre-switch/migrate')}"
    assert "app:2, proxy:1" in job_step.change and "container migrate: app:2 alembic upgrade head" in job_step.details
    assert "backoffLimit 0" in job_step.gate and "rolls back without switching" in job_step.gate
    [gate] = plan.steps(HookPoint.POST_SWITCH)
    assert gate.touches == "POST http://gate.example/confirm" and "switches back to blue" in gate.gate
    assert plan.steps(HookPoint.ON_ROLLBACK), "planned, though only the facts list it for a blue-green plan"
    assert any("on-rollback: notify" in f and "only if the release rolls back" in f for f in plan.facts())
    done = HookPlan((hook(),), HookRecord("fp", "r1").with_done("pre-switch/migrate", "Job migrate-x: Complete"))
    [skipped] = done.steps(HookPoint.PRE_SWITCH)
    assert skipped.change.startswith("skipped: already ran in this release")
    assert "completed and will not run again" in done.facts()[-1]


def test_blue_green_and_canary_plans_put_hooks_at_their_points():
    from prefect_greenlight.tasks.bluegreen.strategy import blue_green_plan
    from tests.unit.test_plan import _canary, _release

    hooks = (webhook("pre", "pre-release"), hook(), webhook("post", "post-switch"), webhook("rb", "on-rollback"))
    specced = {"hooks": [h.model_dump() for h in hooks]}  # the run's steps come from the spec's hooks
    plan = blue_green_plan(_release(specced), service("production-svc", {"target": "blue-dep"}), None, PlanFacts(),
                           HookPlan(hooks, HookRecord("fp", "r1"), "app:2"))
    assert plan.step_names() == ["preflight", "hook-pre", "apply", "wait-ready", "smoke-test", "hook-migrate",
                                 "approval", "switch", "verify-endpoints", "hook-post", "post-switch", "cleanup"]
    resumed = blue_green_plan(_release(specced, already_live=True), service("production-svc", {}), None, PlanFacts(),
                              HookPlan(hooks, HookRecord("fp", "r1"), "app:2"))
    assert resumed.step_names() == ["preflight", "wait-ready", "verify-endpoints", "hook-post", "post-switch",
                                    "cleanup"]
    canary_hooks = tuple(Hook.model_validate({"name": n, "at": at, "webhook": {"url": "http://a"}}) for n, at in (
        ("pre", "pre-release"), ("first", "before-first-step"), ("gate", "between-steps"), ("last", "after-last-step")))
    names = _canary({"steps": [10, 50, 100], "analysis": {"http": None}},
                    hooks=HookPlan(canary_hooks, HookRecord("fp", "r1"))).step_names()
    assert names == ["preflight", "hook-pre", "hook-first", "step-10", "hook-gate-10", "step-50", "hook-gate-50",
                     "step-100", "hook-last", "cleanup"]


def test_planned_hooks_adopt_this_releases_unfinished_record():
    spec = BlueGreenSpec.model_validate(bg_spec([{"name": "migrate", "at": "pre-switch", "job": {"manifest": JOB}}]))
    fp = release_fingerprint("blue-green", spec.service, release_source(spec))
    earlier = HookRecord(fp, "r0").with_done("pre-switch/migrate", "done")
    svc = service("production-svc", {}, annotations={HOOKS_ANNOTATION: earlier.annotation()})
    plan = planned_hooks(spec, "blue-green", svc, "r9", ["app:2"])
    assert plan.record.key == "r0" and plan.steps(HookPoint.PRE_SWITCH)[0].change.startswith("skipped")
    fresh = planned_hooks(spec, "blue-green", service("production-svc", {}), "r9", ["app:2"])
    assert fresh.record.key == "r9" and fresh.green_image == "app:2"


# -- the failure's report -----------------------------------------------------------------------------------
def test_an_on_rollback_failure_is_a_note_not_a_failed_undo():
    failure = ReleaseFailed("boom", "post-switch hook", [UndoOutcome("switch back", True, "verified")],
                            ["FAILED: on-rollback hook notify (HTTP 500)"])
    assert failure.rolled_back
    assert str(failure).endswith("  - ok: switch back (verified)\nafter the rollback:\n"
                                 "  - FAILED: on-rollback hook notify (HTTP 500)")


# -- the CLI ------------------------------------------------------------------------------------------------
def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["blue-green", "--service", "production-svc", "-n", "ns", *argv])


def test_hook_flags_make_hooks(tmp_path):
    job = tmp_path / "migrate.yaml"
    job.write_text(yaml.safe_dump(JOB))
    spec = build_spec(_args("--image", "app:2", "--hook-job", f"pre-switch={job}", "--hook-green-image",
                            "--hook-webhook", "pre-switch=http://a/gate", "--hook-webhook", "post-switch=http://b",
                            "--hook-timeout", "30"))
    assert [(h.name, h.at.value, h.kind) for h in spec.hooks] == [
        ("migrate", "pre-switch", "job"), ("pre-switch-webhook", "pre-switch", "webhook"),
        ("post-switch-webhook", "post-switch", "webhook")]
    assert spec.hooks[0].job.green_image and spec.hooks[0].job.timeout_s == 30
    assert spec.hooks[1].webhook.timeout_s == 30
    twice = build_spec(_args("--image", "app:2", "--hook-webhook", "pre-switch=http://a",
                             "--hook-webhook", "pre-switch=http://b"))
    assert [h.name for h in twice.hooks] == ["pre-switch-webhook", "pre-switch-webhook-2"]


def test_a_spec_file_reads_manifest_file_relative_to_itself(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "expand.yaml").write_text(yaml.safe_dump(JOB))
    spec_file = tmp_path / "release.yaml"
    spec_file.write_text(yaml.safe_dump({"image": "app:2", "hooks": [
        {"name": "expand", "at": "pre-switch", "job": {"manifest_file": "jobs/expand.yaml", "green_image": True}}]}))
    spec = build_spec(_args("--spec", str(spec_file)))
    assert spec.hooks[0].job.manifest["metadata"]["name"] == "migrate"


@pytest.mark.parametrize("argv, needle", [
    (("--hook-job", "pre-switch"), "--hook-job takes POINT=VALUE"),
    (("--hook-webhook", "=http://a"), "--hook-webhook takes POINT=VALUE"),
    (("--hook-webhook", "between-steps=http://a"), "a blue-green release has the points"),
])
def test_bad_hook_flags_are_bad_input(argv, needle):
    with pytest.raises(BadInput, match=needle):
        build_spec(_args("--image", "app:2", *argv))


def test_a_hook_file_without_one_job_is_bad_input(tmp_path):
    f = tmp_path / "two.yaml"
    f.write_text(yaml.safe_dump_all([JOB, JOB]))
    with pytest.raises(BadInput, match="expected exactly one Job, found kinds: Job, Job"):
        build_spec(_args("--image", "app:2", "--hook-job", f"pre-switch={f}"))


def test_the_database_walk_through_reads_as_documented():
    """examples/database: v2's expand (pre-switch) and verify (post-switch) Jobs in green's image, v3's contract
    before anything is applied; the Jobs read relative to the spec file."""
    from tests.unit.test_layout import ROOT

    ex = ROOT / "examples" / "database"
    v2 = build_spec(_args("--spec", str(ex / "v2-release.yaml"), "--manifest",
                          str(ROOT / "examples" / "tutorial1" / "green-dep.yaml")))
    assert [(h.name, h.at.value, h.job.green_image) for h in v2.hooks] == [("expand", "pre-switch", True),
                                                                           ("verify", "post-switch", True)]
    assert v2.hooks[0].job.manifest["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "alembic", "upgrade", "0002_add_full_name"]
    v3 = build_spec(_args("--spec", str(ex / "v3-release.yaml"), "--image", "my-app:3.0"))
    assert [(h.name, h.at.value) for h in v3.hooks] == [("contract", "pre-release")]
    assert "0003_drop_name" in v3.hooks[0].job.manifest["spec"]["template"]["spec"]["containers"][0]["command"]
