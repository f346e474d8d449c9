"""Is the rollout done, and if not, will it ever be? Pure functions over API objects (plain dicts, as the API
server sends them), in the order `kubectl rollout status` decides, plus early failure detection on the pods of
the new ReplicaSet only (an old ReplicaSet's crash-looping pods are not this release's problem).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from prefect_greenlight.tasks.spec import Deadlines


class Verdict(str, Enum):
    WAITING = "waiting"
    DONE = "done"
    DOOMED = "doomed"


class DoomReason(str, Enum):
    """Why a rollout will never become ready. Values are a stable contract (shown to users, used in tests)."""

    IMAGE_PULL = "ImagePullBackOff"
    INVALID_IMAGE = "InvalidImageName"
    CRASH_LOOP = "CrashLoopBackOff"
    OOM_KILLED = "OOMKilled"
    CONTAINER_CONFIG = "CreateContainerConfigError"
    CONTAINER_CREATE = "CreateContainerError"
    RUN_CONTAINER = "RunContainerError"
    UNSCHEDULABLE = "Unschedulable"
    REPLICA_FAILURE = "ReplicaFailure"
    PROGRESS_DEADLINE = "ProgressDeadlineExceeded"


_IMMEDIATE_WAITING = {
    "InvalidImageName": DoomReason.INVALID_IMAGE,
    "ErrImageNeverPull": DoomReason.IMAGE_PULL,
    "CreateContainerConfigError": DoomReason.CONTAINER_CONFIG,
    "CreateContainerError": DoomReason.CONTAINER_CREATE,
    "RunContainerError": DoomReason.RUN_CONTAINER,
}
_PULL_WAITING = {"ErrImagePull", "ImagePullBackOff"}
# Messages that mean a pull can never succeed however long we wait (registry answers, not network blips).
_PERMANENT_PULL = ("not found", "manifest unknown", "unauthorized", "denied", "invalid reference")


@dataclass(frozen=True)
class RolloutStatus:
    verdict: Verdict
    message: str
    desired: int = 0
    updated: int = 0
    available: int = 0
    reason: DoomReason | None = None
    pod: str | None = None

    @property
    def done(self) -> bool:
        return self.verdict is Verdict.DONE


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _cond(obj: dict, ctype: str) -> dict | None:
    return next((c for c in obj.get("status", {}).get("conditions") or [] if c.get("type") == ctype), None)


def new_replicaset(deployment: dict, replicasets: list[dict]) -> dict | None:
    """The ReplicaSet of the Deployment's current revision (owned by it, same revision annotation)."""
    uid = deployment["metadata"].get("uid")
    revision = deployment["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision")
    for rs in replicasets:
        owned = any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])
        if owned and revision and rs["metadata"].get("annotations", {}).get(
                "deployment.kubernetes.io/revision") == revision:
            return rs
    return None


def owned_by(pod: dict, owner: dict) -> bool:
    uid = owner["metadata"].get("uid")
    return any(o.get("uid") == uid for o in pod["metadata"].get("ownerReferences") or [])


def pod_doom(pod: dict, now: float, deadlines: Deadlines) -> tuple[DoomReason, str] | None:
    """Why this pod will never become ready, if that can be told already."""
    if pod["metadata"].get("deletionTimestamp"):
        return None
    name = pod["metadata"]["name"]
    created = parse_time(pod["metadata"].get("creationTimestamp")) or now
    status = pod.get("status", {})
    sched = _cond(pod, "PodScheduled")
    if sched and sched.get("status") == "False" and sched.get("reason") == "Unschedulable":
        since = parse_time(sched.get("lastTransitionTime")) or created
        if now - since >= deadlines.unschedulable_grace_s:
            return DoomReason.UNSCHEDULABLE, (
                f"pod {name} unschedulable for {now - since:.0f} s: {sched.get('message', '')}".rstrip(": "))
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason, message = waiting.get("reason", ""), waiting.get("message", "")
        where = f"pod {name} container {cs.get('name')}: {reason}"
        if reason in _IMMEDIATE_WAITING:
            return _IMMEDIATE_WAITING[reason], f"{where} {message}".rstrip()
        if reason in _PULL_WAITING and (any(p in message.lower() for p in _PERMANENT_PULL)
                                        or now - created >= deadlines.image_pull_grace_s):
            return DoomReason.IMAGE_PULL, f"{where} {message}".rstrip()
        last = ((cs.get("lastState") or {}).get("terminated") or {})
        restarts = int(cs.get("restartCount") or 0)
        if restarts >= deadlines.crash_restarts and (reason == "CrashLoopBackOff" or last):
            if last.get("reason") == "OOMKilled":
                return DoomReason.OOM_KILLED, f"pod {name} container {cs.get('name')}: OOMKilled, {restarts} restarts"
            return DoomReason.CRASH_LOOP, (f"pod {name} container {cs.get('name')}: CrashLoopBackOff, "
                                           f"{restarts} restarts, last exit code {last.get('exitCode', '?')}")
    return None


def rollout_status(deployment: dict, replicasets: list[dict], pods: list[dict], now: float,
                   deadlines: Deadlines) -> RolloutStatus:
    """`kubectl rollout status` semantics, with fail-fast on doomed pods of the new ReplicaSet."""
    meta, spec, status = deployment["metadata"], deployment.get("spec", {}), deployment.get("status", {})
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    counts = dict(desired=desired, updated=updated, available=available)
    if int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return RolloutStatus(Verdict.WAITING, "waiting for the deployment spec update to be observed", **counts)
    progressing = _cond(deployment, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return RolloutStatus(Verdict.DOOMED, f"deployment {meta['name']} exceeded its progress deadline",
                             reason=DoomReason.PROGRESS_DEADLINE, **counts)
    rs = new_replicaset(deployment, replicasets)
    for obj in (deployment, rs):
        failure = _cond(obj, "ReplicaFailure") if obj else None
        if failure and failure.get("status") == "True":
            return RolloutStatus(Verdict.DOOMED, f"{obj['kind'] if 'kind' in obj else 'object'} "
                                 f"{obj['metadata']['name']}: {failure.get('reason')}: {failure.get('message', '')}",
                                 reason=DoomReason.REPLICA_FAILURE, **counts)
    if rs is not None:
        for pod in sorted((p for p in pods if owned_by(p, rs)), key=lambda p: p["metadata"]["name"]):
            doom = pod_doom(pod, now, deadlines)
            if doom:
                return RolloutStatus(Verdict.DOOMED, doom[1], reason=doom[0], pod=pod["metadata"]["name"], **counts)
    if desired == 0:
        return RolloutStatus(Verdict.DOOMED, f"deployment {meta['name']} has 0 replicas: nothing would serve",
                             reason=DoomReason.REPLICA_FAILURE, **counts)
    if updated < desired:
        return RolloutStatus(Verdict.WAITING, f"{updated} of {desired} updated replicas", **counts)
    if total > updated:
        return RolloutStatus(Verdict.WAITING, f"{total - updated} old replicas pending termination", **counts)
    if available < updated:
        return RolloutStatus(Verdict.WAITING, f"{available} of {updated} updated replicas available", **counts)
    return RolloutStatus(Verdict.DONE, f"{available} of {desired} replicas available", **counts)
