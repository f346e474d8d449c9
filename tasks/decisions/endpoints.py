"""Does the Service target only green? Pure functions over EndpointSlices, pods and ReplicaSets.

A Service may have several EndpointSlices (and one per IP family), so endpoints are united by targetRef uid.
Each pod is attributed to its Deployment by owner references (Pod -> ReplicaSet -> Deployment), never by labels,
because canary-style Deployments share labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OTHER = "(other)"


@dataclass(frozen=True)
class EndpointCounts:
    """Ready / not-ready endpoints of a Service per owning Deployment (OTHER: not a pod of a known Deployment)."""

    ready: dict[str, int] = field(default_factory=dict)
    not_ready: dict[str, int] = field(default_factory=dict)

    @property
    def total_ready(self) -> int:
        return sum(self.ready.values())

    def describe(self) -> str:
        if not self.ready and not self.not_ready:
            return "no endpoints"
        names = sorted(set(self.ready) | set(self.not_ready))
        return ", ".join(f"{n}: {self.ready.get(n, 0)} ready/{self.not_ready.get(n, 0)} not ready" for n in names)


@dataclass(frozen=True)
class EndpointVerdict:
    ok: bool
    message: str
    counts: EndpointCounts


def deployment_of_pods(pods: list[dict], replicasets: list[dict], deployments: list[dict]) -> dict[str, str]:
    """pod uid -> Deployment name, through owner references."""
    deploy_by_uid = {d["metadata"]["uid"]: d["metadata"]["name"] for d in deployments}
    rs_owner = {}
    for rs in replicasets:
        for ref in rs["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "Deployment" and ref.get("uid") in deploy_by_uid:
                rs_owner[rs["metadata"]["uid"]] = deploy_by_uid[ref["uid"]]
    out = {}
    for pod in pods:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "ReplicaSet" and ref.get("uid") in rs_owner:
                out[pod["metadata"]["uid"]] = rs_owner[ref["uid"]]
    return out


def deployment_by_rs_name(pods: list[dict]) -> dict[str, str]:
    """pod uid -> Deployment name from the owning ReplicaSet's name `<deployment>-<pod-template-hash>`: for
    reports, where listing ReplicaSets and Deployments as well is not worth two more requests."""
    out = {}
    for pod in pods:
        meta = pod["metadata"]
        suffix = "-" + ((meta.get("labels") or {}).get("pod-template-hash") or "")
        for ref in meta.get("ownerReferences") or []:
            if ref.get("kind") == "ReplicaSet" and len(suffix) > 1 and ref.get("name", "").endswith(suffix):
                out[meta["uid"]] = ref["name"][: -len(suffix)]
    return out


def endpoint_targets(slices: list[dict]) -> dict[str, bool]:
    """pod uid -> ready, united across slices, judged by the pod's own readiness: the `serving` condition (the
    EndpointSlice controller sets it from the pod's Ready condition) where present, else `ready`; a missing
    condition means true (API convention); a terminating endpoint is never ready. Not `ready` alone: a Service
    with publishNotReadyAddresses has every endpoint `ready`, even pods that are not."""
    out: dict[str, bool] = {}
    for s in slices:
        for ep in s.get("endpoints") or []:
            ref = ep.get("targetRef") or {}
            uid = ref.get("uid") or f"{ref.get('name')}@{','.join(ep.get('addresses') or [])}"
            cond = ep.get("conditions") or {}
            serving = cond["serving"] if cond.get("serving") is not None else cond.get("ready")
            ready = serving is not False and not cond.get("terminating")
            out[uid] = out.get(uid, False) or ready
    return out


def tally(slices: list[dict], owner_of: dict[str, str]) -> EndpointCounts:
    ready: dict[str, int] = {}
    not_ready: dict[str, int] = {}
    for uid, is_ready in endpoint_targets(slices).items():
        bucket = ready if is_ready else not_ready
        owner = owner_of.get(uid, OTHER)
        bucket[owner] = bucket.get(owner, 0) + 1
    return EndpointCounts(ready, not_ready)


def only(counts: EndpointCounts, target: str, desired: int) -> EndpointVerdict:
    """The Service's ready endpoints are all pods of `target`, at least `desired` of them."""
    strays = {k: v for k, v in counts.ready.items() if k != target}
    have = counts.ready.get(target, 0)
    if strays:
        return EndpointVerdict(False, f"Service still has ready endpoints outside {target}: "
                               f"{', '.join(f'{v} of {k}' for k, v in sorted(strays.items()))}", counts)
    if have < desired:
        return EndpointVerdict(False, f"{have} of {desired} ready endpoints are {target} pods", counts)
    return EndpointVerdict(True, f"Service targets only {target}: {have} ready endpoints", counts)


def covering_selector(a: dict[str, str], b: dict[str, str]) -> dict:
    """One LabelSelector covering the pods of two Service selectors (blue's and green's): the labels they share,
    and `key in (a, b)` where their values differ; a key only one of them has is left out (a wider scope is
    safe: ownership, not labels, decides whose a pod is)."""
    same = {k: v for k, v in a.items() if b.get(k) == v}
    differ = [{"key": k, "operator": "In", "values": sorted({a[k], b[k]})} for k in sorted(a) if k in b and a[k] != b[k]]
    return {"matchLabels": same, **({"matchExpressions": differ} if differ else {})}
