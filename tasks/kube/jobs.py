"""Kubernetes I/O for hook Jobs: create one (or find the one a killed run created), wait for it watch-based (the
decision is tasks/decisions/hooks.py job_status, re-made on every change), delete it, and read the last lines of
its pods' logs. Permissions (deployments/rbac-hooks.yaml): jobs create/get/list/watch/delete, pods/log get.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from kubernetes.client.rest import ApiException

from prefect_greenlight.tasks.decisions.hooks import JOB_NAME_LABEL, JobStatus, JobVerdict, job_status
from prefect_greenlight.tasks.decisions.rollout import NOTHING_SEEN, remember_pull_errors
from prefect_greenlight.tasks.errors import TemporaryError
from prefect_greenlight.tasks.kube.client import (
    TIMEOUT,
    Kube,
    RetryPolicy,
    delete_if_present,
    list_objects,
    never_sent,
    read,
    retrying,
)
from prefect_greenlight.tasks.kube.watching import Watcher
from prefect_greenlight.tasks.spec import Deadlines

LOG_PODS = 3  # the newest pods of a Job whose logs are reported
LOG_READ = RetryPolicy(budget_s=5.0)  # logs feed a report: never hold a release up for long


def create_job(kube: Kube, namespace: str, body: dict, dry_run: bool = False) -> tuple[dict, bool]:
    """(the Job, created now?). A Job of that name that exists already (a re-run, or a create whose answer was
    lost) is returned as it is: the caller decides whether to adopt it. Re-sent only while the apiserver certainly
    never got it; after an ambiguous failure, re-read. `dry_run`: the apiserver validates it, nothing is stored."""
    name = body["metadata"]["name"]

    def call() -> tuple[dict, bool]:
        try:
            resp = kube.batch.create_namespaced_job(namespace, body, dry_run="All" if dry_run else None,
                                                    _preload_content=False, _request_timeout=TIMEOUT)
            return json.loads(resp.data), True
        except ApiException as exc:
            if exc.status == 409:  # exists (a dry run's too: the real run adopts it)
                existing = read(kube, "Job", namespace, name)
                if existing is not None:
                    return existing, False
            raise

    try:
        return retrying(f"create Job {namespace}/{name}", call, retry_if=lambda exc, _err: never_sent(exc))
    except TemporaryError:
        existing = None if dry_run else read(kube, "Job", namespace, name)
        if existing is None:
            raise
        return existing, False


def delete_job(kube: Kube, namespace: str, name: str) -> bool:
    """Delete the Job and (in the background, by the garbage collector) its pods. False when it was gone."""
    return delete_if_present(f"delete Job {namespace}/{name}", lambda: kube.batch.delete_namespaced_job(
        name, namespace, propagation_policy="Background", _preload_content=False, _request_timeout=TIMEOUT))


def wait_job(kube: Kube, namespace: str, name: str, deadlines: Deadlines, timeout_s: float,
             progress: Callable[[str], None] = lambda _: None) -> JobStatus:
    """Block until the Job is DONE or FAILED (a deadline turns WAITING into FAILED, reason Timeout). Between
    observations it remembers when each container's pull error was first seen, as a rollout wait does."""
    seen = [NOTHING_SEEN]
    last: list[JobStatus] = []
    with Watcher() as w:
        jobs = w.watch(kube.batch.list_namespaced_job, namespace=namespace, field_selector=f"metadata.name={name}")
        pods = w.watch(kube.core.list_namespaced_pod, namespace=namespace, label_selector=f"{JOB_NAME_LABEL}={name}")

        def decide() -> JobStatus | None:
            now, observed = time.time(), pods.items()
            seen[0] = remember_pull_errors(seen[0], observed, now)
            found = jobs.items()
            status = job_status(found[0] if found else None, observed, now, deadlines, seen[0])
            if not last or last[-1].message != status.message:
                progress(status.message)
            last[:] = [status]
            return None if status.verdict is JobVerdict.WAITING else status

        result = w.wait_for(decide, timeout_s)
        health = w.health()
    if result is not None:
        return result
    seen_last = (last[0].message if last else "no status observed") + (f"; {health}" if health else "")
    return JobStatus(JobVerdict.FAILED, f"Job {name} not Complete within {timeout_s:.0f} s: {seen_last}", "Timeout")


def pod_logs(kube: Kube, namespace: str, job: str, lines: int) -> list[tuple[str, list[str]]]:
    """(pod, its last `lines` log lines) for the Job's newest pods, every container; a log that cannot be read
    says why instead (a report never fails a hook)."""
    if lines <= 0:
        return []
    try:
        pods = list_objects(kube, "Pod", namespace, f"{JOB_NAME_LABEL}={job}", policy=LOG_READ)
    except Exception as exc:  # noqa: BLE001 - a report, not a step
        return [("?", [f"(pods not listed: {exc})"])]
    pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)
    out = []
    for pod in pods[:LOG_PODS]:
        name = pod["metadata"]["name"]
        text: list[str] = []
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        for c in containers:
            def read_log(c: str = c, name: str = name):
                return kube.core.read_namespaced_pod_log(name, namespace, container=c, tail_lines=lines,
                                                         _preload_content=False, _request_timeout=TIMEOUT)
            try:
                resp = retrying(f"read the log of pod {namespace}/{name}", read_log, LOG_READ)
                got = resp.data.decode("utf-8", "replace").splitlines()[-lines:]
            except Exception as exc:  # noqa: BLE001
                got = [f"(no log: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})"]
            text += [f"[{c}] {line}" for line in got] if len(containers) > 1 else got
        out.append((name, text))
    return out
