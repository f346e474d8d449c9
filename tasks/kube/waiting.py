"""The two waits of a release, watch-based, each a pure decision re-made on every change:
wait until a Deployment's rollout is done (or doomed), and wait until a Service's EndpointSlices hold only one
Deployment's ready pods.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prefect_greenlight.tasks.decisions.endpoints import EndpointVerdict, deployment_of_pods, only, tally
from prefect_greenlight.tasks.decisions.rollout import (
    NOTHING_SEEN,
    DoomReason,
    RolloutStatus,
    Verdict,
    remember_pull_errors,
    rollout_status,
)
from prefect_greenlight.tasks.decisions.workload import selector_query
from prefect_greenlight.tasks.errors import PermanentError
from prefect_greenlight.tasks.kube.client import Kube, read
from prefect_greenlight.tasks.kube.watching import Watcher
from prefect_greenlight.tasks.spec import Deadlines

Progress = Callable[[str], None]


def label_selector(match_labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


def wait_rollout(kube: Kube, namespace: str, name: str, deadlines: Deadlines, timeout_s: float,
                 progress: Progress = lambda _: None) -> RolloutStatus:
    """Block until the Deployment's rollout is DONE or DOOMED; a deadline turns WAITING into DOOMED. Between
    observations it remembers when each container's pull error was first seen (the pull grace counts from then)."""
    last: list[RolloutStatus] = []
    reported: list[str] = []
    seen = [NOTHING_SEEN]
    scope = _scope(selector_query(((read(kube, "Deployment", namespace, name) or {}).get("spec") or {}).get(
        "selector")))
    with Watcher() as w:
        deps = w.watch(kube.apps.list_namespaced_deployment, namespace=namespace,
                       field_selector=f"metadata.name={name}")
        # The ReplicaSets and pods the Deployment's selector covers (never the whole namespace's pods);
        # ownership, not labels, then decides what is whose.
        rss = w.watch(kube.apps.list_namespaced_replica_set, namespace=namespace, **scope)
        pods = w.watch(kube.core.list_namespaced_pod, namespace=namespace, **scope)

        def decide() -> RolloutStatus | None:
            found = deps.items()
            if not found:
                return RolloutStatus(Verdict.DOOMED, f"Deployment {namespace}/{name} does not exist (deleted?)",
                                     reason=DoomReason.REPLICA_FAILURE)
            now, observed = time.time(), pods.items()
            seen[0] = remember_pull_errors(seen[0], observed, now)
            status = rollout_status(found[0], rss.items(), observed, now, deadlines, seen[0])
            last[:] = [status]
            return None if status.verdict is Verdict.WAITING else status

        def report() -> None:
            if last and (not reported or reported[-1] != last[0].message):
                reported.append(last[0].message)
                progress(f"{name}: {last[0].message}")

        result = w.wait_for(decide, timeout_s, on_change=report)
        health = w.health()
    if result is not None:
        return result
    message = (last[0].message if last else "no status observed") + (f"; {health}" if health else "")
    counts = dict(desired=last[0].desired, updated=last[0].updated, available=last[0].available) if last else {}
    return RolloutStatus(Verdict.DOOMED, f"Deployment {name} not ready within {timeout_s:.0f} s: {message}",
                         reason=DoomReason.PROGRESS_DEADLINE, **counts)


def require_ready(kube: Kube, namespace: str, name: str, deadlines: Deadlines, subject: str = "",
                  progress: Progress = lambda _: None) -> str:
    """wait_rollout within deadlines.ready_s; PermanentError naming the reason when it will not be ready."""
    status = wait_rollout(kube, namespace, name, deadlines, deadlines.ready_s, progress=progress)
    if status.verdict is not Verdict.DONE:
        reason = status.reason.value if status.reason else "not ready"
        raise PermanentError(f"{subject or name} will not become ready ({reason}): {status.message}")
    return status.message


def _scope(query: str | None) -> dict[str, str]:
    return {"label_selector": query} if query else {}


def endpoints_now(kube: Kube, w: Watcher, namespace: str, service: str, label_scope: dict | None = None):
    """Start the four watches an endpoint verdict needs; returns a function computing EndpointCounts. Pods and
    ReplicaSets are scoped by the LabelSelector `label_scope` (default: the Service's selector as it is now); a
    pod the slices list but the scope does not cover counts as "other" until the slices catch up, the truth."""
    if label_scope is None:
        selector = ((read(kube, "Service", namespace, service) or {}).get("spec") or {}).get("selector")
        label_scope = {"matchLabels": selector} if selector else None
    scope = _scope(selector_query(label_scope))
    slices = w.watch(kube.discovery.list_namespaced_endpoint_slice, namespace=namespace,
                     label_selector=f"kubernetes.io/service-name={service}")
    deps = w.watch(kube.apps.list_namespaced_deployment, namespace=namespace)
    rss = w.watch(kube.apps.list_namespaced_replica_set, namespace=namespace, **scope)
    pods = w.watch(kube.core.list_namespaced_pod, namespace=namespace, **scope)

    def counts():
        return tally(slices.items(), deployment_of_pods(pods.items(), rss.items(), deps.items()))

    return counts


class EndpointWatch:
    """One informer on a Service's endpoints for a release: started before the selector PATCH (`start()`), so
    that the verification after it is already watching — no list, no new watch, between the PATCH and the
    verdict. `label_scope`: a LabelSelector covering the pods to tell apart (blue's and green's: one informer
    serves the switch and the switch back); `wait` may be called more than once while the watch is open."""

    def __init__(self, kube: Kube, namespace: str, service: str, label_scope: dict | None):
        self.kube, self.namespace, self.service, self.label_scope = kube, namespace, service, label_scope
        self._watcher: Watcher | None = None
        self._counts: Callable | None = None
        self.closed = False

    def start(self, sync_s: float = 10.0) -> "EndpointWatch":
        """Start the watches and wait (at most `sync_s`) for their first lists."""
        if self.closed:
            raise RuntimeError(f"the endpoint watch of Service {self.service} is closed")
        if self._watcher is None:
            self._watcher = Watcher()
            self._counts = endpoints_now(self.kube, self._watcher, self.namespace, self.service, self.label_scope)
            deadline = time.monotonic() + sync_s
            for cache in self._watcher.caches:
                cache.synced.wait(max(0.0, deadline - time.monotonic()))
        return self

    def __enter__(self) -> "EndpointWatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True
        if self._watcher is not None:
            self._watcher.__exit__(*exc)
            self._watcher = None

    def wait(self, target: str, desired: int, timeout_s: float, progress: Progress = lambda _: None) -> EndpointVerdict:
        """Block until the Service's ready endpoints are only `target`'s pods, at least `desired` of them."""
        self.start()
        last: list[EndpointVerdict] = []

        def decide() -> EndpointVerdict | None:
            verdict = only(self._counts(), target, desired)
            if not last or last[-1].message != verdict.message:
                progress(f"Service {self.service}: {verdict.counts.describe()}")
            last[:] = [verdict]
            return verdict if verdict.ok else None

        result = self._watcher.wait_for(decide, timeout_s)
        if result is not None:
            return result
        health = self._watcher.health()
        final = last[0] if last else None
        msg = (final.message if final else "no EndpointSlices observed") + (f"; {health}" if health else "")
        return EndpointVerdict(False, f"not verified within {timeout_s:.0f} s: {msg}",
                               final.counts if final else None)  # type: ignore[arg-type]


def wait_endpoints(kube: Kube, namespace: str, service: str, target: str, desired: int, timeout_s: float,
                   progress: Progress = lambda _: None) -> EndpointVerdict:
    """Block until the Service's ready endpoints are only `target`'s pods, at least `desired` of them (watches
    scoped by the Service's selector as it is now)."""
    selector = ((read(kube, "Service", namespace, service) or {}).get("spec") or {}).get("selector")
    with EndpointWatch(kube, namespace, service, {"matchLabels": selector} if selector else None) as watch:
        return watch.wait(target, desired, timeout_s, progress)
