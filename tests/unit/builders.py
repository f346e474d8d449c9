"""Builders of Kubernetes API objects as plain dicts, shaped like the API server's JSON (camelCase keys,
metadata.uid, ownerReferences carrying kind and uid), for the table-driven unit tests of the pure functions.

Every builder takes only what a test varies; everything else gets a realistic default. Uids are deterministic
(`uid-<kind>-<name>`) so a test can build an ownerReference without holding the owner object.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

NS = "default"
# A fixed instant: no test reads the real clock.
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()


def iso(ts: float, micro: bool = False) -> str:
    """RFC 3339 as the API server writes it (Time: seconds; MicroTime: microseconds)."""
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.fromtimestamp(ts, timezone.utc).strftime(fmt)


def uid(kind: str, name: str) -> str:
    return f"uid-{kind.lower()}-{name}"


def meta(kind: str, name: str, *, namespace: str = NS, labels: dict | None = None,
         annotations: dict | None = None, owners: list[dict] | None = None, **extra: Any) -> dict:
    m: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid(kind, name), "resourceVersion": "1",
                         "creationTimestamp": iso(T0)}
    if labels is not None:
        m["labels"] = dict(labels)
    if annotations is not None:
        m["annotations"] = dict(annotations)
    if owners:
        m["ownerReferences"] = owners
    m.update(extra)
    return m


def owner_ref(obj: dict) -> dict:
    """The controller ownerReference pointing at `obj` (as the Deployment/ReplicaSet controllers write it)."""
    api = "apps/v1"
    return {"apiVersion": api, "kind": obj["kind"], "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def condition(ctype: str, status: str, reason: str = "", message: str = "", since: float | None = None) -> dict:
    c = {"type": ctype, "status": status}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    if since is not None:
        c["lastTransitionTime"] = iso(since)
    return c


def container(name: str = "app", image: str = "nginx:1.25", **extra: Any) -> dict:
    return {"name": name, "image": image, "ports": [{"containerPort": 80, "protocol": "TCP"}], **extra}


def deployment(name: str, labels: dict, *, replicas: int | None = 3, match_labels: dict | None = None,
               containers: list[dict] | None = None, generation: int = 1, observed: int | None = None,
               updated: int | None = None, available: int | None = None, total: int | None = None,
               ready: int | None = None, revision: str = "1", conditions: list[dict] | None = None,
               meta_labels: dict | None = None, status: bool = True, **spec_extra: Any) -> dict:
    """A Deployment whose pod template carries `labels`; status defaults to a finished rollout of `replicas`."""
    n = replicas if replicas is not None else 1
    spec: dict[str, Any] = {
        "selector": {"matchLabels": dict(match_labels if match_labels is not None else labels)},
        "template": {"metadata": {"labels": dict(labels)},
                     "spec": {"containers": containers if containers is not None else [container()]}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "progressDeadlineSeconds": 600,
        **spec_extra,
    }
    if replicas is not None:
        spec["replicas"] = replicas
    d: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta("Deployment", name, labels=meta_labels if meta_labels is not None else dict(labels),
                         annotations={"deployment.kubernetes.io/revision": revision}, generation=generation),
        "spec": spec,
    }
    if status:
        d["status"] = {
            "observedGeneration": generation if observed is None else observed,
            "replicas": n if total is None else total,
            "updatedReplicas": n if updated is None else updated,
            "readyReplicas": n if ready is None else ready,
            "availableReplicas": n if available is None else available,
            "conditions": conditions if conditions is not None else [
                condition("Available", "True", "MinimumReplicasAvailable"),
                condition("Progressing", "True", "NewReplicaSetAvailable")],
        }
    return d


def manifest(name: str, labels: dict, **kwargs: Any) -> dict:
    """A green Deployment manifest as a user writes it: no status, no uid, no resourceVersion."""
    d = deployment(name, labels, status=False, **kwargs)
    d["metadata"] = {"name": name, "labels": dict(labels)}
    return d


def replicaset(deploy: dict, *, revision: str | None = None, suffix: str = "abc12",
               conditions: list[dict] | None = None) -> dict:
    rev = revision or deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
    name = f"{deploy['metadata']['name']}-{suffix}"
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": meta("ReplicaSet", name, labels=dict(deploy["spec"]["template"]["metadata"]["labels"]),
                           annotations={"deployment.kubernetes.io/revision": rev}, owners=[owner_ref(deploy)]),
          "spec": {"replicas": deploy["spec"].get("replicas", 1)},
          "status": {"replicas": 0}}
    if conditions:
        rs["status"]["conditions"] = conditions
    return rs


def container_status(name: str = "app", *, waiting: str | None = None, message: str = "", restarts: int = 0,
                     last: dict | None = None, ready: bool = False) -> dict:
    """`waiting`: a waiting reason; otherwise the container is running. `last`: lastState.terminated."""
    state = {"waiting": {"reason": waiting, **({"message": message} if message else {})}} if waiting else {
        "running": {"startedAt": iso(T0)}}
    return {"name": name, "image": "nginx:1.25", "imageID": "", "ready": ready, "restartCount": restarts,
            "started": not waiting, "state": state, "lastState": {"terminated": last} if last else {}}


def terminated(reason: str = "Error", exit_code: int = 1) -> dict:
    return {"reason": reason, "exitCode": exit_code, "startedAt": iso(T0), "finishedAt": iso(T0 + 1)}


def pod(name: str, owner: dict | None, *, statuses: list[dict] | None = None, init: list[dict] | None = None,
        conditions: list[dict] | None = None, created: float = T0, labels: dict | None = None,
        deleting: bool = False) -> dict:
    m = meta("Pod", name, labels=labels or {}, owners=[owner_ref(owner)] if owner else None,
             creationTimestamp=iso(created))
    if deleting:
        m["deletionTimestamp"] = iso(created + 1)
    status: dict[str, Any] = {"phase": "Pending", "conditions": conditions or []}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init is not None:
        status["initContainerStatuses"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m,
            "spec": {"containers": [container()]}, "status": status}


def service(name: str, selector: dict | None, *, annotations: dict | None = None) -> dict:
    spec: dict[str, Any] = {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}
    if selector is not None:
        spec["selector"] = dict(selector)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta("Service", name, annotations=annotations),
            "spec": spec}


def record_annotations(live: str, previous: str, previous_selector: dict) -> dict:
    return {"greenlight.io/live-deployment": live, "greenlight.io/previous-deployment": previous,
            "greenlight.io/previous-selector": json.dumps(previous_selector, sort_keys=True)}


def endpoint(pod_obj: dict | None, address: str, *, ready: bool | None = True, serving: bool | None = None,
             terminating: bool | None = None) -> dict:
    """One EndpointSlice endpoint; a None condition is left out, as the API server does."""
    conds = {k: v for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating)) if v is not None}
    ep: dict[str, Any] = {"addresses": [address], "conditions": conds}
    if pod_obj is not None:
        ep["targetRef"] = {"kind": "Pod", "namespace": pod_obj["metadata"]["namespace"],
                           "name": pod_obj["metadata"]["name"], "uid": pod_obj["metadata"]["uid"]}
        ep["nodeName"] = "node-1"
    return ep


def endpoint_slice(service_name: str, endpoints: list[dict], *, family: str = "IPv4", suffix: str = "x1") -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": family,
            "metadata": meta("EndpointSlice", f"{service_name}-{suffix}",
                             labels={"kubernetes.io/service-name": service_name,
                                     "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}),
            "endpoints": endpoints, "ports": [{"name": "", "port": 80, "protocol": "TCP"}]}


def lease(holder: str | None, *, renew: float | None, duration: int | None = 15,
          acquire: float | None = None) -> dict:
    spec: dict[str, Any] = {}
    if holder is not None:
        spec["holderIdentity"] = holder
    if duration is not None:
        spec["leaseDurationSeconds"] = duration
    if renew is not None:
        spec["renewTime"] = iso(renew, micro=True)
    if acquire is not None:
        spec["acquireTime"] = iso(acquire, micro=True)
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": meta("Lease", "greenlight-web"), "spec": spec}
