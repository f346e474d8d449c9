"""Availability sampler: records every state of a Service's EndpointSlices during a scenario, and sends real
requests through the Service's ClusterIP all the while (tests/e2e/traffic.py, from inside the local cluster's
network namespace).

A watch delivers every EndpointSlice change, so each event is one "instant": the set of (pod uid, ready) the
Service routes to right then. Pods are attributed to Deployments afterwards from a mapping accumulated over the
whole run (Pod -> ReplicaSet -> Deployment), so a pod deleted later is still attributed correctly.

    with EndpointSampler(kube, ns, "production-svc") as sampler:
        ... release ...
    assert sampler.zero_ready_instants() == 0
    assert sampler.instants_serving({"green-dep"}) == 0     # never routed to the failed version

When the block ends without an exception, the traffic is judged (tests/e2e/traffic_checks.py): no failed request
(unless `expect_failures`, where the test asserts its own bound), no new connection answered by a Deployment
more than PROXY_LAG_S after the slices stopped listing it, and, wherever the ready endpoints held still, each
Deployment's share of answers matching its share of endpoints.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import watch

from prefect_greenlight.tasks.decisions.endpoints import endpoint_targets
from prefect_greenlight.tasks.kube.client import Kube
from prefect_greenlight.tasks.kube.watching import Watcher
from tests.e2e.traffic import TrafficCheck, TrafficResult
from tests.e2e.traffic_checks import judge_traffic


@dataclass(frozen=True)
class Instant:
    t: float
    endpoints: frozenset[tuple[str, bool]]  # (pod uid, ready)

    def ready_uids(self) -> set[str]:
        return {uid for uid, ready in self.endpoints if ready}


# Set by tests/e2e/conftest.py for the session: () -> (network namespace, kubeconfig); it fails the test when the
# namespace is missing (never skips).
TRAFFIC_CONTEXT: Callable[[], tuple[str, str]] | None = None


class EndpointSampler:
    def __init__(self, kube: Kube, namespace: str, service: str, *, traffic: bool = True,
                 expect_failures: bool = False, port: int | None = None,
                 traffic_context: tuple[str, str] | None = None):
        """`traffic_context`: (network namespace, kubeconfig) of the Service's cluster when it is not the session's
        cluster (tests/e2e/test_pipeline.py samples three clusters at once)."""
        self.kube, self.namespace, self.service = kube, namespace, service
        self.traffic_context = traffic_context
        self.with_traffic, self.expect_failures, self.port = traffic, expect_failures, port
        self.traffic: TrafficCheck | None = None
        self.wall_offset = time.time() - time.monotonic()  # instants are monotonic; requests are wall clock
        self.instants: list[Instant] = []
        self.owners: dict[str, str] = {}
        self._slices: dict[str, dict] = {}
        self._stop = threading.Event()
        self._watcher = Watcher()
        self._synced = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"sampler-{service}")

    # -- recording
    def _record(self) -> None:
        targets = endpoint_targets(list(self._slices.values()))
        snap = frozenset(targets.items())
        if not self.instants or self.instants[-1].endpoints != snap:
            self.instants.append(Instant(time.monotonic(), snap))

    def _run(self) -> None:
        core = self.kube.discovery
        while not self._stop.is_set():
            try:
                resp = core.list_namespaced_endpoint_slice(
                    self.namespace, label_selector=f"kubernetes.io/service-name={self.service}",
                    _preload_content=False, _request_timeout=(5, 30))
                body = json.loads(resp.data)
                self._slices = {s["metadata"]["uid"]: s for s in body["items"]}
                self._record()
                self._synced.set()
                w = watch.Watch()
                for ev in w.stream(core.list_namespaced_endpoint_slice, self.namespace,
                                   label_selector=f"kubernetes.io/service-name={self.service}",
                                   resource_version=body["metadata"]["resourceVersion"], timeout_seconds=30,
                                   _request_timeout=(5, 40), deserialize=False):
                    obj = ev["object"]
                    if ev["type"] == "DELETED":
                        self._slices.pop(obj["metadata"]["uid"], None)
                    elif ev["type"] in ("ADDED", "MODIFIED"):
                        self._slices[obj["metadata"]["uid"]] = obj
                    self._record()
                    if self._stop.is_set():
                        return
            except Exception:  # noqa: BLE001 - keep sampling across apiserver hiccups
                self._stop.wait(0.2)

    def _track_owners(self) -> None:
        pods = self._watcher.watch(self.kube.core.list_namespaced_pod, namespace=self.namespace)
        rss = self._watcher.watch(self.kube.apps.list_namespaced_replica_set, namespace=self.namespace)
        deps = self._watcher.watch(self.kube.apps.list_namespaced_deployment, namespace=self.namespace)

        def loop() -> None:
            from prefect_greenlight.tasks.decisions.endpoints import deployment_of_pods

            seen_deps: dict[str, dict] = {}
            seen_rs: dict[str, dict] = {}
            seen_pods: dict[str, dict] = {}
            while not self._stop.is_set():
                with self._watcher.changed:
                    self._watcher.changed.wait(0.2)
                seen_deps.update({d["metadata"]["uid"]: d for d in deps.items()})
                seen_rs.update({r["metadata"]["uid"]: r for r in rss.items()})
                seen_pods.update({p["metadata"]["uid"]: p for p in pods.items()})
                self.owners.update(deployment_of_pods(list(seen_pods.values()), list(seen_rs.values()),
                                                      list(seen_deps.values())))

        threading.Thread(target=loop, daemon=True, name="sampler-owners").start()

    def __enter__(self) -> "EndpointSampler":
        self._track_owners()
        self._thread.start()
        if not self._synced.wait(15):
            raise RuntimeError(f"sampler could not list EndpointSlices of {self.service}")
        if self.with_traffic:
            if self.traffic_context is None and TRAFFIC_CONTEXT is None:
                raise RuntimeError("no traffic context: tests/e2e/conftest.py sets it for the session")
            netns, kubeconfig = self.traffic_context or TRAFFIC_CONTEXT()
            self.traffic = TrafficCheck(netns, kubeconfig, self.namespace, self.service, self.port, rate=60.0,
                                        duration_s=600.0, expect_failures=self.expect_failures).__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.traffic is not None:
                self.traffic.__exit__(exc_type, exc, tb)
        finally:
            time.sleep(0.5)  # let the owner tracker catch up with the last pods
            self._stop.set()
            self._watcher.__exit__()
        if exc_type is None and self.traffic is not None:
            judge_traffic(self)

    @property
    def requests(self) -> TrafficResult:
        """The ClusterIP traffic sent while the sampler ran (after the block; during it, a snapshot)."""
        assert self.traffic is not None, "this sampler ran without traffic"
        return self.traffic.result or self.traffic.snapshot()

    # -- figures
    def zero_ready_instants(self) -> int:
        """Instants (after the first one with ready endpoints) at which the Service had no ready endpoint."""
        started = False
        count = 0
        for inst in self.instants:
            ready = inst.ready_uids()
            started = started or bool(ready)
            if started and not ready:
                count += 1
        return count

    def instants_serving(self, deployments: set[str]) -> int:
        """Instants at which a ready endpoint belonged to one of `deployments`."""
        return sum(1 for inst in self.instants
                   if any(self.owners.get(uid) in deployments for uid in inst.ready_uids()))

    def min_ready_after_start(self) -> int | None:
        """Fewest ready endpoints at any instant from the first one with ready endpoints on (the initial state)
        to the end; None when no instant had any."""
        counts = [len(inst.ready_uids()) for inst in self.instants]
        first = next((i for i, c in enumerate(counts) if c), None)
        return None if first is None else min(counts[first:])

    def ready_by_deployment(self) -> list[dict[str, int]]:
        out = []
        for inst in self.instants:
            counts: dict[str, int] = {}
            for uid in inst.ready_uids():
                owner = self.owners.get(uid, "?")
                counts[owner] = counts.get(owner, 0) + 1
            out.append(counts)
        return out

    def describe(self) -> str:
        return f"{len(self.instants)} instants: " + " -> ".join(
            ",".join(f"{k}={v}" for k, v in sorted(c.items())) or "none" for c in self.ready_by_deployment())
