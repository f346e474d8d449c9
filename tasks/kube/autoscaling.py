"""HorizontalPodAutoscaler I/O for "the HPA follows the live Deployment" (decisions in
tasks/decisions/autoscaling.py): carry blue's HPA over to green, retire the HPA of a Deployment taken out of
service (recorded on the Service first, so a rollback can re-create it exactly), release the hold on the live one.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from kubernetes.client.rest import ApiException

from prefect_greenlight.tasks.decisions.annotations import PREVIOUS_HPA
from prefect_greenlight.tasks.decisions.autoscaling import (
    autoscalers_of,
    carried_hpa,
    hold_ops,
    portable_hpa,
    release_hold_ops,
)
from prefect_greenlight.tasks.errors import GuardFailed
from prefect_greenlight.tasks.kube.client import TIMEOUT, Kube, json_patch, list_objects, raw_patch, read, retrying


def hpa_of(kube: Kube, namespace: str, deployment: str) -> dict | None:
    found = autoscalers_of(list_objects(kube, "HorizontalPodAutoscaler", namespace), deployment)
    return found[0] if found else None


def apply_hpa(kube: Kube, namespace: str, manifest: dict) -> dict:
    """Server-side apply (field manager greenlight): creates or converges, so a re-run is a no-op."""
    name = manifest["metadata"]["name"]
    body = {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
    return retrying(f"apply HorizontalPodAutoscaler {namespace}/{name}", lambda: raw_patch(
        kube, "HorizontalPodAutoscaler", namespace, name, body, "application/apply-patch+yaml", [("force", "true")]))


def delete_hpa(kube: Kube, namespace: str, name: str) -> bool:
    def call() -> bool:
        try:
            kube.autoscaling.delete_namespaced_horizontal_pod_autoscaler(
                name, namespace, _preload_content=False, _request_timeout=TIMEOUT)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
    return retrying(f"delete HorizontalPodAutoscaler {namespace}/{name}", call)


def carry_over(kube: Kube, namespace: str, source: dict, deployment: str, release_id: str, hold_at: int) -> str:
    hpa = apply_hpa(kube, namespace, carried_hpa(source, deployment, release_id, hold_at))
    spec = hpa["spec"]
    return (f"HorizontalPodAutoscaler {hpa['metadata']['name']} scales {deployment} "
            f"({spec.get('minReplicas', 1)}-{spec['maxReplicas']} replicas, like {source['metadata']['name']})")


def record_and_delete(kube: Kube, namespace: str, service: str, hpa: dict) -> str:
    """Record `hpa` on the Service (annotation greenlight.io/previous-hpa), then delete it: nothing can scale the
    Deployment it targeted back up, and `greenlight rollback` re-creates it exactly."""
    value = json.dumps(portable_hpa(hpa), sort_keys=True, separators=(",", ":"))
    svc = read(kube, "Service", namespace, service) or {}
    if svc.get("metadata", {}).get("annotations"):
        ops = [{"op": "add", "path": f"/metadata/annotations/{PREVIOUS_HPA.replace('/', '~1')}", "value": value}]
    else:
        ops = [{"op": "add", "path": "/metadata/annotations", "value": {PREVIOUS_HPA: value}}]
    json_patch(kube, "Service", namespace, service, ops)
    delete_hpa(kube, namespace, hpa["metadata"]["name"])
    return f"deleted HorizontalPodAutoscaler {hpa['metadata']['name']} (recorded on Service {service})"


def _guarded_min_patch(kube: Kube, namespace: str, deployment: str, ops_of: Callable[[dict], list | None],
                       says: str) -> str | None:
    """Patch the minReplicas of `deployment`'s HPA with the guarded ops `ops_of(hpa)` (None: nothing to do); a
    guard failure means the HPA controller updated it meanwhile: read again, up to 5 times."""
    for _ in range(5):
        hpa = hpa_of(kube, namespace, deployment)
        ops = ops_of(hpa) if hpa else None
        if not ops:
            return None
        try:
            json_patch(kube, "HorizontalPodAutoscaler", namespace, hpa["metadata"]["name"], ops)
            return f"HorizontalPodAutoscaler {hpa['metadata']['name']}: minReplicas {says} {ops[1]['value']}"
        except GuardFailed:
            continue
    return None


def release_hold(kube: Kube, namespace: str, deployment: str) -> str | None:
    """Give the live Deployment's HPA its own minReplicas back once the old version is out of service."""
    return _guarded_min_patch(kube, namespace, deployment, release_hold_ops, "back to")


def hold(kube: Kube, namespace: str, deployment: str, at: int) -> str | None:
    """Hold the HPA of `deployment` at `at` replicas while it is kept warm (the rollback window)."""
    return _guarded_min_patch(kube, namespace, deployment, lambda hpa: hold_ops(hpa, at), "held at")
