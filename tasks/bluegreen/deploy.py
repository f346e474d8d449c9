"""Steps 2-3 and their undo: apply green (server-side apply), wait until it is really ready (fail fast when it
never will be), and take a Deployment out of service safely (never one the Service still selects).
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_greenlight.tasks.bluegreen.preflight import BlueGreenPreflight
from prefect_greenlight.tasks.decisions.undo import may_remove
from prefect_greenlight.tasks.errors import PermanentError
from prefect_greenlight.tasks.kube.client import Kube, apply_deployment, delete_deployment, read, scale
from prefect_greenlight.tasks.kube.waiting import require_ready
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import RollbackGreen


def _retry_transient(task, task_run, state) -> bool:
    """Prefect retry condition: only errors that say they are retryable."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001
        return bool(getattr(exc, "retryable", False))
    return False


def take_out_of_service(kube: Kube, namespace: str, service: str, name: str, how: RollbackGreen | str,
                        replicas: int = 0) -> str:
    """Scale a Deployment to `replicas` or delete it, but only while the Service does not select it."""
    ok, why = may_remove(read(kube, "Service", namespace, service), read(kube, "Deployment", namespace, name))
    if not ok:
        raise PermanentError(why)
    if why == "already gone":
        return f"Deployment {name} already gone"
    if str(getattr(how, "value", how)) == "delete":
        delete_deployment(kube, namespace, name)
        return f"deleted Deployment {name}"
    scale(kube, namespace, name, replicas)
    return f"scaled Deployment {name} to {replicas}"


@task(name="apply-green", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1,
      retry_condition_fn=_retry_transient)
def apply_green(kube: Kube, plan: BlueGreenPreflight) -> str:
    """Server-side apply green beside blue (its undo: `remove_green`)."""
    ns, green = plan.namespace, plan.colors.green
    applied = apply_deployment(kube, ns, plan.green_manifest)
    images = ", ".join(plan.green_images)
    msg = (f"applied Deployment {green} ({applied['spec'].get('replicas')} replicas, {images}) "
           f"beside {plan.colors.blue}")
    say(msg)
    return msg


def remove_green(kube: Kube, plan: BlueGreenPreflight) -> str:
    """Undo of the apply: green back to the replicas it had (it existed before) or removed as `on_failure` says;
    never while the Service selects it."""
    c = plan.colors
    if plan.green_existed:
        return take_out_of_service(kube, plan.namespace, c.service, c.green, RollbackGreen.SCALE_TO_ZERO,
                                   plan.green_replicas_before)
    return take_out_of_service(kube, plan.namespace, c.service, c.green, plan.spec.on_failure)


@task(name="wait-green-ready", cache_policy=NO_CACHE)
def wait_green_ready(kube: Kube, plan: BlueGreenPreflight) -> str:
    """`kubectl rollout status` semantics with an overall deadline and fail-fast on doomed pods."""
    message = require_ready(kube, plan.namespace, plan.colors.green, plan.spec.deadlines,
                            f"green {plan.colors.green}", progress=say)
    say(f"green {plan.colors.green} ready: {message}")
    return message
