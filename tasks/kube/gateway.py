"""Thin Kubernetes I/O of a canary by HTTPRoute weights (`traffic: gateway`): read the HTTPRoute and the
ReferenceGrants, create the canary Service when missing, apply the route's rules and wait until every parent
Gateway accepted them. The decisions (which rules, accepted or not) are in tasks/decisions/gateway.py.

The route is changed by server-side apply (field manager `greenlight`, conflicts forced: `spec.rules` is an atomic
list, owned by whoever applied it last). The applied object carries the rules as read, only greenlight's weights
and match rule changed, and the read `resourceVersion`: a route edited in between answers 409, and the change is
re-read, re-decided and re-applied (a bounded number of times; then a retryable error). Applying the rules the
route already has is skipped, so a re-run repeats nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.rest import ApiException

from prefect_greenlight.tasks.decisions.gateway import GatewayState, RouteVerdict, desired_rules, route_verdict
from prefect_greenlight.tasks.decisions.gateway_switch import switched_rules
from prefect_greenlight.tasks.errors import GuardFailed, PermanentError, TemporaryError
from prefect_greenlight.tasks.kube.client import TIMEOUT, Kube, delete_if_present, never_sent, raw_patch, read, retrying
from prefect_greenlight.tasks.kube.waiting import Progress, wait_endpoints

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
CONFLICT_ATTEMPTS = 5


def _custom(kube: Kube) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api)


def read_route(kube: Kube, namespace: str, name: str) -> dict | None:
    """The HTTPRoute as a dict, or None when it does not exist."""
    def call() -> dict | None:
        try:
            return _custom(kube).get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", name,
                                                              _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
    return retrying(f"read HTTPRoute {namespace}/{name}", call)


def list_grants(kube: Kube, namespace: str) -> list[dict]:
    """The ReferenceGrants (v1beta1) in `namespace`; [] when the CRD is not installed."""
    def call() -> list[dict]:
        try:
            return list(_custom(kube).list_namespaced_custom_object(
                GROUP, "v1beta1", namespace, "referencegrants", _request_timeout=TIMEOUT).get("items") or [])
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise
    return retrying(f"list ReferenceGrants in {namespace}", call)


def ensure_service(kube: Kube, namespace: str, manifest: dict) -> str:
    """Create the canary Service unless it exists (a create is re-sent only when it certainly never arrived;
    409 AlreadyExists means another attempt or run made it)."""
    name = manifest["metadata"]["name"]
    if read(kube, "Service", namespace, name) is not None:
        return f"Service {name} exists"
    try:
        retrying(f"create Service {namespace}/{name}", lambda: kube.core.create_namespaced_service(
            namespace, manifest, field_manager="greenlight", _request_timeout=TIMEOUT),
            retry_if=lambda exc, _err: never_sent(exc))
    except GuardFailed:
        if read(kube, "Service", namespace, name) is None:
            raise
    return f"created canary Service {name} (selector {manifest['spec']['selector']})"


def ensure_route(kube: Kube, namespace: str, manifest: dict) -> str:
    """Create the HTTPRoute greenlight owns (`gateway.create`) unless it exists (409: another run made it)."""
    name = manifest["metadata"]["name"]
    if read_route(kube, namespace, name) is not None:
        return f"HTTPRoute {name} exists"
    try:
        retrying(f"create HTTPRoute {namespace}/{name}", lambda: _custom(kube).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "httproutes", manifest, field_manager="greenlight", _request_timeout=TIMEOUT),
            retry_if=lambda exc, _err: never_sent(exc))
    except GuardFailed:
        if read_route(kube, namespace, name) is None:
            raise
    return f"created HTTPRoute {name} (every request to {manifest['spec']['rules'][0]['backendRefs'][0]['name']})"


def _apply_rules(kube: Kube, route: dict, rules: list[dict]) -> dict:
    meta = route["metadata"]
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HTTPRoute",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                         "resourceVersion": meta["resourceVersion"]},
            "spec": {"rules": rules}}
    return retrying(f"apply HTTPRoute {meta['namespace']}/{meta['name']}", lambda: raw_patch(
        kube, "HTTPRoute", meta["namespace"], meta["name"], body, "application/apply-patch+yaml",
        [("force", "true")]))


def _conflict(err: GuardFailed) -> bool:
    return isinstance(err.__cause__, ApiException) and err.__cause__.status == 409


def apply_state(kube: Kube, namespace: str, name: str, index: int, stable: str, canary: str,
                state: GatewayState, progress: Progress = lambda _: None) -> tuple[int, bool]:
    """Apply the route's rules for `state`: (the generation to wait for, whether anything was sent)."""
    return apply_decided(kube, namespace, name, lambda rules: desired_rules(rules, index, namespace, stable, canary,
                                                                            state), progress)


def apply_decided(kube: Kube, namespace: str, name: str, decide: Callable[[list[dict]], list[dict]],
                  progress: Progress = lambda _: None) -> tuple[int, bool]:
    """Apply the rules `decide(rules as read)` returns (ValueError: the route cannot take them), guarded by the
    read resourceVersion: (the generation to wait for, whether anything was sent)."""
    for _ in range(CONFLICT_ATTEMPTS):
        route = read_route(kube, namespace, name)
        if route is None:
            raise PermanentError(f"HTTPRoute {namespace}/{name} no longer exists")
        rules = (route.get("spec") or {}).get("rules") or []
        try:
            want = decide(rules)
        except ValueError as exc:
            raise PermanentError(f"HTTPRoute {namespace}/{name}: {exc}") from exc
        if want == rules:
            return int(route["metadata"].get("generation") or 0), False
        try:
            applied = _apply_rules(kube, route, want)
        except GuardFailed as err:
            if not _conflict(err):
                raise
            progress(f"HTTPRoute {name} changed while greenlight applied it (409); re-reading")
            continue
        return int(applied["metadata"].get("generation") or 0), True
    raise TemporaryError(f"HTTPRoute {namespace}/{name} changed {CONFLICT_ATTEMPTS} times while greenlight applied "
                         "its change; retry the release")


def wait_route(kube: Kube, namespace: str, name: str, generation: int, timeout_s: float) -> RouteVerdict:
    """Poll until every parent Gateway reports the route Accepted and ResolvedRefs at `generation` or later."""
    deadline, verdict = time.monotonic() + timeout_s, RouteVerdict(False, "not read")
    while True:
        route = read_route(kube, namespace, name)
        if route is None:
            raise PermanentError(f"HTTPRoute {namespace}/{name} no longer exists")
        verdict = route_verdict(route, generation)
        if verdict.ok:
            return verdict
        if time.monotonic() > deadline:
            raise PermanentError(f"HTTPRoute {name} not accepted at generation {generation} within "
                                 f"{timeout_s:.0f} s: {verdict.message}")
        time.sleep(0.5)


def set_route(kube: Kube, namespace: str, name: str, index: int, stable: str, canary: str, state: GatewayState,
              timeout_s: float, progress: Progress = lambda _: None) -> str:
    """The route at `state`, verified by its parents' status."""
    generation, sent = apply_state(kube, namespace, name, index, stable, canary, state, progress)
    verdict = wait_route(kube, namespace, name, generation, timeout_s)
    what = "applied" if sent else "already at"
    progress(f"HTTPRoute {name} {what} {100 - state.weight}/{state.weight} stable/canary"
        f"{f', {len(state.matches)} match(es)' if state.matches else ''}: {verdict.message}")
    return f"HTTPRoute {name} {what} {100 - state.weight}/{state.weight} (generation {generation}): {verdict.message}"


def switch_route(kube: Kube, namespace: str, name: str, index: int, from_service: str, to_service: str,
                 timeout_s: float, progress: Progress = lambda _: None) -> str:
    """The rule's backendRef moved from `from_service` to `to_service` (blue-green through the route), verified
    by its parents' status; nothing is sent when it already names `to_service`."""
    generation, sent = apply_decided(kube, namespace, name, lambda rules: switched_rules(
        rules, index, namespace, from_service, to_service), progress)
    verdict = wait_route(kube, namespace, name, generation, timeout_s)
    what = f"{from_service} -> {to_service}" if sent else f"already on {to_service}"
    progress(f"HTTPRoute {name} rule {index} {what}: {verdict.message}")
    return f"HTTPRoute {name} rule {index} {what} (generation {generation}): {verdict.message}"


def delete_service(kube: Kube, namespace: str, name: str) -> str:
    """Delete a Service greenlight created; already gone is fine."""
    gone = delete_if_present(f"delete Service {namespace}/{name}", lambda: kube.core.delete_namespaced_service(
        name, namespace, _preload_content=False, _request_timeout=TIMEOUT))
    return f"deleted Service {name}" if gone else f"Service {name} already gone"


def verify_backends(kube: Kube, namespace: str, services: list[tuple[str, str, int]], timeout_s: float,
                    progress: Progress = lambda _: None) -> str:
    """Each (Service, Deployment, pods): the Service's EndpointSlices hold only that Deployment's pods, at least
    `pods` ready (a Service expected at 0 pods is not waited for)."""
    out = []
    for service, deployment, pods in services:
        if pods == 0:
            continue
        verdict = wait_endpoints(kube, namespace, service, deployment, pods, timeout_s, progress=progress)
        if not verdict.ok:
            raise PermanentError(f"Service {service}: {verdict.message}")
        out.append(f"{service}: {verdict.message}")
    return "; ".join(out)
