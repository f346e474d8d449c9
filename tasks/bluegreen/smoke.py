"""Steps 4 and 8: smoke-test green's pods before any traffic moves, and keep checking the pods behind the Service
for a while after the switch. Both go through port-forward to individual pods, so they never hit blue by
accident and never wait for a load balancer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests
from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_greenlight.tasks.bluegreen.preflight import BlueGreenPreflight
from prefect_greenlight.tasks.decisions.smoke import SmokeFailure, SmokeResult, container_port, judge, summarize
from prefect_greenlight.tasks.errors import PermanentError
from prefect_greenlight.tasks.kube.client import Kube
from prefect_greenlight.tasks.kube.observe import ready_pods_of, serving_pods
from prefect_greenlight.tasks.kube.portforward import Target, Tunnel
from prefect_greenlight.tasks.record.report import artifact_key, say, table_artifact
from prefect_greenlight.tasks.spec import SmokeCheck

MAX_PARALLEL = 8


def check_pod(kube: Kube, pod: dict, check: SmokeCheck, service_ports: tuple[dict, ...] = (),
              sleep: Callable[[float], None] = time.sleep) -> SmokeResult:
    """Try `check.attempts` times; the pod passes on the first passing answer. The port is the Service port's
    targetPort as this pod declares it, unless the check names one."""
    name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
    port = container_port(pod, check, service_ports)
    if port is None:
        return SmokeResult(name, check.path, False, 0, failure=SmokeFailure.UNREACHABLE,
                           detail=f"pod declares no port named {check.port or check.service_port!r}")
    target = Target(ns, name, port)
    failure, detail, status, latency = SmokeFailure.UNREACHABLE, "", None, None
    with Tunnel(kube, target) as tunnel, requests.Session() as session:
        for attempt in range(1, check.attempts + 1):
            body, error = "", ""
            started = time.perf_counter()
            try:
                resp = session.get(tunnel.url(check.path), timeout=check.timeout_s,
                                   headers={"Connection": "close"})
                status, body = resp.status_code, resp.text
            except requests.RequestException as exc:
                status, error = None, "; ".join(tunnel.errors[-1:]) or type(exc).__name__
            latency = (time.perf_counter() - started) * 1000
            failure, detail = judge(check, status, body, latency if status is not None else None, error)
            if failure is None:
                return SmokeResult(name, check.path, True, attempt, status, latency, None, detail)
            if attempt < check.attempts:
                sleep(check.interval_s)
    return SmokeResult(name, check.path, False, check.attempts, status, latency, failure, detail)


def run_checks(kube: Kube, pods: list[dict], plan: BlueGreenPreflight) -> list[SmokeResult]:
    jobs = [(pod, check) for check in plan.spec.smoke for pod in pods[: check.pods or len(pods)]]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, max(1, len(jobs)))) as pool:
        return list(pool.map(lambda job: check_pod(kube, job[0], job[1], plan.service_ports), jobs))


@task(name="smoke-test", cache_policy=NO_CACHE)
def smoke_test(kube: Kube, plan: BlueGreenPreflight) -> list[dict]:
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


@task(name="post-switch-verification", cache_policy=NO_CACHE)
def post_switch_verify(kube: Kube, plan: BlueGreenPreflight) -> str:
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
