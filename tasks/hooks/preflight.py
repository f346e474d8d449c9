"""Preflight for hooks, before anything changes: the apiserver validates each hook's Job as greenlight would
create it (a server-side dry run: schema, admission, the owner reference), so a broken Job manifest is bad input
(exit 2, nothing changed) rather than a failure in the middle of the release."""

from __future__ import annotations

from prefect_greenlight.tasks.decisions.hooks import HookContext, hook_key, job_body, job_name
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.kube.client import Kube
from prefect_greenlight.tasks.kube.jobs import create_job
from prefect_greenlight.tasks.spec import Hook


def check_hook_jobs(kube: Kube, hooks: list[Hook], ctx: HookContext, service: dict) -> None:
    problems = []
    for hook in (h for h in hooks if h.job is not None):
        key = hook_key(hook)
        body = job_body(hook, ctx, job_name(hook, ctx.release_id, key), key, ctx.release_id,
                        service["metadata"].get("uid", ""))
        try:
            create_job(kube, ctx.namespace, body, dry_run=True)
        except Exception as exc:  # noqa: BLE001 - the apiserver's own validation of the Job
            problems.append(f"hooks: {hook.name}: the apiserver rejects its Job: {exc}")
    if problems:
        raise BadInput(problems)
