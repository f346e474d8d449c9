"""Optional step between wait-ready and the smoke test: a preview Service (Argo Rollouts' previewService, the
tutorial's `staging-svc`) that selects green before the live Service does, so people and tools can try green
through a stable name during the approval pause. It is created with the live Service's ports, or re-pointed if
greenlight made it earlier; the undo deletes it or restores its previous selector.
"""

from __future__ import annotations

from kubernetes.client.rest import ApiException
from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_greenlight.tasks.bluegreen.preflight import BlueGreenPreflight
from prefect_greenlight.tasks.bluegreen.switch import verify_only
from prefect_greenlight.tasks.decisions.annotations import PREFIX
from prefect_greenlight.tasks.errors import PermanentError
from prefect_greenlight.tasks.kube.client import TIMEOUT, Kube, json_patch, never_sent, read, retrying
from prefect_greenlight.tasks.record.report import say

PREVIEW_OF = PREFIX + "preview-of"


def preview_body(live: dict, name: str, selector: dict[str, str]) -> dict:
    """A ClusterIP Service with the live Service's ports and green's selector."""
    ports = [{k: p[k] for k in ("name", "port", "targetPort", "protocol") if k in p}
             for p in live.get("spec", {}).get("ports") or []]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "greenlight"},
                         "annotations": {PREVIEW_OF: live["metadata"]["name"]}},
            "spec": {"type": "ClusterIP", "selector": dict(selector), "ports": ports}}


def _delete(kube: Kube, namespace: str, name: str) -> str:
    def call() -> str:
        try:
            kube.core.delete_namespaced_service(name, namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return f"preview Service {name} already gone"
        return f"deleted preview Service {name}"

    return retrying(f"delete Service {namespace}/{name}", call)


def _create(kube: Kube, namespace: str, body: dict) -> None:
    """Create, re-sent only when the first request certainly never reached the apiserver."""
    retrying(f"create Service {namespace}/{body['metadata']['name']}",
             lambda: kube.core.create_namespaced_service(namespace, body, _request_timeout=TIMEOUT),
             retry_if=lambda exc, _err: never_sent(exc))


def _reselect(kube: Kube, namespace: str, name: str, selector: dict[str, str]) -> str:
    json_patch(kube, "Service", namespace, name, [{"op": "replace", "path": "/spec/selector", "value": selector}])
    return f"preview Service {name} selects {selector} again"


@task(name="point-preview", cache_policy=NO_CACHE)
def point_preview(kube: Kube, plan: BlueGreenPreflight, changed: dict) -> str:
    """Create the preview Service, or re-point it, at green; `changed["preview"]` says which (and the selector it
    had), right after the change, for `undo_preview`."""
    name, ns, green = plan.spec.preview_service, plan.namespace, plan.colors.green_selector
    if not name:
        return "no preview Service"
    live = read(kube, "Service", ns, plan.colors.service)
    if live is None:
        raise PermanentError(f"Service {plan.colors.service} disappeared")
    existing = read(kube, "Service", ns, name)
    if existing is None:
        changed["preview"] = None
        _create(kube, ns, preview_body(live, name, green))
        action = "created"
    else:
        before = existing.get("spec", {}).get("selector") or {}
        changed["preview"] = before
        json_patch(kube, "Service", ns, name, [{"op": "replace", "path": "/spec/selector", "value": green}])
        action = "re-pointed"
    verified = verify_only(kube, ns, name, plan.colors.green, plan.green_replicas, plan.spec.deadlines.endpoints_s)
    msg = f"{action} preview Service {name} -> {plan.colors.green}: {verified}"
    say(msg)
    return msg


def undo_preview(kube: Kube, plan: BlueGreenPreflight, changed: dict) -> str:
    """Delete the preview Service greenlight created, or give it back the selector it had."""
    name, ns = plan.spec.preview_service, plan.namespace
    if "preview" not in changed:
        return f"preview Service {name} was not changed"
    before = changed["preview"]
    return _delete(kube, ns, name) if before is None else _reselect(kube, ns, name, before)
