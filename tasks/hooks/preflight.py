"""Preflight for hooks, before anything changes: the apiserver validates each hook's Job as greenlight would
create it (a server-side dry run: schema, admission, the owner reference), and every Prefect Secret block a
webhook's `secret_headers` name is loaded (present, a usable header value), so a broken Job manifest or a missing
Secret is bad input (exit 2, nothing changed) rather than a failure in the middle of the release. The Secrets'
values are dropped here: the hook loads them again when it is called."""

from __future__ import annotations

from prefect_greenlight.tasks.decisions.hooks import HookContext, hook_key, job_body, job_name
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.kube.client import Kube
from prefect_greenlight.tasks.kube.jobs import create_job
from prefect_greenlight.tasks.prefect_adapter.secrets import SecretLoader, load_secret, secret_headers
from prefect_greenlight.tasks.spec import Hook


def hook_secret_problems(hooks: list[Hook], load: SecretLoader = load_secret) -> list[str]:
    """Each webhook hook's Secret blocks that are missing or unusable, named with the hook and header."""
    problems = []
    for hook in (h for h in hooks if h.webhook is not None and h.webhook.secret_headers):
        try:
            secret_headers(hook.webhook.secret_headers, load)  # type: ignore[union-attr]
        except BadInput as exc:
            problems += [f"hooks: {hook.name}: {p}" for p in exc.problems]
    return problems


def check_hook_jobs(kube: Kube, hooks: list[Hook], ctx: HookContext, service: dict) -> None:
    """The Jobs by a server-side dry run and the webhooks' Secret blocks; BadInput naming every problem."""
    problems = hook_secret_problems(hooks)
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
