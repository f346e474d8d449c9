"""Steps 4 and 8: smoke-test green's pods before any traffic moves, and keep checking the pods behind the Service
for a while after the switch. Both go through port-forward to individual pods, so they never hit blue by
accident and never wait for a load balancer.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.endpoints import EndpointCounts, deployment_by_rs_name, deployment_of_pods, endpoint_targets, tally
from tasks.errors import PermanentError
from tasks.kube import Kube, RetryPolicy, list_objects
from tasks.preflight import ReleasePlan
from tasks.report import artifact_key, say, table_artifact
from tasks.rollout import new_replicaset, owned_by
from tasks.smoke import SmokeResult, check_pod, summarize

MAX_PARALLEL = 8
REPORT_RETRY = RetryPolicy(budget_s=5)  # reports must not hold a failing release up for long


def ready_pods_of(kube: Kube, namespace: str, deployment_name: str) -> list[dict]:
    """Ready, not terminating pods of the Deployment's current ReplicaSet (by ownership), sorted by name."""
    deployments = [d for d in list_objects(kube, "Deployment", namespace) if d["metadata"]["name"] == deployment_name]
    if not deployments:
        return []
    rs = new_replicaset(deployments[0], list_objects(kube, "ReplicaSet", namespace))
    if rs is None:
        return []
    pods = [p for p in list_objects(kube, "Pod", namespace) if owned_by(p, rs)
            and not p["metadata"].get("deletionTimestamp")
            and any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in p.get("status", {}).get("conditions") or [])]
    return sorted(pods, key=lambda p: p["metadata"]["name"])


def run_checks(kube: Kube, pods: list[dict], plan: ReleasePlan) -> list[SmokeResult]:
    jobs = [(pod, check) for check in plan.spec.smoke for pod in pods[: check.pods or len(pods)]]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, max(1, len(jobs)))) as pool:
        return list(pool.map(lambda job: check_pod(kube, job[0], job[1]), jobs))


@task(name="smoke-test", cache_policy=NO_CACHE)
def smoke_test(kube: Kube, plan: ReleasePlan) -> list[dict]:
    """Check every (or the configured number of) green pod through port-forward; fail on any failed check."""
    if not plan.spec.smoke:
        say("no smoke checks configured")
        return []
    pods = ready_pods_of(kube, plan.namespace, plan.colors.green)
    if not pods:
        raise PermanentError(f"no ready pods of {plan.colors.green} to smoke-test")
    results = run_checks(kube, pods, plan)
    rows = [r.row() for r in results]
    table_artifact(artifact_key("smoke", plan.colors.service, plan.release_id), rows,
                   f"Smoke checks of {plan.colors.green} before the switch")
    message = summarize(results)
    if not all(r.ok for r in results):
        raise PermanentError(f"smoke test of {plan.colors.green}: {message}")
    say(f"smoke test of {plan.colors.green}: {message}")
    return rows


def serving_pods(kube: Kube, namespace: str, service: str) -> tuple[list[dict], dict[str, str]]:
    """Pods behind the Service's ready endpoints, and each one's owning Deployment."""
    slices = list_objects(kube, "EndpointSlice", namespace, f"kubernetes.io/service-name={service}")
    ready = {uid for uid, ok in endpoint_targets(slices).items() if ok}
    pods = [p for p in list_objects(kube, "Pod", namespace) if p["metadata"]["uid"] in ready]
    owners = deployment_of_pods(pods, list_objects(kube, "ReplicaSet", namespace),
                                list_objects(kube, "Deployment", namespace))
    return pods, owners


def endpoint_counts(kube: Kube, namespace: str, service: str) -> EndpointCounts | None:
    """The Service's endpoints per owning Deployment right now, for reports (None if they cannot be read). Two
    requests: the slices and the pods; a pod's Deployment is its ReplicaSet's name less the pod-template-hash
    (the Deployment controller's naming), which is exact for reporting without listing ReplicaSets and
    Deployments too."""
    try:
        slices = list_objects(kube, "EndpointSlice", namespace, f"kubernetes.io/service-name={service}",
                              policy=REPORT_RETRY)
        return tally(slices, deployment_by_rs_name(list_objects(kube, "Pod", namespace, policy=REPORT_RETRY)))
    except Exception:  # noqa: BLE001 - a report must not fail the release
        return None


@task(name="post-switch-verification", cache_policy=NO_CACHE)
def post_switch_verify(kube: Kube, plan: ReleasePlan) -> str:
    """Repeated smoke checks of the pods the Service really sends traffic to, for `post_switch.window_s`."""
    window = plan.spec.post_switch.window_s
    if window <= 0:
        return "no post-switch window"
    deadline = time.monotonic() + window
    rounds = 0
    while True:
        pods, owners = serving_pods(kube, plan.namespace, plan.colors.service)
        strays = sorted({owners.get(p["metadata"]["uid"], "?") for p in pods} - {plan.colors.green})
        if strays:
            raise PermanentError(f"Service {plan.colors.service} sends traffic to pods of {', '.join(strays)}")
        if not pods:
            raise PermanentError(f"Service {plan.colors.service} has no ready endpoints")
        results = run_checks(kube, pods, plan)
        rounds += 1
        if not all(r.ok for r in results):
            raise PermanentError(f"post-switch check round {rounds}: {summarize(results)}")
        say(f"post-switch round {rounds}: {summarize(results)}")
        if time.monotonic() + plan.spec.post_switch.interval_s > deadline:
            break
        time.sleep(plan.spec.post_switch.interval_s)
    return f"{rounds} rounds over {window:.0f} s passed"
