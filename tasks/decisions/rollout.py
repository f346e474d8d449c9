"""Is the rollout done, and if not, will it ever be? Pure functions over API objects (plain dicts, as the API
server sends them), in the order `kubectl rollout status` decides, plus early failure detection on the pods of
the new ReplicaSet only (an old ReplicaSet's crash-looping pods are not this release's problem).

The kubelet's truth, not its transient noise (the cases krane's doom reasons and prefect-kubernetes' diagnostics
cover, decided in tests/unit/test_kubelet_states.py):
- fatal at once: InvalidImageName, ErrImageNeverPull, CreateContainerConfigError naming a missing Secret,
  ConfigMap or key, CreateContainerError, RunContainerError, ContainerCannotRun (exit code other than 128), and a
  pull error whose registry answer says the image can never be pulled (not found, manifest unknown, denied, ...);
- fatal after a grace: any other pull error, `image_pull_grace_s` after it was FIRST SEEN on that container (not
  after the pod's creation: a pod that spent minutes pulling a large image gets the whole grace for a blip
  afterwards). Remembering when is the caller's: `remember_pull_errors` returns the next read-only memory from
  the previous one and the pods now, so the decision stays a pure function (tasks/kube/waiting.py keeps it);
  Unschedulable after `unschedulable_grace_s`; crash loops (OOMKilled named) after `crash_restarts` restarts;
- waiting, until the ready deadline: ContainerCreating and PodInitializing (also while a large image is
  pulling), CreateContainerConfigError while the kubelet is still syncing its Secret/ConfigMap cache ("failed to
  sync secret cache: timed out waiting for the condition"), CreateContainerError from a busy runtime ("failed to
  reserve container name", "context deadline exceeded"), ContainerCannotRun with exit code 128 (node trouble,
  seen to pass), and pods the ReplicaSet replaces by itself (Failed or Succeeded: evicted, preempted, node
  shutdown). What a pod waits on is named in the WAITING message, so a ready-deadline failure says why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from types import MappingProxyType

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
    CONTAINER_CANNOT_RUN = "ContainerCannotRun"
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
# The kubelet has not yet synced the Secret/ConfigMap it needs (kubernetes#74755): it retries by itself.
_SYNCING_CACHE = re.compile(r"failed to sync \S+ cache")
_BUSY_RUNTIME = ("failed to reserve container name", "context deadline exceeded")
_TRANSIENT_EXIT = 128  # ContainerCannotRun with exit code 128: the runtime's trouble, not the image's
_NOTE_CHARS = 200

# When each container's pull error was first seen: (pod uid, container name) -> time.
FirstSeen = Mapping[tuple[str, str], float]
NOTHING_SEEN: FirstSeen = MappingProxyType({})


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


def _statuses(pod: dict) -> list[dict]:
    status = pod.get("status") or {}
    return (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])


def container_key(pod: dict, cs: dict) -> tuple[str, str]:
    return pod["metadata"].get("uid") or pod["metadata"]["name"], str(cs.get("name", ""))


def remember_pull_errors(first_seen: FirstSeen, pods: Iterable[dict], now: float) -> FirstSeen:
    """The next memory of pull errors: a container in a pull error now keeps its first-seen time, or starts at
    `now`; entries of pods no longer observed are dropped. A container keeps its entry while its pod lives, also
    while the error clears and comes back, so a flapping pull still reaches the end of its grace."""
    pods = list(pods)
    live = {container_key(p, {})[0] for p in pods}
    out = {k: t for k, t in first_seen.items() if k[0] in live}
    for p in pods:
        for cs in _statuses(p):
            if ((cs.get("state") or {}).get("waiting") or {}).get("reason") in _PULL_WAITING:
                out.setdefault(container_key(p, cs), now)
    return MappingProxyType(out)


def _transient(reason: str, message: str) -> bool:
    """Waiting reasons that look fatal but are the kubelet or runtime catching up."""
    return (reason == "CreateContainerConfigError" and bool(_SYNCING_CACHE.search(message))) or (
        reason == "CreateContainerError" and any(b in message for b in _BUSY_RUNTIME))


def _pull_doom(where: str, message: str, now: float, since: float | None,
               deadlines: Deadlines) -> tuple[DoomReason, str] | None:
    if any(p in message.lower() for p in _PERMANENT_PULL):
        return DoomReason.IMAGE_PULL, f"{where} {message}".rstrip()
    seen, grace = now - (since if since is not None else now), deadlines.image_pull_grace_s
    if seen >= grace:
        return DoomReason.IMAGE_PULL, f"{where} {message}".rstrip() + (
            f" (for {seen:.0f} s since first seen; grace {grace:.0f} s)")
    return None


def _terminated_doom(pod: str, cs: dict, deadlines: Deadlines) -> tuple[DoomReason, str] | None:
    """ContainerCannotRun, crash loops and OOM kills, from the current or the last termination."""
    state, last = cs.get("state") or {}, (cs.get("lastState") or {}).get("terminated") or {}
    now_term = state.get("terminated") or {}
    waiting_reason = (state.get("waiting") or {}).get("reason", "")
    who = f"pod {pod} container {cs.get('name')}"
    for term in (now_term,) if state.get("running") else (now_term, last):  # running now: it could run after all
        if term.get("reason") == "ContainerCannotRun" and term.get("exitCode") != _TRANSIENT_EXIT:
            return DoomReason.CONTAINER_CANNOT_RUN, (f"{who}: ContainerCannotRun, exit code {term.get('exitCode', '?')}"
                                                     f" {term.get('message', '')}".rstrip())
    restarts = int(cs.get("restartCount") or 0)
    if restarts >= deadlines.crash_restarts and (waiting_reason == "CrashLoopBackOff" or last or now_term):
        if "OOMKilled" in (now_term.get("reason"), last.get("reason")):
            return DoomReason.OOM_KILLED, f"{who}: OOMKilled, {restarts} restarts"
        exit_code = (last or now_term).get("exitCode", "?")
        return DoomReason.CRASH_LOOP, f"{who}: CrashLoopBackOff, {restarts} restarts, last exit code {exit_code}"
    return None


def _container_doom(pod: dict, cs: dict, now: float, deadlines: Deadlines,
                    first_seen: FirstSeen) -> tuple[DoomReason, str] | None:
    waiting = (cs.get("state") or {}).get("waiting") or {}
    reason, message = waiting.get("reason", ""), waiting.get("message", "")
    where = f"pod {pod['metadata']['name']} container {cs.get('name')}: {reason}"
    if _transient(reason, message):
        return None
    if reason in _IMMEDIATE_WAITING:
        return _IMMEDIATE_WAITING[reason], f"{where} {message}".rstrip()
    if reason in _PULL_WAITING:
        return _pull_doom(where, message, now, first_seen.get(container_key(pod, cs)), deadlines)
    return _terminated_doom(pod["metadata"]["name"], cs, deadlines)


def pod_doom(pod: dict, now: float, deadlines: Deadlines,
             first_seen: FirstSeen = NOTHING_SEEN) -> tuple[DoomReason, str] | None:
    """Why this pod will never become ready, if that can be told already. `first_seen`: when each container's
    pull error was first seen (see remember_pull_errors); a pull error it does not know is first seen `now`."""
    meta, status = pod["metadata"], pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") in ("Failed", "Succeeded"):
        return None  # going away, or over: the ReplicaSet replaces it (evicted, preempted, node shut down)
    name = meta["name"]
    created = parse_time(meta.get("creationTimestamp")) or now
    sched = _cond(pod, "PodScheduled")
    if sched and sched.get("status") == "False" and sched.get("reason") == "Unschedulable":
        since = parse_time(sched.get("lastTransitionTime")) or created
        if now - since >= deadlines.unschedulable_grace_s:
            return DoomReason.UNSCHEDULABLE, (
                f"pod {name} unschedulable for {now - since:.0f} s: {sched.get('message', '')}".rstrip(": "))
    for cs in _statuses(pod):
        doom = _container_doom(pod, cs, now, deadlines, first_seen)
        if doom:
            return doom
    return None


def pod_note(pod: dict) -> str | None:
    """What a pod that is not doomed waits on, for the WAITING message: its first waiting container's reason and
    the kubelet's message, cut to a stable length (no clock in it, so progress reports only real changes)."""
    for cs in _statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            text = f"pod {pod['metadata']['name']} container {cs.get('name')}: {waiting['reason']} " \
                   f"{waiting.get('message', '')}".rstrip()
            return text if len(text) <= _NOTE_CHARS else text[:_NOTE_CHARS - 3] + "..."
    return None


def _counted(name: str, desired: int, updated: int, available: int, total: int, note: str | None) -> RolloutStatus:
    """The count checks of `kubectl rollout status`, in its order; a WAITING message names what a pod waits on."""
    counts = dict(desired=desired, updated=updated, available=available)
    if desired == 0:
        return RolloutStatus(Verdict.DOOMED, f"deployment {name} has 0 replicas: nothing would serve",
                             reason=DoomReason.REPLICA_FAILURE, **counts)
    if updated < desired:
        message = f"{updated} of {desired} updated replicas"
    elif total > updated:
        message = f"{total - updated} old replicas pending termination"
    elif available < updated:
        message = f"{available} of {updated} updated replicas available"
    else:
        return RolloutStatus(Verdict.DONE, f"{available} of {desired} replicas available", **counts)
    return RolloutStatus(Verdict.WAITING, message + (f"; {note}" if note else ""), **counts)


def rollout_status(deployment: dict, replicasets: list[dict], pods: list[dict], now: float,
                   deadlines: Deadlines, first_seen: FirstSeen = NOTHING_SEEN) -> RolloutStatus:
    """`kubectl rollout status` semantics, with fail-fast on doomed pods of the new ReplicaSet. `first_seen`:
    when each container's pull error was first seen (remember_pull_errors), for the pull grace."""
    meta, spec, status = deployment["metadata"], deployment.get("spec", {}), deployment.get("status", {})
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
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
    note = None
    if rs is not None:
        for pod in sorted((p for p in pods if owned_by(p, rs)), key=lambda p: p["metadata"]["name"]):
            doom = pod_doom(pod, now, deadlines, first_seen)
            if doom:
                return RolloutStatus(Verdict.DOOMED, doom[1], reason=doom[0], pod=pod["metadata"]["name"], **counts)
            note = note or pod_note(pod)
    return _counted(meta["name"], desired, updated, available, int(status.get("replicas") or 0), note)
