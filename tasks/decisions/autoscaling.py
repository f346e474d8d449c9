"""HorizontalPodAutoscalers (autoscaling/v2) follow the live Deployment. Pure decisions; tasks/kube/autoscaling.py
does the I/O.

- Before the switch, green gets an HPA equivalent to blue's (same min/max/metrics/behavior), named after green and
  labelled as greenlight's. Its minReplicas is *held* at blue's current replica count (capped by maxReplicas, the
  original kept in an annotation) until blue is taken out of service: green gets no traffic before the switch, and
  an idle HPA would otherwise scale it down to minReplicas just before it takes the whole load (Flagger #1209).
- When a Deployment is taken out of service (scaled to 0 or deleted) after the scale-down delay, its HPA is
  recorded on the Service and deleted, so nothing can scale it back up; the hold on the live HPA is released.
- Rollback re-creates the recorded HPA exactly and retires the other one the same way.
"""

from __future__ import annotations

import copy

MANAGED_BY = "app.kubernetes.io/managed-by"
RELEASE_ID = "greenlight.io/release-id"
HELD_MIN = "greenlight.io/held-min-replicas"  # the HPA's own minReplicas while greenlight holds it higher
_DROP_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink", "namespace")
_DROP_ANN = ("kubectl.kubernetes.io/last-applied-configuration", "autoscaling.alpha.kubernetes.io/conditions",
             "autoscaling.alpha.kubernetes.io/current-metrics")


def target_of(hpa: dict) -> str | None:
    """The Deployment an HPA scales (None for other kinds)."""
    ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
    group = str(ref.get("apiVersion", "apps/v1")).split("/")[0]
    return ref.get("name") if ref.get("kind") == "Deployment" and group in ("apps", "extensions") else None


def autoscalers_of(hpas: list[dict], deployment: str) -> list[dict]:
    return sorted((h for h in hpas if target_of(h) == deployment), key=lambda h: h["metadata"]["name"])


def portable_hpa(hpa: dict) -> dict:
    """What re-creates this HPA exactly: its spec and its own metadata, no status, nothing server-set."""
    meta = {k: v for k, v in hpa["metadata"].items() if k not in _DROP_META}
    meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _DROP_ANN}
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta,
            "spec": copy.deepcopy(hpa["spec"])}


def carried_hpa(source: dict, deployment: str, release_id: str, hold_at: int) -> dict:
    """`source`'s HPA for `deployment`: same spec, named after it, labelled as greenlight's, minReplicas held at
    `hold_at` (within maxReplicas) when that is higher than the HPA's own."""
    hpa = portable_hpa(source)
    own_min = int(hpa["spec"].get("minReplicas") or 1)
    hpa["metadata"] = {"name": deployment,
                       "labels": {**(hpa["metadata"].get("labels") or {}), MANAGED_BY: "greenlight",
                                  RELEASE_ID: release_id},
                       "annotations": dict(hpa["metadata"].get("annotations") or {})}
    hpa["spec"]["scaleTargetRef"] = {**hpa["spec"]["scaleTargetRef"], "name": deployment}
    held = min(max(hold_at, own_min), int(hpa["spec"]["maxReplicas"]))
    if held > own_min:
        hpa["spec"]["minReplicas"] = held
        hpa["metadata"]["annotations"][HELD_MIN] = str(own_min)
    return hpa


def release_hold_ops(hpa: dict) -> list[dict] | None:
    """JSON patch giving a held HPA its own minReplicas back (None: not held)."""
    held = (hpa["metadata"].get("annotations") or {}).get(HELD_MIN)
    if held is None:
        return None
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": hpa["metadata"]["resourceVersion"]},
            {"op": "replace", "path": "/spec/minReplicas", "value": int(held)},
            {"op": "remove", "path": f"/metadata/annotations/{HELD_MIN.replace('/', '~1')}"}]


def hpa_problems(hpas: list[dict], blue: str, green: str) -> list[str]:
    """Refusals before anything changes: blue scaled by several HPAs, an HPA already on green that greenlight did
    not create, or green's HPA name taken by someone else's."""
    problems = []
    on_blue = autoscalers_of(hpas, blue)
    if len(on_blue) > 1:
        problems.append(f"Deployment {blue!r} is scaled by {len(on_blue)} HorizontalPodAutoscalers "
                        f"({', '.join(h['metadata']['name'] for h in on_blue)}): keep one")
    for h in hpas:
        managed = (h["metadata"].get("labels") or {}).get(MANAGED_BY) == "greenlight"
        if managed:
            continue
        if target_of(h) == green and green != blue:
            problems.append(f"HorizontalPodAutoscaler {h['metadata']['name']!r} already scales green {green!r}")
        elif on_blue and h["metadata"]["name"] == green:
            problems.append(f"HorizontalPodAutoscaler name {green!r} (for green) is taken by one that scales "
                            f"{target_of(h) or 'something else'!r}")
    return problems


def hold_ops(hpa: dict, at: int) -> list[dict] | None:
    """JSON patch holding an HPA's minReplicas at `at` (within maxReplicas; its own kept in an annotation): a warm
    Deployment without traffic is not scaled down by its idle HPA (the rollback window). None: nothing to hold
    (already held, or `at` is not above its own minimum)."""
    annotations = hpa["metadata"].get("annotations") or {}
    own_min = int(hpa["spec"].get("minReplicas") or 1)
    held = min(max(at, own_min), int(hpa["spec"]["maxReplicas"]))
    if HELD_MIN in annotations or held <= own_min:
        return None
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": hpa["metadata"]["resourceVersion"]},
           {"op": "add", "path": "/spec/minReplicas", "value": held}]
    if annotations:
        return [*ops, {"op": "add", "path": f"/metadata/annotations/{HELD_MIN.replace('/', '~1')}",
                       "value": str(own_min)}]
    return [*ops, {"op": "add", "path": "/metadata/annotations", "value": {HELD_MIN: str(own_min)}}]
