"""Step 5b (before the switch) and part of step 9: the HorizontalPodAutoscaler follows the live Deployment
(tasks/decisions/autoscaling.py says how and why). Green gets blue's HPA before the switch, its minReplicas held
at blue's count; once blue is out of service its HPA is recorded on the Service and deleted, and the hold on
green's is released.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_greenlight.tasks.bluegreen.preflight import BlueGreenPreflight
from prefect_greenlight.tasks.kube.autoscaling import carry_over, delete_hpa, hpa_of, record_and_delete, release_hold
from prefect_greenlight.tasks.kube.client import Kube
from prefect_greenlight.tasks.record.report import say


@task(name="carry-autoscaler", cache_policy=NO_CACHE)
def carry_autoscaler(kube: Kube, plan: BlueGreenPreflight) -> str:
    """Give green an HPA like blue's (idempotent: server-side apply); its undo: `remove_green_autoscaler`."""
    green = plan.colors.green
    msg = carry_over(kube, plan.namespace, plan.blue_hpa, green, plan.release_id, plan.blue_replicas)
    say(msg)
    return msg


def remove_green_autoscaler(kube: Kube, plan: BlueGreenPreflight) -> str:
    return "deleted" if delete_hpa(kube, plan.namespace, plan.colors.green) else "already gone"


def retire_autoscaler(kube: Kube, namespace: str, service: str, old: str) -> str | None:
    """Before `old` is scaled to 0 or deleted: record its HPA on the Service and delete it."""
    hpa = hpa_of(kube, namespace, old)
    return record_and_delete(kube, namespace, service, hpa) if hpa else None


def settle_autoscaler(kube: Kube, namespace: str, live: str) -> str | None:
    """After the old version is out of service: the live Deployment's HPA gets its own minReplicas back."""
    msg = release_hold(kube, namespace, live)
    if msg:
        say(msg)
    return msg
