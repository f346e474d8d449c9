"""The kubelet's truth, not its transient noise: pod_doom over the pod states that Shopify krane's doom-reason
tests (test/unit/krane/kubernetes_resource/pod_test.rb) and prefect-kubernetes' diagnostics tests
(tests/test_diagnostics.py) cover, plus the memory of when a pull error was first seen. The decision is in each
test's name: `fails_at_once`, `fails_after_<grace>`, `waits` (until the ready deadline).

Cases are written here from the pod states those suites describe, adapted to one rule where they differ: a
release only fails fast on what will not pass by itself (krane fails any CrashLoopBackOff at once; here it takes
`crash_restarts`; prefect-kubernetes flags every pull error; here a transient one gets its grace).
"""

from __future__ import annotations

from typing import Any

import pytest

from prefect_greenlight.tasks.decisions.rollout import (
    NOTHING_SEEN,
    DoomReason,
    Verdict,
    pod_doom,
    remember_pull_errors,
    rollout_status,
)
from prefect_greenlight.tasks.spec import Deadlines
from tests.unit.builders import T0, condition, deployment, pod, replicaset

DL = Deadlines(ready_s=600, unschedulable_grace_s=60, image_pull_grace_s=15, crash_restarts=3)


def cs(name: str = "app", *, waiting: str | None = None, message: str = "", terminated: dict | None = None,
       last: dict | None = None, restarts: int = 0) -> dict:
    """A container status with exactly the state given (running when neither waiting nor terminated)."""
    if waiting:
        state: dict[str, Any] = {"waiting": {"reason": waiting, **({"message": message} if message else {})}}
    elif terminated:
        state = {"terminated": terminated}
    else:
        state = {"running": {"startedAt": "2024-05-01T12:00:00Z"}}
    return {"name": name, "image": "busybox", "ready": False, "restartCount": restarts, "state": state,
            "lastState": {"terminated": last} if last else {}}


def term(reason: str, exit_code: int, message: str = "") -> dict:
    return {"reason": reason, "exitCode": exit_code, **({"message": message} if message else {})}


def a_pod(*containers: dict, init: list[dict] | None = None, phase: str = "Pending", reason: str | None = None,
          conditions: list[dict] | None = None, created: float = T0, name: str = "web-abc12-p") -> dict:
    p = pod(name, None, statuses=list(containers) if containers else None, init=init, conditions=conditions,
            created=created)
    p["status"]["phase"] = phase
    if reason:
        p["status"]["reason"] = reason
    return p


def decide(p: dict, now: float, seen_at: float | None = None):
    """pod_doom at `now`, with every pull error of the pod first seen at `seen_at` (None: never seen before)."""
    seen = remember_pull_errors(NOTHING_SEEN, [p], seen_at) if seen_at is not None else NOTHING_SEEN
    doom = pod_doom(p, now, DL, seen)
    return doom[0] if doom else None


# --------------------------------------------------------------------------- krane's pod doom reasons

@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_pull_of_missing_image_fails_at_once(reason):
    p = a_pod(cs(waiting=reason, message="rpc error: code = 2 desc = Error: image library/some-invalid-image "
                                         "not found"))
    assert decide(p, T0) is DoomReason.IMAGE_PULL


def test_pull_of_missing_tag_fails_at_once():
    p = a_pod(cs(waiting="ErrImagePull", message="rpc error: code = 2 desc = Tag thisImageIsBad not found in "
                                                 "repository docker.io/library/hello-world"))
    assert decide(p, T0) is DoomReason.IMAGE_PULL


def test_intermittent_pull_error_waits_within_grace_then_fails_after_grace():
    p = a_pod(cs(waiting="ErrImagePull", message="Failed to pull image 'gcr.io/*': rpc error: code = 2 desc = "
                                                 "net/http: request canceled"))
    assert decide(p, T0 + 14, seen_at=T0) is None
    assert decide(p, T0 + 15, seen_at=T0) is DoomReason.IMAGE_PULL


def test_image_pull_backoff_without_registry_answer_waits_within_grace():
    p = a_pod(cs(waiting="ImagePullBackOff", message="Back-off pulling image 'docker.io/library/hello-world'"))
    assert decide(p, T0 + 10, seen_at=T0) is None


def test_configerror_with_a_plain_reason_fails_at_once():
    p = a_pod(cs(waiting="CreateContainerConfigError", message="The reason it failed"))
    assert decide(p, T0) is DoomReason.CONTAINER_CONFIG


@pytest.mark.parametrize("message", [
    'secret "db-credentials" not found',
    'configmap "app-config" not found',
    "couldn't find key REQUIRED_TOKEN in Secret default/sample-app-secret",
    "couldn't find key LOG_LEVEL in ConfigMap default/app-config",
])
def test_configerror_naming_a_missing_secret_configmap_or_key_fails_at_once(message):
    doom = pod_doom(a_pod(cs(waiting="CreateContainerConfigError", message=message)), T0, DL)
    assert doom[0] is DoomReason.CONTAINER_CONFIG and message in doom[1]


@pytest.mark.parametrize("message", [
    "failed to sync secret cache: timed out waiting for the condition",
    "failed to sync configmap cache: timed out waiting for the condition",
])
def test_configerror_while_secret_or_configmap_cache_syncs_waits(message):
    assert decide(a_pod(cs(waiting="CreateContainerConfigError", message=message)), T0 + 599) is None


def test_configerror_while_secret_cache_syncs_waits_and_says_so():
    dep = deployment("web", {"app": "web"}, replicas=1, updated=1, available=0, revision="2")
    rs = replicaset(dep, revision="2")
    syncing = "failed to sync secret cache: timed out waiting for the condition"
    p = pod("web-abc12-a", rs, statuses=[cs(waiting="CreateContainerConfigError", message=syncing)])
    st = rollout_status(dep, [rs], [p], T0 + 100, DL)
    assert st.verdict is Verdict.WAITING
    assert st.message == ("0 of 1 updated replicas available; pod web-abc12-a container app: "
                          "CreateContainerConfigError failed to sync secret cache: timed out waiting for the condition")


def test_crash_loop_with_exit_1_fails_after_restarts():
    crash = dict(waiting="CrashLoopBackOff", message="Back-off 10s restarting failed container=init-crash-loop",
                 last=term("Error", 1))
    assert decide(a_pod(cs(**crash, restarts=2)), T0 + 60) is None
    doom = pod_doom(a_pod(cs(**crash, restarts=3)), T0 + 60, DL)
    assert doom[0] is DoomReason.CRASH_LOOP and "3 restarts, last exit code 1" in doom[1]


@pytest.mark.parametrize("where", ["state", "lastState"])
def test_container_cannot_run_with_exit_127_fails_at_once(where):
    t = term("ContainerCannotRun", 127, "/not/a/command: no such file or directory")
    status = cs(terminated=t) if where == "state" else cs(waiting="CrashLoopBackOff", last=t, restarts=1)
    doom = pod_doom(a_pod(status), T0, DL)
    assert doom[0] is DoomReason.CONTAINER_CANNOT_RUN
    assert "exit code 127" in doom[1] and "no such file or directory" in doom[1]


def test_container_that_runs_after_a_container_cannot_run_waits():
    t = term("ContainerCannotRun", 127, "exec: not found")
    assert decide(a_pod(cs(last=t, restarts=1)), T0) is None


def test_container_cannot_run_with_exit_128_waits():
    t = term("ContainerCannotRun", 128, "Error response from daemon: grpc: the client connection is closing")
    assert decide(a_pod(cs(terminated=t)), T0) is None


def test_crash_loop_after_container_cannot_run_128_fails_after_restarts():
    t = term("ContainerCannotRun", 128, "grpc: the client connection is closing")
    assert decide(a_pod(cs(waiting="CrashLoopBackOff", last=t, restarts=3)), T0) is DoomReason.CRASH_LOOP


@pytest.mark.parametrize("reason, message", [
    ("Evicted", "The node was low on resource: nodefsInodes."),
    ("Preempting", "Preempted in order to admit critical pod"),
    ("Terminated", "Pod was terminated in response to imminent node shutdown."),
])
def test_failed_pod_of_the_replicaset_waits_for_its_replacement(reason, message):
    """krane: managed pods that fail this way are not doomed, their controller replaces them."""
    p = a_pod(cs(terminated=term("Error", 137), restarts=5, last=term("Error", 1)), phase="Failed", reason=reason)
    p["status"]["message"] = message
    assert decide(p, T0 + 1000) is None


def test_terminating_pod_waits():
    p = a_pod(cs(waiting="InvalidImageName"))
    p["metadata"]["deletionTimestamp"] = "2024-05-01T12:00:01Z"
    assert decide(p, T0) is None


# --------------------------------------------------------------------------- prefect-kubernetes' diagnostics

@pytest.mark.parametrize("status", [
    {},
    {"phase": "Pending"},
    {"phase": "Running", "containerStatuses": [cs()]},
    {"phase": "Succeeded", "containerStatuses": [cs(terminated=term("Completed", 0))]},
    {"phase": "Pending", "conditions": [condition("PodScheduled", "True", "Scheduled")]},
])
def test_healthy_empty_or_finished_pod_waits(status):
    p = a_pod()
    p["status"] = status
    assert decide(p, T0 + 10_000) is None


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull"])
def test_pull_access_denied_fails_at_once(reason):
    p = a_pod(cs("flow-run", waiting=reason, message='rpc error: pull access denied for "myimage"'))
    reason_, message = pod_doom(p, T0, DL)
    assert reason_ is DoomReason.IMAGE_PULL and "flow-run" in message and reason in message


def test_image_pull_backoff_without_message_waits_then_fails_after_grace_from_first_seen():
    p = a_pod(cs("flow-run", waiting="ImagePullBackOff"))
    assert decide(p, T0 + 14, seen_at=T0) is None
    doom = pod_doom(p, T0 + 15, DL, remember_pull_errors(NOTHING_SEEN, [p], T0))
    assert doom[0] is DoomReason.IMAGE_PULL and "15 s since first seen; grace 15 s" in doom[1]


def test_oom_killed_once_waits_and_fails_after_restarts_naming_oom():
    assert decide(a_pod(cs("worker", terminated=term("OOMKilled", 137), restarts=1)), T0) is None
    doom = pod_doom(a_pod(cs("worker", terminated=term("OOMKilled", 137), restarts=3, last=term("OOMKilled", 137))),
                    T0, DL)
    assert doom[0] is DoomReason.OOM_KILLED and "container worker: OOMKilled, 3 restarts" in doom[1]


def test_crash_loop_without_last_state_fails_after_restarts():
    p = a_pod(cs("main", waiting="CrashLoopBackOff", message="back-off 5m0s restarting failed container", restarts=5))
    assert decide(p, T0) is DoomReason.CRASH_LOOP


@pytest.mark.parametrize("message", ["0/3 nodes are available: insufficient cpu.", ""])
def test_unschedulable_waits_within_grace_then_fails_after_grace(message):
    cond = condition("PodScheduled", "False", "Unschedulable", message, since=T0)
    assert decide(a_pod(conditions=[cond]), T0 + 59) is None
    reason, text = pod_doom(a_pod(conditions=[cond]), T0 + 60, DL)
    assert reason is DoomReason.UNSCHEDULABLE and text.endswith(message or "60 s")


def test_evicted_container_waits():
    assert decide(a_pod(cs("main", terminated=term("Evicted", 137)), phase="Running"), T0 + 100) is None


def test_init_container_pull_error_waits_then_fails_after_grace_naming_it():
    p = a_pod(cs("main", waiting="PodInitializing"),
              init=[cs("init-setup", waiting="ImagePullBackOff", message="Back-off pulling image")])
    assert decide(p, T0 + 5, seen_at=T0) is None
    doom = pod_doom(p, T0 + 20, DL, remember_pull_errors(NOTHING_SEEN, [p], T0))
    assert doom[0] is DoomReason.IMAGE_PULL and "container init-setup" in doom[1]


def test_init_container_oom_killed_fails_after_restarts_naming_it():
    p = a_pod(init=[cs("data-loader", terminated=term("OOMKilled", 137), restarts=3)])
    reason, message = pod_doom(p, T0, DL)
    assert reason is DoomReason.OOM_KILLED and "container data-loader" in message


def test_first_doomed_container_in_order_fails_the_pod():
    p = a_pod(cs("a", waiting="CrashLoopBackOff", restarts=3), cs("b", terminated=term("OOMKilled", 137), restarts=3))
    reason, message = pod_doom(p, T0, DL)
    assert reason is DoomReason.CRASH_LOOP and "container a" in message


# --------------------------------------------------------------------------- the pull grace counts from first seen

def test_pull_error_first_seen_late_in_an_old_pod_waits_its_whole_grace():
    """The pod pulled a large image for 10 minutes; then one transient error: the grace starts now."""
    p = a_pod(cs(waiting="ErrImagePull", message="dial tcp 10.0.0.7:443: i/o timeout"), created=T0 - 600)
    seen = remember_pull_errors(NOTHING_SEEN, [p], T0)
    assert pod_doom(p, T0, DL, seen) is None
    assert pod_doom(p, T0 + 14, DL, seen) is None
    assert pod_doom(p, T0 + 15, DL, seen)[0] is DoomReason.IMAGE_PULL


def test_pull_error_unknown_to_the_memory_waits():
    p = a_pod(cs(waiting="ImagePullBackOff", message="Back-off pulling image"), created=T0 - 3600)
    assert decide(p, T0) is None


def test_pull_grace_survives_the_error_clearing_and_returning_then_fails_after_grace():
    erring = a_pod(cs(waiting="ErrImagePull", message="context deadline exceeded"))
    pulling = a_pod(cs(waiting="ContainerCreating"))
    seen = remember_pull_errors(NOTHING_SEEN, [erring], T0)
    seen = remember_pull_errors(seen, [pulling], T0 + 5)
    seen = remember_pull_errors(seen, [erring], T0 + 10)
    assert pod_doom(erring, T0 + 15, DL, seen)[0] is DoomReason.IMAGE_PULL


def test_pull_memory_is_per_container_and_forgets_pods_that_are_gone():
    p = a_pod(cs("a", waiting="ErrImagePull"), cs("b"))
    seen = remember_pull_errors(NOTHING_SEEN, [p], T0)
    p2 = a_pod(cs("a", waiting="ErrImagePull"), cs("b", waiting="ImagePullBackOff"))
    seen2 = remember_pull_errors(seen, [p2], T0 + 10)
    key = p["metadata"]["uid"]
    assert dict(seen2) == {(key, "a"): T0, (key, "b"): T0 + 10}
    assert dict(remember_pull_errors(seen2, [], T0 + 20)) == {}
    assert dict(seen) == {(key, "a"): T0}, "the previous memory is left as it was"
    with pytest.raises(TypeError):
        seen2[(key, "c")] = 0  # type: ignore[index]


@pytest.mark.parametrize("message", [
    "failed to resolve reference: docker.io/library/nginx:nope: not found",
    "manifest unknown: manifest unknown",
    "unauthorized: authentication required",
    "pull access denied, repository does not exist or may require authorization",
    'failed to pull and unpack image: invalid reference format',
])
def test_permanent_pull_answers_fail_at_once_even_when_first_seen_now(message):
    assert decide(a_pod(cs(waiting="ErrImagePull", message=message)), T0, seen_at=T0) is DoomReason.IMAGE_PULL


# --------------------------------------------------------------------------- creating, initializing, pulling

@pytest.mark.parametrize("waiting, message", [
    ("ContainerCreating", ""),
    ("ContainerCreating", 'Pulling image "registry.example.com/big/ml-model:7.2"'),
    ("PodInitializing", ""),
    ("CreateContainerError", 'failed to reserve container name "app_web-abc12-p_default": name is reserved'),
    ("CreateContainerError", "context deadline exceeded"),
])
def test_creating_initializing_or_pulling_a_large_image_waits_until_the_ready_deadline(waiting, message):
    p = a_pod(cs(waiting=waiting, message=message), created=T0 - 590)
    assert decide(p, T0 + 9) is None


def test_create_container_error_of_the_image_fails_at_once():
    p = a_pod(cs(waiting="CreateContainerError", message='Error: container create failed: executable file "x" '
                                                         "not found in $PATH"))
    assert decide(p, T0) is DoomReason.CONTAINER_CREATE


def test_rollout_keeps_waiting_while_the_image_pulls_and_names_it():
    dep = deployment("web", {"app": "web"}, replicas=2, updated=2, available=0, revision="2")
    rs = replicaset(dep, revision="2")
    pulling = cs(waiting="ContainerCreating", message='Pulling image "big:1"')
    pods = [pod("web-abc12-b", rs, statuses=[pulling]), pod("web-abc12-a", rs, statuses=[pulling])]
    st = rollout_status(dep, [rs], pods, T0 + 599, DL)
    assert st.verdict is Verdict.WAITING
    assert st.message == '0 of 2 updated replicas available; pod web-abc12-a container app: ContainerCreating ' \
                         'Pulling image "big:1"'


def test_waiting_note_is_cut_to_a_stable_length():
    dep = deployment("web", {"app": "web"}, replicas=1, updated=1, available=0, revision="2")
    rs = replicaset(dep, revision="2")
    p = pod("web-abc12-a", rs, statuses=[cs(waiting="ContainerCreating", message="x" * 5000)])
    st = rollout_status(dep, [rs], [p], T0, DL)
    assert st.message.endswith("...") and len(st.message) < 260


def test_successive_observations_thread_the_memory_like_wait_rollout():
    """What tasks/kube/waiting.py does on every change: remember, then decide."""
    dep = deployment("web", {"app": "web"}, replicas=1, updated=1, available=0, revision="2")
    rs = replicaset(dep, revision="2")
    pulling = pod("web-abc12-a", rs, created=T0, statuses=[cs(waiting="ContainerCreating")])
    backoff = pod("web-abc12-a", rs, created=T0, statuses=[cs(waiting="ImagePullBackOff",
                                                              message='Back-off pulling image "big:1"')])
    seen, verdicts = NOTHING_SEEN, []
    for now, observed in ((T0 + 100, pulling), (T0 + 200, backoff), (T0 + 214, backoff), (T0 + 215, backoff)):
        seen = remember_pull_errors(seen, [observed], now)
        verdicts.append(rollout_status(dep, [rs], [observed], now, DL, seen).verdict)
    assert verdicts == [Verdict.WAITING, Verdict.WAITING, Verdict.WAITING, Verdict.DOOMED]
