"""rollout_status (kubectl rollout status ordering + fail-fast) and pod_doom, table-driven over API-shaped dicts."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.decisions.rollout import (
    NOTHING_SEEN,
    DoomReason,
    Verdict,
    new_replicaset,
    pod_doom,
    remember_pull_errors,
    rollout_status,
)
from prefect_greenlight.tasks.spec import Deadlines
from tests.unit.builders import T0, condition, container_status, deployment, pod, replicaset, terminated

DL = Deadlines(unschedulable_grace_s=60, image_pull_grace_s=15, crash_restarts=3)
LABELS = {"app": "my-app", "version": "green"}


def green(**kw):
    kw.setdefault("revision", "2")
    return deployment("green-dep", LABELS, **kw)


def status_of(dep, pods=(), rss=None, now=T0 + 5, seen=NOTHING_SEEN):
    rss = rss if rss is not None else [replicaset(dep)]
    return rollout_status(dep, rss, list(pods), now, DL, seen)


# --------------------------------------------------------------------------- rollout_status ordering

@pytest.mark.parametrize("kw, verdict, needle", [
    # 1. spec change not yet observed: wait, even if every count looks finished
    (dict(generation=3, observed=2), Verdict.WAITING, "spec update to be observed"),
    # 2. progress deadline: fatal
    (dict(conditions=[condition("Progressing", "False", "ProgressDeadlineExceeded")]), Verdict.DOOMED,
     "exceeded its progress deadline"),
    # 3. fewer updated than desired
    (dict(replicas=3, updated=1, total=3, available=1), Verdict.WAITING, "1 of 3 updated replicas"),
    # 4. old replicas still around
    (dict(replicas=3, updated=3, total=5, available=3), Verdict.WAITING, "2 old replicas pending termination"),
    # 5. updated but not yet available
    (dict(replicas=3, updated=3, total=3, available=2), Verdict.WAITING, "2 of 3 updated replicas available"),
    # 6. done
    (dict(replicas=3), Verdict.DONE, "3 of 3 replicas available"),
    # 0 replicas: nothing would ever serve — a release refuses rather than calling it done
    (dict(replicas=0), Verdict.DOOMED, "0 replicas"),
    # missing counts in status count as 0
    (dict(replicas=2, updated=0, total=0, available=0), Verdict.WAITING, "0 of 2 updated replicas"),
])
def test_rollout_status_verdicts(kw, verdict, needle):
    st = status_of(green(**kw))
    assert st.verdict is verdict
    assert needle in st.message
    assert st.done is (verdict is Verdict.DONE)


def test_progress_deadline_reason_and_counts():
    st = status_of(green(replicas=3, updated=2, available=1,
                         conditions=[condition("Progressing", "False", "ProgressDeadlineExceeded")]))
    assert (st.reason, st.desired, st.updated, st.available) == (DoomReason.PROGRESS_DEADLINE, 3, 2, 1)


def test_unobserved_generation_beats_progress_deadline():
    """kubectl checks observedGeneration first: a stale ProgressDeadlineExceeded must not fail a new spec."""
    st = status_of(green(generation=4, observed=3,
                         conditions=[condition("Progressing", "False", "ProgressDeadlineExceeded")]))
    assert st.verdict is Verdict.WAITING


def test_progressing_true_is_not_doomed():
    st = status_of(green(replicas=3, updated=1, conditions=[condition("Progressing", "True", "ReplicaSetUpdated")]))
    assert st.verdict is Verdict.WAITING


def test_updated_check_precedes_old_replicas_and_available():
    st = status_of(green(replicas=4, updated=2, total=6, available=0))
    assert st.message == "2 of 4 updated replicas"


def test_missing_spec_replicas_defaults_to_one():
    st = status_of(green(replicas=None))
    assert st.verdict is Verdict.DONE and st.desired == 1


# --------------------------------------------------------------------------- new ReplicaSet only

def test_new_replicaset_is_owned_and_same_revision():
    dep = green(revision="2")
    old, new = replicaset(dep, revision="1", suffix="old11"), replicaset(dep, revision="2", suffix="new22")
    foreign = replicaset(deployment("other", {"app": "x"}, revision="2"), suffix="zz")
    assert new_replicaset(dep, [foreign, old, new])["metadata"]["name"] == "green-dep-new22"
    assert new_replicaset(dep, [foreign, old]) is None


def test_crash_looping_pod_of_old_replicaset_does_not_doom():
    dep = green(revision="2", replicas=2, updated=2, total=3, available=2)
    old, new = replicaset(dep, revision="1", suffix="old11"), replicaset(dep, revision="2", suffix="new22")
    bad = pod("green-dep-old11-a", old, statuses=[container_status(waiting="CrashLoopBackOff", restarts=9,
                                                                   last=terminated())])
    ok = pod("green-dep-new22-a", new, statuses=[container_status(ready=True)])
    st = status_of(dep, [bad, ok], rss=[old, new])
    assert st.verdict is Verdict.WAITING
    assert "old replicas pending termination" in st.message


def test_crash_looping_pod_of_new_replicaset_dooms_and_names_pod():
    dep = green(revision="2", replicas=2, updated=2, available=1)
    old, new = replicaset(dep, revision="1", suffix="old11"), replicaset(dep, revision="2", suffix="new22")
    bad = pod("green-dep-new22-b", new, statuses=[container_status(waiting="CrashLoopBackOff", restarts=3,
                                                                   last=terminated(exit_code=2))])
    st = status_of(dep, [bad], rss=[old, new])
    assert (st.verdict, st.reason, st.pod) == (Verdict.DOOMED, DoomReason.CRASH_LOOP, "green-dep-new22-b")
    assert "3 restarts" in st.message and "exit code 2" in st.message


def test_pod_owned_by_no_replicaset_is_ignored():
    dep = green(replicas=1, updated=1, available=0)
    stray = pod("stray", None, statuses=[container_status(waiting="InvalidImageName")])
    assert status_of(dep, [stray]).verdict is Verdict.WAITING


@pytest.mark.parametrize("on", ["deployment", "replicaset"])
def test_replica_failure_condition_dooms(on):
    fail = condition("ReplicaFailure", "True", "FailedCreate", 'pods "x" is forbidden: exceeded quota')
    dep = green(replicas=2, updated=0, available=0,
                conditions=[fail] if on == "deployment" else [condition("Progressing", "True", "NewReplicaSetCreated")])
    rs = replicaset(dep, conditions=[fail] if on == "replicaset" else None)
    st = status_of(dep, rss=[rs])
    assert (st.verdict, st.reason) == (Verdict.DOOMED, DoomReason.REPLICA_FAILURE)
    assert "FailedCreate" in st.message and "exceeded quota" in st.message


def test_replica_failure_false_is_ignored():
    dep = green(replicas=2, updated=1, conditions=[condition("ReplicaFailure", "False", "FailedCreate")])
    assert status_of(dep).verdict is Verdict.WAITING


# --------------------------------------------------------------------------- pod_doom

def one(status=None, *, init=None, conditions=None, created=T0):
    return pod("green-dep-abc12-p", None, statuses=[status] if status else None, init=init,
               conditions=conditions, created=created)


NOT_FOUND = ('failed to pull and unpack image "docker.io/library/nginx:nope": failed to resolve reference '
             '"docker.io/library/nginx:nope": docker.io/library/nginx:nope: not found')


@pytest.mark.parametrize("cs, age, expected", [
    # permanent pull errors: immediate
    (container_status(waiting="ErrImagePull", message=NOT_FOUND), 1, DoomReason.IMAGE_PULL),
    (container_status(waiting="ImagePullBackOff", message="manifest unknown: manifest unknown"), 1,
     DoomReason.IMAGE_PULL),
    (container_status(waiting="ErrImagePull", message="pull access denied, repository does not exist"), 1,
     DoomReason.IMAGE_PULL),
    # transient pull errors: only after the grace (here first seen at T0, the pod's creation)
    (container_status(waiting="ErrImagePull", message="dial tcp: i/o timeout"), 14, None),
    (container_status(waiting="ErrImagePull", message="dial tcp: i/o timeout"), 15, DoomReason.IMAGE_PULL),
    (container_status(waiting="ImagePullBackOff", message='Back-off pulling image "nginx:1.25"'), 5, None),
    (container_status(waiting="ImagePullBackOff", message='Back-off pulling image "nginx:1.25"'), 30,
     DoomReason.IMAGE_PULL),
    # immediate waiting reasons
    (container_status(waiting="InvalidImageName", message='Failed to apply default image tag "x:"'), 0,
     DoomReason.INVALID_IMAGE),
    (container_status(waiting="CreateContainerConfigError", message='secret "db" not found'), 0,
     DoomReason.CONTAINER_CONFIG),
    (container_status(waiting="CreateContainerError"), 0, DoomReason.CONTAINER_CREATE),
    (container_status(waiting="RunContainerError"), 0, DoomReason.RUN_CONTAINER),
    (container_status(waiting="ErrImageNeverPull"), 0, DoomReason.IMAGE_PULL),
    # crash loops: only at crash_restarts (3)
    (container_status(waiting="CrashLoopBackOff", restarts=2, last=terminated()), 100, None),
    (container_status(waiting="CrashLoopBackOff", restarts=3, last=terminated()), 100, DoomReason.CRASH_LOOP),
    (container_status(waiting="CrashLoopBackOff", restarts=3), 100, DoomReason.CRASH_LOOP),
    # running again right after a crash, restart count at the threshold: still a crash loop
    (container_status(restarts=4, last=terminated()), 100, DoomReason.CRASH_LOOP),
    # OOMKilled in lastState
    (container_status(waiting="CrashLoopBackOff", restarts=3, last=terminated("OOMKilled", 137)), 100,
     DoomReason.OOM_KILLED),
    (container_status(restarts=1, last=terminated("OOMKilled", 137)), 100, None),
    # healthy, and harmless waiting
    (container_status(ready=True), 1000, None),
    (container_status(waiting="ContainerCreating"), 1000, None),
    (container_status(waiting="PodInitializing"), 1000, None),
])
def test_pod_doom_container_states(cs, age, expected):
    p = one(cs, created=T0)
    doom = pod_doom(p, T0 + age, DL, remember_pull_errors(NOTHING_SEEN, [p], T0))
    assert (doom[0] if doom else None) == expected
    if doom:
        assert "green-dep-abc12-p" in doom[1] and "container app" in doom[1]


def test_pod_doom_message_carries_registry_answer():
    reason, msg = pod_doom(one(container_status(waiting="ErrImagePull", message=NOT_FOUND)), T0, DL)
    assert reason is DoomReason.IMAGE_PULL and "not found" in msg and "ErrImagePull" in msg


def test_oom_message_names_restarts():
    cs = container_status(waiting="CrashLoopBackOff", restarts=5, last=terminated("OOMKilled", 137))
    reason, msg = pod_doom(one(cs), T0 + 60, DL)
    assert reason is DoomReason.OOM_KILLED and "OOMKilled, 5 restarts" in msg


def test_init_container_failures_count():
    init = [container_status("migrate", waiting="CrashLoopBackOff", restarts=3, last=terminated())]
    reason, msg = pod_doom(one(None, init=init), T0 + 60, DL)
    assert reason is DoomReason.CRASH_LOOP and "container migrate" in msg


@pytest.mark.parametrize("since_ago, expected", [
    (59, None),
    (60, DoomReason.UNSCHEDULABLE),
    (600, DoomReason.UNSCHEDULABLE),
])
def test_unschedulable_only_after_grace(since_ago, expected):
    now = T0 + 1000
    cond = condition("PodScheduled", "False", "Unschedulable", "0/3 nodes are available: 3 Insufficient cpu.",
                     since=now - since_ago)
    doom = pod_doom(one(None, conditions=[cond]), now, DL)
    assert (doom[0] if doom else None) == expected
    if doom:
        assert "Insufficient cpu" in doom[1] and f"{since_ago} s" in doom[1]


def test_unschedulable_without_transition_time_counts_from_creation():
    cond = condition("PodScheduled", "False", "Unschedulable")
    assert pod_doom(one(None, conditions=[cond], created=T0), T0 + 59, DL) is None
    assert pod_doom(one(None, conditions=[cond], created=T0), T0 + 61, DL)[0] is DoomReason.UNSCHEDULABLE


def test_scheduled_pod_is_not_unschedulable():
    cond = condition("PodScheduled", "True", since=T0)
    assert pod_doom(one(None, conditions=[cond]), T0 + 9999, DL) is None


def test_terminating_pod_is_never_doomed():
    p = pod("x", None, statuses=[container_status(waiting="InvalidImageName")], deleting=True)
    assert pod_doom(p, T0, DL) is None


def test_rollout_doom_names_first_doomed_pod_in_name_order():
    dep = green(replicas=2, updated=2, available=0)
    rs = replicaset(dep)
    b = pod("green-dep-abc12-b", rs, statuses=[container_status(waiting="InvalidImageName")])
    a = pod("green-dep-abc12-a", rs, statuses=[container_status(waiting="CreateContainerConfigError")])
    st = status_of(dep, [b, a], rss=[rs])
    assert (st.pod, st.reason) == ("green-dep-abc12-a", DoomReason.CONTAINER_CONFIG)


def test_transient_pull_error_waits_then_dooms_rollout():
    dep = green(replicas=1, updated=1, available=0)
    rs = replicaset(dep)
    p = pod("green-dep-abc12-a", rs, created=T0,
            statuses=[container_status(waiting="ImagePullBackOff", message='Back-off pulling image "x"')])
    seen = remember_pull_errors(NOTHING_SEEN, [p], T0)
    assert status_of(dep, [p], rss=[rs], now=T0 + 10, seen=seen).verdict is Verdict.WAITING
    assert status_of(dep, [p], rss=[rs], now=T0 + 20, seen=seen).reason is DoomReason.IMAGE_PULL
