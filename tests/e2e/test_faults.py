"""Releases under faults, on the real local cluster through the real CLI (issue #6, reliability): the apiserver
restarted while greenlight waits for green, while it switches; the releasing process SIGKILLed at each phase and
the same command run again; an apiserver that hangs (a stalling proxy in front of it); the same for canaries.

Restarts are spaced by other tests (the order below) so the controllers' client-go backoff, which grows with
each failure and resets after 2 minutes without one, does not make the cluster itself slower with every restart.

Every scenario ends in one consistent state, checked the same way: the Service selects exactly one Deployment and
all of its pods are ready; the old version is never scaled down before the new one was verified and the
scale-down delay passed; and the EndpointSlice sampler saw no instant without a ready endpoint and none routed to
a version that failed.
"""

from __future__ import annotations

import time

import pytest

from prefect_greenlight.tasks.decisions.lease import DURATION_S, SKEW_S
from prefect_greenlight.tasks.kube.waiting import wait_endpoints
from tests.e2e.fault_helpers import (
    GREEN_SLOW,
    ReplicaRecorder,
    deployment,
    ensure_cluster_healthy,
    lease_holder,
    pods_without_forward,
    poll,
    require_local,
    restart_apiserver,
    run_cli,
    selector_of,
    start_cli,
)
from tests.e2e.release_helpers import (
    TUTORIAL1,
    TUTORIAL2,
    given_applied,
    given_ready,
    manifest_with,
    paused_run_id,
    ready,
    replicas,
    tutorial1,
)
from tests.e2e.sampler import EndpointSampler
from tests.e2e.stall_proxy import StallProxy

pytestmark = pytest.mark.usefixtures("prefect_api")
SVC, BLUE, GREEN = "production-svc", "blue-dep", "green-dep"
DELAY = 2  # --scale-down-delay of every release here
LEASE_EXPIRY_S = DURATION_S + SKEW_S


def bg_args(namespace: str, manifest, *extra: str) -> list[str]:
    return ["blue-green", "-n", namespace, "--service", SVC, "--manifest", str(manifest),
            "--scale-down-delay", str(DELAY), "--json", *extra]


def slow_green(tmp_path, seconds: int):
    return manifest_with(TUTORIAL1 / "green-dep.yaml", tmp_path, image=GREEN_SLOW.format(n=seconds))


def green_waiting(kube, namespace) -> bool:
    """green's pods exist and none is ready yet: greenlight is in wait-ready."""
    d = deployment(kube, namespace, GREEN)
    return bool(d) and int((d.get("status") or {}).get("replicas") or 0) >= 1 and \
        not int((d.get("status") or {}).get("readyReplicas") or 0)


def assert_released(kube, namespace, sampler, rec, cleanup: str = "scale-to-zero") -> None:
    """Service on green only, green fully ready, blue cleaned up per `cleanup` — and only after green served and the
    scale-down delay passed."""
    assert selector_of(kube, namespace, SVC) == {"target": GREEN}
    assert ready(kube, namespace, GREEN) == 3
    assert wait_endpoints(kube, namespace, SVC, GREEN, 3, 10).ok
    if cleanup == "delete":
        assert deployment(kube, namespace, BLUE) is None
    else:
        assert replicas(kube, namespace, BLUE) == 0
    green_served = next(i.t for i, c in zip(sampler.instants, sampler.ready_by_deployment()) if c.get(GREEN))
    blue_down = rec.first_below(BLUE, 3)
    assert blue_down is not None and blue_down - green_served >= DELAY - 0.2, \
        f"blue scaled down {blue_down - green_served:.1f} s after green served: {rec.describe(BLUE, green_served)}"
    assert sampler.zero_ready_instants() == 0, sampler.describe()


def assert_still_blue(kube, namespace, sampler) -> None:
    assert selector_of(kube, namespace, SVC) == {"target": BLUE}
    assert ready(kube, namespace, BLUE) == 3 and replicas(kube, namespace, BLUE) == 3
    assert wait_endpoints(kube, namespace, SVC, BLUE, 3, 10).ok
    assert sampler.zero_ready_instants() == 0 and sampler.instants_serving({GREEN}) == 0, sampler.describe()


def report(name: str, **figures) -> None:
    print(f"\n[fault figures] {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


# ------------------------------------------------------------------------------------------ apiserver restart
def test_apiserver_restart_while_waiting_for_green(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    require_local(cluster)
    tutorial1(kubectl, kube, namespace)
    try:
        with EndpointSampler(kube, namespace, SVC) as sampler, ReplicaRecorder(kube, namespace) as rec:
            cli = start_cli(cluster, prefect_api, *bg_args(namespace, slow_green(tmp_path, 10), "--ready-timeout",
                                                           "240"), log=tmp_path / "release.log")
            poll("green's pods waiting to be ready (and port-forwardable)", lambda: cli.seen("applied") and
                 green_waiting(kube, namespace) and not pods_without_forward(kube, namespace), 60)
            restart = restart_apiserver(down_s=3)
            rc = cli.wait(300)
            took = time.monotonic() - cli.started
        assert rc == 0, cli.text()[-4000:]
        assert [s["step"] for s in cli.result()["steps"]][-3:] == ["verify-endpoints", "post-switch", "cleanup"]
        assert_released(kube, namespace, sampler, rec)
        report("restart during wait-ready", took_s=round(took, 1), **restart, zero=sampler.zero_ready_instants(),
               min_ready=sampler.min_ready_after_start())
    finally:
        ensure_cluster_healthy()


# ---------------------------------------------------------------------------------------------- SIGKILL
KILL_AT = {
    # phase: (green image ready after N s, what must be true before the kill)
    "after-apply": (6, lambda kube, ns, cli: cli.alive() and deployment(kube, ns, GREEN) is not None),
    "wait-ready": (8, lambda kube, ns, cli: cli.seen("applied") and green_waiting(kube, ns)),
    "cleanup": (0, lambda kube, ns, cli: cli.seen("scale-down delay")),
}


@pytest.mark.parametrize("phase", sorted(KILL_AT))
def test_killed_then_rerun_converges(cluster, prefect_api, kube, namespace, kubectl, tmp_path, phase):
    """The releasing process is SIGKILLed; the same command run again (waiting for the dead holder's Lease to
    expire, then taking it over) finishes the release."""
    require_local(cluster)
    tutorial1(kubectl, kube, namespace)
    slow, reached = KILL_AT[phase]
    manifest = slow_green(tmp_path, slow) if slow else TUTORIAL1 / "green-dep.yaml"
    cleanup = "delete" if phase == "cleanup" else "scale-to-zero"
    first_delay = ["--scale-down-delay", "30"] if phase == "cleanup" else []
    with EndpointSampler(kube, namespace, SVC) as sampler, ReplicaRecorder(kube, namespace) as rec:
        cli = start_cli(cluster, prefect_api, *bg_args(namespace, manifest, "--cleanup", cleanup, *first_delay),
                        log=tmp_path / "first.log")
        poll(f"the release to reach {phase}", lambda: reached(kube, namespace, cli), 90, 0.02)
        holder = lease_holder(kube, namespace, SVC)
        killed_at = cli.kill()
        assert holder.endswith(f"/{cli.proc.pid}"), f"the killed process held the lock: {holder}"
        assert replicas(kube, namespace, BLUE) == 3, "blue untouched when the release died"
        assert selector_of(kube, namespace, SVC) == {"target": GREEN if phase == "cleanup" else BLUE}
        again = run_cli(cluster, prefect_api, *bg_args(namespace, manifest, "--cleanup", cleanup, "--lock-wait",
                                                       str(LEASE_EXPIRY_S + 20)), timeout=240)
        waited = time.monotonic() - killed_at
    assert again.returncode == 0, again.stderr[-4000:]
    # after the switch the re-run resumes from the Service's release record; before it, it simply continues
    assert ("resuming after the switch" in again.stderr) is (phase == "cleanup"), again.stderr[-3000:]
    assert lease_holder(kube, namespace, SVC) == "", "the re-run released the lock"
    assert_released(kube, namespace, sampler, rec, cleanup)
    report(f"killed at {phase}", rerun_s=round(waited, 1), zero=sampler.zero_ready_instants(),
           min_ready=sampler.min_ready_after_start(), blue=rec.describe(BLUE, killed_at))


# ------------------------------------------------------------- hung apiserver, apiserver down at the switch
def test_stalled_apiserver_connections_are_given_up_and_the_release_completes(
        cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    """Every connection stalls mid-stream for 8 s while greenlight waits for green (watches, lease renewals);
    then new connections work but the stalled ones never answer again. Client timeouts must get greenlight off
    them: the release completes — and within its 45 s ready deadline, so the stalled watches must be noticed and
    replaced well before that (a watch read timeout of a minute or more would fail the release)."""
    require_local(cluster)
    tutorial1(kubectl, kube, namespace)
    with StallProxy.for_kubeconfig(cluster.kubeconfig) as proxy:
        via = proxy.kubeconfig(cluster.kubeconfig, tmp_path / "via-proxy.kubeconfig")
        with EndpointSampler(kube, namespace, SVC) as sampler, ReplicaRecorder(kube, namespace) as rec:
            cli = start_cli(cluster, prefect_api, *bg_args(namespace, slow_green(tmp_path, 4), "--kubeconfig", via,
                                                           "--ready-timeout", "45"), log=tmp_path / "release.log")
            poll("green's pods waiting to be ready", lambda: cli.seen("applied") and green_waiting(kube, namespace),
                 60)
            stalled = proxy.stall()
            time.sleep(8)
            proxy.heal()
            rc = cli.wait(240)
            took = time.monotonic() - cli.started
    assert rc == 0, cli.text()[-4000:]
    assert_released(kube, namespace, sampler, rec)
    report("stall 8 s then heal", took_s=round(took, 1), stalled_connections=stalled,
           zero=sampler.zero_ready_instants(), min_ready=sampler.min_ready_after_start())


def test_apiserver_down_when_the_switch_starts(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    """The release waits for approval; the apiserver is stopped; the approval (through Prefect, not the apiserver)
    lets the release go on to its switch while the apiserver is down; it comes back 4 s later. The switch (and its
    verification, while the controllers catch up) must ride it out."""
    from tests.cluster import launcher

    require_local(cluster)
    tutorial1(kubectl, kube, namespace)
    try:
        with EndpointSampler(kube, namespace, SVC) as sampler, ReplicaRecorder(kube, namespace) as rec:
            cli = start_cli(cluster, prefect_api, *bg_args(namespace, TUTORIAL1 / "green-dep.yaml", "--approval",
                                                           "manual", "--approval-timeout", "120"),
                            log=tmp_path / "release.log")
            run_id = paused_run_id(cli.log, cli.proc)
            stop_s = launcher.stop_apiserver()
            answer = run_cli(cluster, prefect_api, "approve", run_id, "--approver", "tester")
            assert answer.returncode == 0, answer.stderr[-2000:]
            poll("the release to resume", lambda: cli.seen("approved by tester"), 30)
            time.sleep(4)  # the switch is trying against a dead apiserver
            ready_s = launcher.start_apiserver()
            rc = cli.wait(300)
            took = time.monotonic() - cli.started
        text = cli.text()
        if rc == 0:
            assert_released(kube, namespace, sampler, rec)
        else:  # failing cleanly is allowed: rolled back, every undo step ok
            assert "rollback:" in text and "- FAILED" not in text, text[-4000:]
            assert_still_blue(kube, namespace, sampler)
        report("apiserver down at the switch", exit=rc, took_s=round(took, 1), stop_s=round(stop_s, 2),
               ready_s=round(ready_s, 2), zero=sampler.zero_ready_instants(),
               min_ready=sampler.min_ready_after_start())
        assert rc == 0, f"expected the release to complete after the restart:\n{text[-4000:]}"
    finally:
        ensure_cluster_healthy()


def test_a_hung_apiserver_ends_the_release_in_bounded_time(cluster, prefect_api, kube, namespace, kubectl,
                                                           tmp_path):
    """The apiserver stops answering for good while greenlight waits for green: the CLI must end by itself with a
    clear error and exit 1 — never wait forever — and the Service must still serve blue."""
    require_local(cluster)
    tutorial1(kubectl, kube, namespace)
    with StallProxy.for_kubeconfig(cluster.kubeconfig) as proxy:
        via = proxy.kubeconfig(cluster.kubeconfig, tmp_path / "via-proxy.kubeconfig")
        with EndpointSampler(kube, namespace, SVC) as sampler:
            cli = start_cli(cluster, prefect_api, *bg_args(namespace, slow_green(tmp_path, 60), "--kubeconfig", via,
                                                           "--ready-timeout", "20"), log=tmp_path / "release.log")
            poll("green's pods waiting to be ready", lambda: cli.seen("applied") and green_waiting(kube, namespace),
                 60)
            stalled_at = time.monotonic()
            stalled = proxy.stall()
            rc = cli.wait(400)
            ended = time.monotonic() - stalled_at
            text = cli.text()
    assert rc == 1, text[-4000:]
    assert "FAILED: release failed during wait-ready" in text, text[-4000:]
    assert_still_blue(kube, namespace, sampler)
    assert deployment(kube, namespace, GREEN) is not None, "the undo could not reach the apiserver: green is left, " \
        "unselected, and the failed undo step is named"
    assert "FAILED: remove green-dep" in text, text[-4000:]
    report("hung apiserver", exit=rc, ended_s_after_stall=round(ended, 1), stalled_connections=stalled,
           new_connections_while_stalled=proxy.accepted_while_stalled, zero=sampler.zero_ready_instants(),
           error=text[text.index("FAILED:"):][:600].replace("\n", " | "))
    assert ended < 180, f"the CLI took {ended:.0f} s to give up on a hung apiserver"


# --------------------------------------------------------------------------------------------------- canary
V1, V2, CSVC = "my-app-v1", "my-app-v2", "my-app-service"


def given_canary_start(kubectl, kube, namespace, tmp_path, slow: int):
    given_applied(kubectl, TUTORIAL2 / "v1-deployment.yaml", TUTORIAL2 / "canary-service.yaml")
    given_ready(kube, namespace, V1)
    assert wait_endpoints(kube, namespace, CSVC, V1, 10, 60).ok
    return manifest_with(TUTORIAL2 / "v2-canary-deployment.yaml", tmp_path,
                         image=f"my-app:fault-slowready-{slow}")


def canary_waiting(kube, namespace) -> bool:
    d = deployment(kube, namespace, V2)
    st = (d or {}).get("status") or {}
    return bool(d) and int(st.get("replicas") or 0) > int(st.get("readyReplicas") or 0)


def test_killed_mid_step_canary_is_aborted_from_its_record(cluster, prefect_api, kube, namespace, kubectl,
                                                           tmp_path):
    """SIGKILLed while scaling (not paused): `abort` refuses while the dead run's Lease is still fresh (the run is
    not paused, so it cannot be rejected), then, once the Lease expired, restores stable from the Service's record."""
    require_local(cluster)
    manifest = given_canary_start(kubectl, kube, namespace, tmp_path, slow=30)
    with EndpointSampler(kube, namespace, CSVC) as sampler:
        cli = start_cli(cluster, prefect_api, "canary", "-n", namespace, "--service", CSVC, "--stable", V1,
                        "--manifest", str(manifest), "--steps", "50,100", "--no-analysis",
                        log=tmp_path / "canary.log")
        poll("the canary's pods waiting to be ready", lambda: cli.seen("applied canary") and
             canary_waiting(kube, namespace), 60)
        killed_at = cli.kill()
        early = run_cli(cluster, prefect_api, "abort", "-n", namespace, "--service", CSVC, timeout=120)
        assert early.returncode == 1 and "holds the lock" in early.stderr and "not paused" in early.stderr, \
            early.stderr[-3000:]
        assert replicas(kube, namespace, V1) == 10 and replicas(kube, namespace, V2) == 5, "the refusal changed nothing"
        poll("the dead run's Lease to expire", lambda: time.monotonic() - killed_at > LEASE_EXPIRY_S, 60, 0.5)
        late = run_cli(cluster, prefect_api, "abort", "-n", namespace, "--service", CSVC, timeout=300)
        assert late.returncode == 0, late.stderr[-3000:]
    assert ready(kube, namespace, V1) == 10 and replicas(kube, namespace, V1) == 10
    assert replicas(kube, namespace, V2) == 0
    assert wait_endpoints(kube, namespace, CSVC, V1, 10, 10).ok
    assert sampler.instants_serving({V2}) == 0, "the never-ready canary never served"
    assert sampler.zero_ready_instants() == 0 and sampler.min_ready_after_start() >= 10, sampler.describe()
    report("canary killed mid-step then aborted", abort_after_s=round(time.monotonic() - killed_at, 1),
           zero=sampler.zero_ready_instants(), min_ready=sampler.min_ready_after_start())


def test_apiserver_restart_during_a_canary_step(cluster, prefect_api, kube, namespace, kubectl, tmp_path):
    require_local(cluster)
    manifest = given_canary_start(kubectl, kube, namespace, tmp_path, slow=8)
    try:
        with EndpointSampler(kube, namespace, CSVC) as sampler:
            cli = start_cli(cluster, prefect_api, "canary", "-n", namespace, "--service", CSVC, "--stable", V1,
                            "--manifest", str(manifest), "--steps", "50,100", "--no-analysis", "--json",
                            log=tmp_path / "canary.log")
            poll("the canary's pods waiting to be ready", lambda: cli.seen("applied canary") and
                 canary_waiting(kube, namespace), 60)
            restart = restart_apiserver(down_s=3)
            rc = cli.wait(300)
            took = time.monotonic() - cli.started
        assert rc == 0, cli.text()[-4000:]
        assert [(s["percent"], s["canary_ready"], s["stable_ready"]) for s in cli.result()["splits"]] == \
            [(50, 5, 5), (100, 10, 0)]
        assert ready(kube, namespace, V2) == 10 and deployment(kube, namespace, V1) is None
        assert sampler.zero_ready_instants() == 0 and sampler.min_ready_after_start() >= 10, sampler.describe()
        report("restart during canary step", took_s=round(took, 1), **restart, zero=sampler.zero_ready_instants(),
               min_ready=sampler.min_ready_after_start())
    finally:
        ensure_cluster_healthy()
