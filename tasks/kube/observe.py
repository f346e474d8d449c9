"""Read-only views of the cluster that several steps share: a Deployment's ready pods, the pods a Service routes
to right now, the Deployment its selector selects, and the Service's endpoints per Deployment for reports.
"""

from __future__ import annotations

from prefect_greenlight.tasks.decisions.colors import pod_labels, selector_matches
from prefect_greenlight.tasks.decisions.endpoints import (
    EndpointCounts,
    deployment_by_rs_name,
    deployment_of_pods,
    endpoint_targets,
    tally,
)
from prefect_greenlight.tasks.decisions.rollout import new_replicaset, owned_by
from prefect_greenlight.tasks.decisions.workload import selector_query
from prefect_greenlight.tasks.kube.client import Kube, RetryPolicy, list_objects, read

REPORT_RETRY = RetryPolicy(budget_s=5)  # reports must not hold a failing release up for long


def ready_pods_of(kube: Kube, namespace: str, deployment_name: str) -> list[dict]:
    """Ready, not terminating pods of the Deployment's current ReplicaSet (by ownership), sorted by name."""
    deployment = read(kube, "Deployment", namespace, deployment_name)
    if deployment is None:
        return []
    scope = selector_query((deployment.get("spec") or {}).get("selector"))
    rs = new_replicaset(deployment, list_objects(kube, "ReplicaSet", namespace, scope))
    if rs is None:
        return []
    pods = [p for p in list_objects(kube, "Pod", namespace, scope) if owned_by(p, rs)
            and not p["metadata"].get("deletionTimestamp")
            and any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in p.get("status", {}).get("conditions") or [])]
    return sorted(pods, key=lambda p: p["metadata"]["name"])


def service_scope(kube: Kube, namespace: str, service: str, policy: RetryPolicy | None = None) -> str | None:
    """The Service's selector as a label query: pods (and ReplicaSets) are listed by it, never the namespace's."""
    selector = ((read(kube, "Service", namespace, service, policy) or {}).get("spec") or {}).get("selector")
    return selector_query({"matchLabels": selector} if selector else None)


def serving_pods(kube: Kube, namespace: str, service: str) -> tuple[list[dict], dict[str, str]]:
    """Pods behind the Service's ready endpoints, and each one's owning Deployment."""
    scope = service_scope(kube, namespace, service)
    slices = list_objects(kube, "EndpointSlice", namespace, f"kubernetes.io/service-name={service}")
    ready = {uid for uid, ok in endpoint_targets(slices).items() if ok}
    pods = [p for p in list_objects(kube, "Pod", namespace, scope) if p["metadata"]["uid"] in ready]
    owners = deployment_of_pods(pods, list_objects(kube, "ReplicaSet", namespace, scope),
                                list_objects(kube, "Deployment", namespace))
    return pods, owners


def selected_deployment(kube: Kube, namespace: str, service: str) -> tuple[str, str] | None:
    """(name, image of its first container) of the Deployment whose pods the Service's selector selects now;
    None when the Service is missing or selects none."""
    svc = read(kube, "Service", namespace, service)
    selector = ((svc or {}).get("spec") or {}).get("selector") or {}
    for d in list_objects(kube, "Deployment", namespace) if svc else []:
        if selector_matches(selector, pod_labels(d)):
            return d["metadata"]["name"], d["spec"]["template"]["spec"]["containers"][0].get("image", "")
    return None


def endpoint_counts(kube: Kube, namespace: str, service: str) -> EndpointCounts | None:
    """The Service's endpoints per owning Deployment right now, for reports (None if they cannot be read). Three
    requests whatever the replica count: the Service, its slices and the pods its selector covers; a pod's
    Deployment is its ReplicaSet's name less the pod-template-hash (the Deployment controller's naming), which is
    exact for reporting without listing ReplicaSets and Deployments too."""
    try:
        scope = service_scope(kube, namespace, service, REPORT_RETRY)
        slices = list_objects(kube, "EndpointSlice", namespace, f"kubernetes.io/service-name={service}",
                              policy=REPORT_RETRY)
        return tally(slices, deployment_by_rs_name(list_objects(kube, "Pod", namespace, scope,
                                                                policy=REPORT_RETRY)))
    except Exception:  # noqa: BLE001 - a report must not fail the release
        return None
