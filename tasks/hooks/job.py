"""A Job hook: create the Job (tasks/decisions/hooks.py job_body: greenlight's name, labels, the Service as its
owner, a TTL), or adopt the one a killed run of this release created; wait until it is Complete, failing fast on
BackoffLimitExceeded, DeadlineExceeded and its pods' doom reasons; read the last lines of its pods' logs.

A Job that is doomed but still running (a pod that can never pull its image, a crash loop, our own deadline) is
deleted so it stops; a Job the Job controller failed itself is left for inspection until its TTL removes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect_greenlight.tasks.decisions.hooks import (
    DEADLINE_GRACE_S,
    HookContext,
    JobVerdict,
    adopt_problem,
    job_body,
    job_name,
)
from prefect_greenlight.tasks.kube.client import Kube
from prefect_greenlight.tasks.kube.jobs import create_job, delete_job, pod_logs, wait_job
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import Deadlines, Hook

FINISHED_BY_CONTROLLER = ("BackoffLimitExceeded", "DeadlineExceeded", "PodFailurePolicy",
                          "MaxFailedIndexesExceeded", "FailedIndexes")


@dataclass(frozen=True)
class JobOutcome:
    ok: bool
    detail: str
    job: str
    logs: list[tuple[str, list[str]]] = field(default_factory=list)


def run_job(kube: Kube, hook: Hook, ctx: HookContext, key: str, record_key: str, service_uid: str,
            deadlines: Deadlines) -> JobOutcome:
    spec = hook.job
    assert spec is not None
    name = job_name(hook, record_key, key)
    body = job_body(hook, ctx, name, key, record_key, service_uid)
    job, created = create_job(kube, ctx.namespace, body)
    if not created:
        problem = adopt_problem(job, key)
        if problem:
            return JobOutcome(False, problem, name)
        say(f"hook {hook.name}: Job {name} exists already (created by an earlier run of this release): "
            "waiting for it, not creating another")
    else:
        images = ", ".join(c.get("image", "?") for c in body["spec"]["template"]["spec"]["containers"])
        say(f"hook {hook.name}: created Job {name} ({images})")
    status = wait_job(kube, ctx.namespace, name, deadlines, spec.timeout_s + DEADLINE_GRACE_S,
                      progress=lambda m: say(f"hook {hook.name}: {m}"))
    if status.verdict is JobVerdict.FAILED and status.reason not in FINISHED_BY_CONTROLLER + ("Deleted",):
        say(f"hook {hook.name}: deleting Job {name} so it stops ({status.reason})")
        try:
            delete_job(kube, ctx.namespace, name)
        except Exception as exc:  # noqa: BLE001 - the hook failed either way; say what is left behind
            say(f"hook {hook.name}: could not delete Job {name}: {exc}")
    logs = pod_logs(kube, ctx.namespace, name, spec.log_lines)
    for pod, lines in logs:
        for line in lines:
            say(f"hook {hook.name} | {pod} | {line}")
    adopted = "" if created else " (adopted from an earlier run)"
    return JobOutcome(status.verdict is JobVerdict.DONE, status.message + adopted, name, logs)
