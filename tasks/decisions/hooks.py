"""Hooks, decided: which hook runs under which name, the Job greenlight creates for one, whether that Job is done
or doomed, what a webhook is sent and what its answer means, and the record that makes a hook run at most once
per release. Pure (tasks/hooks/ does the I/O).

**At most once per release.** A release is identified across re-runs by a fingerprint of what it releases
(strategy, Service and the new version: the manifest, or the image and container), not by its release id: a
re-run after a kill gets a new id. The Service's annotation `greenlight.io/hooks` records the fingerprint, the
key of the release (the id of the run that started it) and each hook that completed; a re-run of the same release
finds it unfinished and skips what is done. A Job hook is also its own record: its name is derived from the key and
the hook, so a re-run that finds the Job (Complete, or still running after the kill) adopts it instead of creating
a second. A release that ended (released, rolled back) marks the record finished; the next release starts afresh.
A webhook carries `delivery` (and the `Idempotency-Key` header), stable across re-runs, for the one window no
record can close: a kill between the 2xx and the record's write.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from prefect_greenlight.tasks.decisions.annotations import PREFIX
from prefect_greenlight.tasks.decisions.rollout import NOTHING_SEEN, FirstSeen, owned_by, pod_doom, pod_note
from prefect_greenlight.tasks.spec import Deadlines
from prefect_greenlight.tasks.spec.hooks import Hook, HookPoint

HOOKS_ANNOTATION = PREFIX + "hooks"
MANAGED_BY = "app.kubernetes.io/managed-by"
HOOK_LABEL, POINT_LABEL = PREFIX + "hook", PREFIX + "hook-point"
SERVICE_LABEL, RELEASE_LABEL = PREFIX + "service", PREFIX + "release-id"
HOOK_KEY_ANNOTATION, RELEASE_KEY_ANNOTATION = PREFIX + "hook-key", PREFIX + "release-key"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
DEADLINE_GRACE_S = 30  # beyond activeDeadlineSeconds, for the Job controller to say DeadlineExceeded itself


@dataclass(frozen=True)
class HookContext:
    """The release a hook runs in, as a webhook is told and a Job is labelled."""

    namespace: str
    service: str
    strategy: str  # blue-green | canary
    release_id: str
    blue: str  # the version serving before (a canary's stable)
    green: str  # the new version (the canary)
    images: tuple[str, ...]  # the new version's images
    green_image: str  # the image a Job gets with green_image: the released one


def hook_key(hook: Hook, percent: int | None = None) -> str:
    """The hook's entry in the record: `<point>/<name>`, a between-steps hook once per step (`@<percent>`)."""
    return f"{hook.at.value}/{hook.name}" + (f"@{percent}" if percent is not None else "")


def step_name(hook: Hook, percent: int | None = None) -> str:
    """Its step in the timeline and the plan: `hook-<name>`, between canary steps `hook-<name>-<percent>` (after
    the step at that percentage, as `pause-<percent>`)."""
    return f"hook-{hook.name}" + (f"-{percent}" if percent is not None else "")


def release_fingerprint(strategy: str, service: str, source: Mapping[str, Any]) -> str:
    """What the release releases, as 16 hex digits: the same for every run of the same release."""
    canonical = json.dumps({"strategy": strategy, "service": service, **source}, sort_keys=True,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


SOURCE_FIELDS = ("manifest", "image", "container", "color_key", "green_value", "stable", "canary_name")


def release_source(spec: Any) -> dict[str, Any]:
    """The fields of a spec that say what is released (the version), for the fingerprint: not the options of
    how (approval, delays, a `--lock-wait` added on the re-run)."""
    return {f: getattr(spec, f) for f in SOURCE_FIELDS if getattr(spec, f, None) is not None}


def spec_fingerprint(strategy: str, spec: Any) -> str:
    """The fingerprint of the release a spec describes."""
    return release_fingerprint(strategy, spec.service, release_source(spec))


def released_image(spec: Any, images: list[str] | tuple[str, ...]) -> str:
    """The image a Job hook gets with green_image: the one being released (image mode), else the new
    Deployment's first container's."""
    return getattr(spec, "image", None) or (images[0] if images else "")


def _hex8(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]


def job_name(hook: Hook, record_key: str, key: str) -> str:
    """`<hook name>-<8 hex>`, at most 63 characters (the Job's name becomes its pods' `job-name` label)."""
    return f"{hook.name[:54].rstrip('-')}-{_hex8(record_key, key)}"


def delivery_id(record_key: str, key: str) -> str:
    return f"{record_key}/{key}"


# -- the record ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HookRecord:
    fingerprint: str
    key: str  # the release id of the run that started this release
    done: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # hook key -> what happened
    finished: str = ""  # the outcome, once the release ended

    def annotation(self) -> str:
        return json.dumps({"release": self.fingerprint, "key": self.key, "done": dict(self.done),
                           "finished": self.finished}, sort_keys=True, separators=(",", ":"))

    def with_done(self, key: str, note: str) -> HookRecord:
        return HookRecord(self.fingerprint, self.key, MappingProxyType({**self.done, key: note[:200]}),
                          self.finished)

    def finished_as(self, outcome: str) -> HookRecord:
        return HookRecord(self.fingerprint, self.key, self.done, outcome)


def read_hook_record(service: dict | None) -> HookRecord | None:
    raw = (((service or {}).get("metadata") or {}).get("annotations") or {}).get(HOOKS_ANNOTATION)
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("done", {}), dict):
        return None
    return HookRecord(str(data.get("release", "")), str(data.get("key", "")),
                      MappingProxyType({str(k): str(v) for k, v in (data.get("done") or {}).items()}),
                      str(data.get("finished") or ""))


def record_for(existing: HookRecord | None, fingerprint: str, release_id: str) -> HookRecord:
    """This release's record: the existing one when it is this release, unfinished (a re-run); else a new one."""
    if existing is not None and existing.fingerprint == fingerprint and not existing.finished and existing.key:
        return existing
    return HookRecord(fingerprint, release_id)


# -- the Job ------------------------------------------------------------------------------------------------
def job_body(hook: Hook, ctx: HookContext, name: str, key: str, record_key: str, service_uid: str) -> dict:
    """The Job greenlight creates: the user's manifest with greenlight's name, labels, owner (the Service: the
    Job goes when the Service goes), a TTL, a deadline, `backoffLimit: 0` and `restartPolicy: Never` unless the
    manifest says otherwise, and the green image where asked for."""
    spec_ = hook.job
    assert spec_ is not None
    body = copy.deepcopy(dict(spec_.manifest))
    labels = {MANAGED_BY: "greenlight", SERVICE_LABEL: ctx.service, HOOK_LABEL: hook.name,
              POINT_LABEL: hook.at.value, RELEASE_LABEL: ctx.release_id}
    meta = body.setdefault("metadata", {})
    meta.update(name=name, namespace=ctx.namespace)
    meta.pop("generateName", None)
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    meta["annotations"] = {**(meta.get("annotations") or {}), HOOK_KEY_ANNOTATION: key,
                           RELEASE_KEY_ANNOTATION: record_key}
    meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Service", "name": ctx.service, "uid": service_uid}]
    spec = body.setdefault("spec", {})
    spec.setdefault("ttlSecondsAfterFinished", spec_.ttl_s)
    spec.setdefault("activeDeadlineSeconds", max(1, int(spec_.timeout_s)))
    spec.setdefault("backoffLimit", 0)
    template = spec["template"]
    template.setdefault("metadata", {})
    template["metadata"]["labels"] = {**(template["metadata"].get("labels") or {}), HOOK_LABEL: hook.name,
                                      MANAGED_BY: "greenlight"}
    pod = template["spec"]
    pod.setdefault("restartPolicy", "Never")
    if spec_.green_image:
        for c in pod["containers"]:
            if spec_.container in (None, c.get("name")):
                c["image"] = ctx.green_image
    return body


def job_images(hook: Hook, green_image: str) -> list[str]:
    """The images the hook's Job runs (for the plan)."""
    assert hook.job is not None
    return [green_image if hook.job.green_image and hook.job.container in (None, c.get("name")) else
            str(c.get("image")) for c in hook.job.manifest["spec"]["template"]["spec"]["containers"]]


def adopt_problem(job: dict, key: str) -> str | None:
    """An existing Job of the hook's name is adopted only when greenlight made it for this very hook."""
    meta = job.get("metadata") or {}
    if (meta.get("annotations") or {}).get(HOOK_KEY_ANNOTATION) != key or \
            (meta.get("labels") or {}).get(MANAGED_BY) != "greenlight":
        return f"Job {meta.get('name')} exists and was not created by greenlight for hook {key}"
    return None


class JobVerdict(str, Enum):
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class JobStatus:
    verdict: JobVerdict
    message: str
    reason: str = ""  # BackoffLimitExceeded, DeadlineExceeded, ... or a pod's DoomReason
    pod: str | None = None


def _condition(job: dict, *types: str) -> dict | None:
    return next((c for c in (job.get("status") or {}).get("conditions") or []
                 if c.get("type") in types and c.get("status") == "True"), None)


def _counts(job: dict) -> str:
    st = job.get("status") or {}
    return f"{int(st.get('active') or 0)} active, {int(st.get('succeeded') or 0)} succeeded, " \
           f"{int(st.get('failed') or 0)} failed"


def job_status(job: dict | None, pods: list[dict], now: float, deadlines: Deadlines,
               first_seen: FirstSeen = NOTHING_SEEN) -> JobStatus:
    """Is the Job done, or will it never be? Its own conditions first (Complete; Failed or FailureTarget with the
    Job controller's reason: BackoffLimitExceeded, DeadlineExceeded, PodFailurePolicy, ...), then its pods' doom
    reasons as for a rollout (tasks/decisions/rollout.py: pull errors, crash loops, config errors, ...)."""
    if job is None:
        return JobStatus(JobVerdict.FAILED, "the Job does not exist (deleted?)", "Deleted")
    name = job["metadata"]["name"]
    if done := _condition(job, "Complete", "SuccessCriteriaMet"):
        return JobStatus(JobVerdict.DONE, f"Job {name} {done['type']}: {_counts(job)}")
    if failed := _condition(job, "Failed", "FailureTarget"):
        reason, detail = failed.get("reason") or "Failed", failed.get("message") or ""
        return JobStatus(JobVerdict.FAILED, f"Job {name} failed: {reason}" + (f": {detail}" if detail else "")
                         + f" ({_counts(job)})", reason)
    note = None
    for pod in sorted((p for p in pods if owned_by(p, job)), key=lambda p: p["metadata"]["name"]):
        if doom := pod_doom(pod, now, deadlines, first_seen):
            return JobStatus(JobVerdict.FAILED, f"Job {name}: {doom[1]}", doom[0].value, pod["metadata"]["name"])
        note = note or pod_note(pod)
    return JobStatus(JobVerdict.WAITING, f"Job {name}: {_counts(job)}" + (f"; {note}" if note else ""))


# -- the webhook --------------------------------------------------------------------------------------------
def webhook_payload(ctx: HookContext, hook: Hook, step: str, delivery: str, percent: int | None = None,
                    next_percent: int | None = None) -> dict:
    """The JSON a webhook is sent (Flagger's gate model: the receiver answers 2xx to let the release go on)."""
    body: dict[str, Any] = {"release_id": ctx.release_id, "service": ctx.service, "namespace": ctx.namespace,
                            "strategy": ctx.strategy, "blue": ctx.blue, "green": ctx.green,
                            "images": list(ctx.images), "step": step, "phase": hook.at.value, "hook": hook.name,
                            "delivery": delivery}
    if percent is not None:
        body["percent"] = percent
    if next_percent is not None:
        body["next_percent"] = next_percent
    return body


def webhook_outcome(status: int | None, error: str, timeout_s: float) -> tuple[bool, str]:
    """2xx is go; any other status, a connection error or a timeout fails the hook."""
    if status is None:
        return False, error or f"no answer within {timeout_s:g} s"
    if 200 <= status < 300:
        return True, f"HTTP {status}"
    return False, f"HTTP {status}" + (f": {error}" if error else "")


def safe_url(url: str) -> str:
    """The URL without user info, query or fragment (they may carry a token): what the plan and report show."""
    scheme, _, rest = url.partition("://")
    host_path = rest.split("?", 1)[0].split("#", 1)[0]
    host, slash, path = host_path.partition("/")
    return f"{scheme}://{host.rsplit('@', 1)[-1]}{slash}{path}"


# -- what a failure does ------------------------------------------------------------------------------------
FAILURE_EFFECT = {
    HookPoint.PRE_RELEASE: "a failure rolls back before anything is applied",
    HookPoint.PRE_SWITCH: "a failure rolls back without switching (green removed; the Service never moves)",
    HookPoint.POST_SWITCH: "a failure switches back to blue (verified by EndpointSlices), then removes green",
    HookPoint.ON_ROLLBACK: "a failure is reported; the rollback goes on",
    HookPoint.BEFORE_FIRST_STEP: "a failure aborts before the canary gets traffic",
    HookPoint.BETWEEN_STEPS: "a failure aborts: stable back to its full count, ready first, then the canary to 0",
    HookPoint.AFTER_LAST_STEP: "a failure aborts: stable back to its full count before it is removed",
}
