"""Read-only views of the cluster that several steps share: a Deployment's ready pods, the pods a Service routes
to right now, and the Service's endpoints per Deployment for reports.
"""

from __future__ import annotations

from prefect_greenlight.tasks.decisions.endpoints import (
    EndpointCounts,
    deployment_by_rs_name,
    deployment_of_pods,
    endpoint_targets,
    tally,
)
from prefect_greenlight.tasks.decisions.rollout import new_replicaset, owned_by
from prefect_greenlight.tasks.kube.client import Kube, RetryPolicy, list_objects

REPORT_RETRY = RetryPolicy(budget_s=5)  # reports must not hold a failing release up for long


def ready_pods_of(kube: Kube, namespace: str, deployment_name: str) -> list[dict]:
    """Ready, not terminating pods of the Deployment's current ReplicaSet (by ownership), sorted by name."""
    deployments = [d for d in list_objects(kube, "Deployment", namespace) if d["metadata"]["name"] == deployment_name]
    if not deployments:
        return []
    rs = new_replicaset(deployments[0], list_objects(kube, "ReplicaSet", namespace))
    if rs is None:
        return []
    pods = [p for p in list_objects(kube, "Pod", namespace) if owned_by(p, rs)
            and not p["metadata"].get("deletionTimestamp")
            and any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in p.get("status", {}).get("conditions") or [])]
    return sorted(pods, key=lambda p: p["metadata"]["name"])


def serving_pods(kube: Kube, namespace: str, service: str) -> tuple[list[dict], dict[str, str]]:
    """Pods behind the Service's ready endpoints, and each one's owning Deployment."""
    slices = list_objects(kube, "EndpointSlice", namespace, f"kubernetes.io/service-name={service}")
    ready = {uid for uid, ok in endpoint_targets(slices).items() if ok}
    pods = [p for p in list_objects(kube, "Pod", namespace) if p["metadata"]["uid"] in ready]
    owners = deployment_of_pods(pods, list_objects(kube, "ReplicaSet", namespace),
                                list_objects(kube, "Deployment", namespace))
    return pods, owners


def endpoint_counts(kube: Kube, namespace: str, service: str) -> EndpointCounts | None:
    """The Service's endpoints per owning Deployment right now, for reports (None if they cannot be read). Two
    requests: the slices and the pods; a pod's Deployment is its ReplicaSet's name less the pod-template-hash
    (the Deployment controller's naming), which is exact for reporting without listing ReplicaSets and
    Deployments too."""
    try:
        slices = list_objects(kube, "EndpointSlice", namespace, f"kubernetes.io/service-name={service}",
                              policy=REPORT_RETRY)
        return tally(slices, deployment_by_rs_name(list_objects(kube, "Pod", namespace, policy=REPORT_RETRY)))
    except Exception:  # noqa: BLE001 - a report must not fail the release
        return None
