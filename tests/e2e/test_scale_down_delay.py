"""Why greenlight waits a scale-down delay before taking blue out of service, shown with real ClusterIP traffic.

After the switch the Service's EndpointSlices list only green within tens of milliseconds, and greenlight
verifies that. Requests do not follow the slices, though, they follow kube-proxy's rules: each node's kube-proxy
rewrites them on its own, at most once per `minSyncPeriod` (default 1 s, which the local cluster keeps), and a
keep-alive connection opened before the switch stays on its blue pod until it is closed. Blue deleted right after
the switch (`--scale-down-delay 0 --cleanup delete`) can therefore drop requests: the new connections kube-proxy
still sends to blue, and those in flight on blue's keep-alive connections. With the default delay (30 s) blue
outlives both.

Two conditions, each released both ways:
  graceful  the local cluster as it is: one idle kube-proxy (it moves the rules 30-60 ms after the PATCH, see
            BENCHMARKS.md P-lag) and pods that shut down gracefully (kwok deletes a pod 6-7 s after its deletion
            is asked; meanwhile it answers with `Connection: close`), so even no delay may lose nothing
  abrupt    a busy node: another Service's endpoints change every CHURN_S, so kube-proxy syncs once per
            minSyncPeriod all the time and the switch waits for the next slot (0-1 s), as on a node of a busy
            cluster; and an app that exits at SIGTERM: each blue pod is force-deleted the moment its deletion is
            asked, so its IP stops answering at once
Every release is the first tutorial through the real CLI with traffic from inside the cluster's network namespace
(tests/e2e/traffic.py: 100 requests/s, half on new connections, half keep-alive). A watch records when the
Service's selector moved (the PATCH) and when blue's pods were deleted and gone. Without the delay the failures
are printed and recorded in the session's traffic tally as expected; only their window is asserted. With the
default delay none may fail.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import watch
from kubernetes.client.rest import ApiException

from tests.cluster import netplane
from tests.e2e.helpers import given_deployment, given_service, ready_pods
from tests.e2e.release_helpers import TUTORIAL1, greenlight, selector, tutorial1

pytestmark = pytest.mark.usefixtures("prefect_api")

SERVICE = "production-svc"
GREEN = {"target": "green-dep"}
DEFAULT_DELAY_S = 30.0  # greenlight's default scale-down delay (tasks/spec/blue_green.py, Cleanup.delay_s)
LEAD_S = 2.0  # traffic on blue before the release starts
TAIL_S = 3.0  # traffic after blue's pods are gone
AFTER_GONE_S = 3.0  # failures may be sent up to this long after blue's last pod is gone ("a few seconds")
WATCH_LAG_S = 0.5  # the PATCH is seen through a watch, up to tens of ms late on a loaded machine: margin before it
CHURN_S = 0.3  # the busy node: another Service's endpoints change this often (< minSyncPeriod)


class Moments:
    """Watches the Service and blue's pods in threads; wall-clock times (comparable with the traffic's) of the
    selector moving to green and of each blue pod's deletion being asked (deletionTimestamp) and done (DELETED).
    With `abrupt`, a blue pod is force-deleted (grace 0) as soon as its deletion is seen: an app that exits at
    SIGTERM, whose kubelet reports it gone at once."""

    def __init__(self, kube, namespace: str, abrupt: bool, blue: str = "blue-dep", timeout_s: int = 240):
        self.kube, self.namespace, self.abrupt, self.blue, self.timeout_s = kube, namespace, abrupt, blue, timeout_s
        self.selectors: list[tuple[float, dict]] = []
        self.deleting: dict[str, float] = {}
        self.deleted: dict[str, float] = {}
        self.pods: set[str] = set()
        self.changed = threading.Condition()
        self.error: Exception | None = None
        self._watches = [watch.Watch(), watch.Watch()]
        self._stopped = threading.Event()

    def _follow(self, target) -> None:
        """Run one watch loop; an error while the block runs is kept (wait() reports it), one after it is not."""
        try:
            target()
        except Exception as exc:  # noqa: BLE001 - the watch broke: the test must not wait blindly
            if not self._stopped.is_set():
                with self.changed:
                    self.error = exc
                    self.changed.notify_all()

    def _services(self) -> None:
        for ev in self._watches[0].stream(self.kube.core.list_namespaced_service, self.namespace,
                                          field_selector=f"metadata.name={SERVICE}", timeout_seconds=self.timeout_s):
            with self.changed:
                self.selectors.append((time.time(), dict(ev["object"].spec.selector or {})))
                self.changed.notify_all()

    def _pods(self) -> None:
        for ev in self._watches[1].stream(self.kube.core.list_namespaced_pod, self.namespace,
                                          label_selector=f"target={self.blue}", timeout_seconds=self.timeout_s):
            pod, now = ev["object"], time.time()
            name = pod.metadata.name
            with self.changed:
                self.pods.add(name)
                first = bool(pod.metadata.deletion_timestamp) and name not in self.deleting
                if pod.metadata.deletion_timestamp:
                    self.deleting.setdefault(name, now)
                if ev["type"] == "DELETED":
                    self.deleted.setdefault(name, now)
                self.changed.notify_all()
            if first and self.abrupt and ev["type"] != "DELETED":
                self._force_delete(name)

    def _force_delete(self, name: str) -> None:
        try:
            self.kube.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0,
                                                 _request_timeout=(5, 10))
        except ApiException as exc:
            if exc.status != 404:
                raise

    def __enter__(self) -> "Moments":
        for target in (self._services, self._pods):
            threading.Thread(target=self._follow, args=(target,), daemon=True,
                             name=f"moments-{target.__name__}").start()
        self.wait("the Service and blue's 3 pods listed", lambda: self.selectors and len(self.pods) == 3, 15)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        for w in self._watches:
            w.stop()

    def wait(self, what: str, predicate, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while not predicate():
                assert self.error is None, f"{what}: the watch failed: {self.error!r}"
                left = deadline - time.monotonic()
                assert left > 0, f"{what}: not within {timeout_s:.0f} s (pods deleted: {sorted(self.deleted)})"
                self.changed.wait(left)

    def patched(self) -> float:
        return next(t for t, s in self.selectors if s == GREEN)

    def blue_gone(self, timeout_s: float = 90) -> float:
        """Waits until every blue pod is gone; the time the last one went."""
        self.wait("blue's pods gone", lambda: self.pods and set(self.deleted) >= self.pods, timeout_s)
        return max(self.deleted.values())


class Churn:
    """A busy node: flips another Service's selector between its one pod and nothing every CHURN_S, so its
    EndpointSlice changes faster than kube-proxy's minSyncPeriod and kube-proxy syncs once per period without
    pause. Bounded: it stops at the end of the block, or after `max_s`."""

    def __init__(self, kube, namespace: str, max_s: float = 240):
        self.kube, self.namespace, self.max_s = kube, namespace, max_s
        self.stop = threading.Event()
        self.flips = 0
        given_deployment(kube, namespace, "churn", replicas=1)
        given_service(kube, namespace, "churn-svc", {"target": "churn"})
        ready_pods(kube, namespace, "churn", 1)
        self._thread = threading.Thread(target=self._run, daemon=True, name="churn")

    def _run(self) -> None:
        for i in range(int(self.max_s / CHURN_S)):
            if self.stop.wait(CHURN_S):
                return
            target = "churn" if i % 2 else "nothing"
            self.kube.core.patch_namespaced_service("churn-svc", self.namespace,
                                                    {"spec": {"selector": {"target": target}}},
                                                    _request_timeout=(5, 10))
            self.flips += 1

    def __enter__(self) -> "Churn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(10)


def kube_proxy_config(netns: str) -> dict:
    """kube-proxy's running configuration (/configz on its metrics address, the namespace's own loopback)."""
    code = ("import json, urllib.request\n"
            f"with urllib.request.urlopen('http://127.0.0.1:{netplane.KUBE_PROXY_METRICS}/configz', timeout=3) as r:\n"
            "    print(json.dumps(json.loads(r.read())['kubeproxy.config.k8s.io']))\n")
    proc = netplane.netns_python(netns, code)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def release_under_traffic(cluster, prefect_api, kube, namespace, kubectl, traffic, condition: str, *flags: str,
                          expect_failures: bool):
    """Tutorial 1 released with `flags` under `condition` while ClusterIP traffic runs, until blue's pods are gone
    + TAIL_S. Returns (the TrafficCheck, PATCH time, blue's first deletion asked, its last pod gone)."""
    tutorial1(kubectl, kube, namespace)
    abrupt = condition == "abrupt"
    churn = Churn(kube, namespace) if abrupt else None
    with Moments(kube, namespace, abrupt) as moments, \
            traffic(namespace, SERVICE, rate=100, duration_s=180, expect_failures=expect_failures) as check:
        if churn:
            churn.__enter__()
        try:
            time.sleep(LEAD_S)
            r = greenlight(cluster, prefect_api, "blue-green", "-n", namespace, "--service", SERVICE, "--manifest",
                           str(TUTORIAL1 / "green-dep.yaml"), "--cleanup", "delete", *flags, "--json")
            assert r.returncode == 0, r.stderr[-4000:]
            gone = moments.blue_gone()
            time.sleep(TAIL_S)
        finally:
            if churn:
                churn.__exit__()
    assert json.loads(r.stdout)["outcome"] == "released"
    assert selector(kube, namespace, SERVICE) == GREEN
    assert not churn or churn.flips >= 10, "the churn kept kube-proxy busy"
    return check, moments.patched(), min(moments.deleting.values()), gone


def describe(check, patched: float, deleting: float, gone: float) -> str:
    result = check.result
    failed = result.failed()
    kinds: dict[str, int] = {}
    for q in failed:
        kind = f"{q.conn} {q.error.split(':', 1)[0] if q.error else f'HTTP {q.status}'}"
        kinds[kind] = kinds.get(kind, 0) + 1
    last_blue_new = max((q.t for q in result.answered() if q.deployment == "blue-dep" and q.conn == "new"))
    return (f"{len(failed)} of {result.sent()} requests failed {kinds or ''}; PATCH -> first green answer "
            f"{(result.first_answer('green-dep') - patched) * 1000:.0f} ms, -> last blue answer on a new connection "
            f"{(last_blue_new - patched) * 1000:.0f} ms, -> blue's deletion asked {(deleting - patched) * 1000:.0f} ms,"
            f" -> blue's last pod gone {(gone - patched) * 1000:.0f} ms, -> last blue answer "
            f"{(result.last_answer('blue-dep') - patched) * 1000:.0f} ms; failures sent at (ms after the PATCH): "
            f"{[round((q.t - patched) * 1000) for q in failed][:30]}\n{result.summary()}")


@pytest.mark.parametrize("condition", ["graceful", "abrupt"])
def test_without_a_scale_down_delay_requests_fail_only_between_the_switch_and_blue_gone(
        cluster, prefect_api, kube, namespace, kubectl, netns, traffic, condition):
    config = kube_proxy_config(netns)
    assert (config["Mode"], config["MinSyncPeriod"]) == ("nftables", "1s"), "kube-proxy's defaults, as on a node"

    check, patched, deleting, gone = release_under_traffic(
        cluster, prefect_api, kube, namespace, kubectl, traffic, condition, "--scale-down-delay", "0",
        expect_failures=True)

    print(f"\n[scale-down delay 0, {condition}] {describe(check, patched, deleting, gone)}")
    assert deleting - patched < 10, "with --scale-down-delay 0 blue is deleted right after the switch"
    outside = [q for q in check.result.failed() if not patched - WATCH_LAG_S <= q.t <= gone + AFTER_GONE_S]
    assert not outside, f"failures outside [PATCH, blue gone + {AFTER_GONE_S:.0f} s]: {outside[:5]}"
    assert check.result.first_answer("green-dep", after=gone), "green serves after blue is gone"


@pytest.mark.parametrize("condition", ["graceful", "abrupt"])
def test_with_the_default_scale_down_delay_no_request_fails(cluster, prefect_api, kube, namespace, kubectl, traffic,
                                                            condition):
    check, patched, deleting, gone = release_under_traffic(
        cluster, prefect_api, kube, namespace, kubectl, traffic, condition, expect_failures=False)

    print(f"\n[default scale-down delay, {condition}] {describe(check, patched, deleting, gone)}")
    assert deleting - patched >= DEFAULT_DELAY_S - 1, "blue stays for the default delay (30 s) after the switch"
    assert not check.result.failed(), check.result.summary()
    assert not check.forbid("blue-dep", after=patched + DEFAULT_DELAY_S), "blue answered after the delay"
