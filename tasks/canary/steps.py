"""The steps of a canary release as thin Prefect tasks: apply the canary, scale one Deployment and wait until it
is really there (ready, or gone), verify the Service's EndpointSlices hold exactly the planned split (pods
attributed by owner references), a whole traffic step (`move_traffic`), record progress on the Service, and the
abort: stable back to its full count and READY first, only then the canary to 0, verified by EndpointSlices.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_greenlight.tasks.decisions.canary import SplitVerdict, StepCounts, moves, split_verdict
from prefect_greenlight.tasks.decisions.canary_progress import move_order
from prefect_greenlight.tasks.errors import PermanentError
from prefect_greenlight.tasks.kube.client import (
    Kube,
    apply_deployment,
    delete_deployment,
    raw_patch,
    read,
    retrying,
    scale,
)
from prefect_greenlight.tasks.kube.waiting import endpoints_now, require_ready, wait_endpoints
from prefect_greenlight.tasks.kube.watching import Watcher
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import Deadlines
from prefect_greenlight.tasks.spec.canary import TRACK_LABEL, baseline_name

PREFIX = "greenlight.io/canary-"
KEYS = ("stable", "deployment", "total", "steps", "step", "percent", "weight", "state", "release-id", "run-id",
        "updated-at", "route")  # steps: the percentages, e.g. "10,30,50,100" (a re-run resumes only the same ones)
# route: `traffic: gateway` only, "<HTTPRoute>/<rule>/<canary Service>" (`greenlight abort` routes back first)


def progress_annotations(**fields: object) -> dict[str, str | None]:
    """`greenlight.io/canary-<key>` annotations (None removes one). Keys: see KEYS."""
    unknown = set(fields) - {k.replace("-", "_") for k in KEYS}
    if unknown:
        raise ValueError(f"unknown canary annotation(s) {sorted(unknown)}")
    out: dict[str, str | None] = {PREFIX + k.replace("_", "-"): None if v is None else str(v)
                                  for k, v in fields.items()}
    out[PREFIX + "updated-at"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def read_progress(service: dict | None) -> dict[str, str]:
    ann = ((service or {}).get("metadata") or {}).get("annotations") or {}
    return {k[len(PREFIX):]: v for k, v in ann.items() if k.startswith(PREFIX)}


def record_progress(kube: Kube, namespace: str, service: str, **fields: object) -> None:
    """Merge-patch the progress annotations onto the Service (idempotent, so retried)."""
    body = {"metadata": {"annotations": progress_annotations(**fields)}}
    retrying(f"annotate Service {namespace}/{service}", lambda: raw_patch(
        kube, "Service", namespace, service, body, "application/merge-patch+json"))


def wait_scaled_to_zero(kube: Kube, namespace: str, name: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        d = read(kube, "Deployment", namespace, name)
        if d is None:
            return f"{name} is gone"
        st = d.get("status") or {}
        if int(st.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0) \
                and not int(st.get("replicas") or 0):
            return f"{name} has 0 pods"
        if time.monotonic() > deadline:
            raise PermanentError(f"{name} still has {st.get('replicas')} pods {timeout_s:.0f} s after scaling to 0")
        time.sleep(0.2)


def scale_and_wait(kube: Kube, namespace: str, name: str, replicas: int, deadlines: Deadlines) -> str:
    """Scale and block until the Deployment has `replicas` available pods (fail fast when they never will be)
    or, for 0, no pods at all."""
    scale(kube, namespace, name, replicas)
    if replicas == 0:
        return wait_scaled_to_zero(kube, namespace, name, deadlines.ready_s)
    return f"{name}: " + require_ready(kube, namespace, name, deadlines, f"{name} at {replicas} replicas", say)


@task(name="apply-canary", cache_policy=NO_CACHE)
def apply_canary(kube: Kube, namespace: str, manifest: dict, deadlines: Deadlines) -> str:
    """Server-side apply the canary (replicas = the first step's count) and wait until it is ready."""
    applied = apply_deployment(kube, namespace, manifest)
    name = applied["metadata"]["name"]
    say(f"applied canary Deployment {name} ({applied['spec'].get('replicas')} replicas)")
    return f"{name}: " + require_ready(kube, namespace, name, deadlines, f"canary {name}", say)


@task(name="scale", cache_policy=NO_CACHE)
def scale_step(kube: Kube, namespace: str, name: str, replicas: int, deadlines: Deadlines) -> str:
    return scale_and_wait(kube, namespace, name, replicas, deadlines)


@task(name="apply-baseline", cache_policy=NO_CACHE)
def apply_baseline(kube: Kube, namespace: str, manifest: dict, replicas: int, deadlines: Deadlines) -> str:
    """Server-side apply the baseline (stable's pod template) at `replicas` and wait until it is ready: the same
    name every time, so a re-run after a kill finds and keeps the one baseline."""
    body = {**manifest, "spec": {**manifest["spec"], "replicas": replicas}}
    name = apply_deployment(kube, namespace, body)["metadata"]["name"]
    say(f"applied baseline Deployment {name} ({replicas} replicas)")
    if replicas == 0:
        return wait_scaled_to_zero(kube, namespace, name, deadlines.ready_s)
    return f"{name}: " + require_ready(kube, namespace, name, deadlines, f"baseline {name}", say)


def remove_baseline(kube: Kube, namespace: str, stable: str) -> str:
    """Delete the baseline of `stable`'s canary, if there is one (only a Deployment greenlight labelled as one)."""
    name = baseline_name(stable)
    found = read(kube, "Deployment", namespace, name)
    if found is None:
        return "no baseline"
    if ((found.get("metadata") or {}).get("labels") or {}).get(TRACK_LABEL) != "baseline":
        raise PermanentError(f"Deployment {name} is not labelled {TRACK_LABEL}=baseline; refusing to delete it")
    delete_deployment(kube, namespace, name)
    return f"deleted baseline Deployment {name}"


@task(name="verify-split", cache_policy=NO_CACHE)
def verify_split(kube: Kube, namespace: str, service: str, canary: str, stable: str, want: StepCounts,
                 timeout_s: float, baseline: str | None = None) -> SplitVerdict:
    """Wait (watch-based) until the Service's ready endpoints are exactly the planned split; fail otherwise."""
    last: list[SplitVerdict] = []
    with Watcher() as w:
        counts = endpoints_now(kube, w, namespace, service)

        def decide() -> SplitVerdict | None:
            verdict = split_verdict(counts(), canary, stable, want, baseline)
            last[:] = [verdict]
            return verdict if verdict.ok else None

        result = w.wait_for(decide, timeout_s)
        health = w.health()
    if result is None:
        seen = (last[0].message if last else "no EndpointSlices observed") + (f"; {health}" if health else "")
        raise PermanentError(f"Service {service} not at {want.describe()} within {timeout_s:.0f} s: {seen}")
    say(f"Service {service} at {want.describe()}: {result.message}")
    return result


def move_traffic(kube: Kube, namespace: str, service: str, stable: str, manifest: dict, current: StepCounts,
                 want: StepCounts, first: bool, deadlines: Deadlines,
                 baseline_manifest: dict | None = None) -> SplitVerdict:
    """One step: from `current` to `want`, a raise before a lower (capacity never drops below the total), then
    the Service's EndpointSlices verified at the split. The first step always applies the canary's manifest (with
    that step's replicas: scaled up and ready in one go)."""
    canary = manifest["metadata"]["name"]
    if baseline_manifest is not None:
        return _move_with_baseline(kube, namespace, service, stable, manifest, baseline_manifest, current, want,
                                   first, deadlines)
    order = move_order(current.canary, current.stable, want.canary, want.stable)
    if first and "canary" not in order:
        order = ("stable", "canary") if want.stable > current.stable else ("canary", *order)
    for which in order:
        if which == "stable":
            scale_step(kube, namespace, stable, want.stable, deadlines)
        elif first:
            apply_canary(kube, namespace, manifest, deadlines)
        else:
            scale_step(kube, namespace, canary, want.canary, deadlines)
    return verify_split(kube, namespace, service, canary, stable, want, deadlines.endpoints_s)


def _move_with_baseline(kube: Kube, namespace: str, service: str, stable: str, manifest: dict, baseline: dict,
                        current: StepCounts, want: StepCounts, first: bool, deadlines: Deadlines) -> SplitVerdict:
    """A step with a baseline: every raise before any lower (tasks/decisions/canary.py: moves); the canary's
    manifest applied at the first step, the baseline's whenever it rises (created on the first)."""
    canary, order = manifest["metadata"]["name"], moves(current, want)
    if first and not any(which == "canary" for which, _ in order):
        order = (("canary", want.canary), *order)
    for which, replicas in order:
        if which == "stable":
            scale_step(kube, namespace, stable, replicas, deadlines)
        elif which == "baseline":
            apply_baseline(kube, namespace, baseline, replicas, deadlines)
        elif first:
            apply_canary(kube, namespace, manifest, deadlines)
        else:
            scale_step(kube, namespace, canary, replicas, deadlines)
    return verify_split(kube, namespace, service, canary, stable, want, deadlines.endpoints_s,
                        baseline["metadata"]["name"])


def restore_stable(kube: Kube, namespace: str, service: str, stable: str, canary: str, total: int,
                   deadlines: Deadlines) -> str:
    """The abort: stable to `total` and READY first, then the canary to 0 and the baseline (if any) deleted, then
    EndpointSlices must list only stable's pods, `total` of them ready. Never the other order (outages when stable
    is not ready while the canary is already gone)."""
    if read(kube, "Deployment", namespace, stable) is None:
        raise PermanentError(f"stable Deployment {stable} no longer exists; refusing to scale the canary down")
    first = scale_and_wait(kube, namespace, stable, total, deadlines)
    say(f"abort: stable {first}")
    second = "no canary" if read(kube, "Deployment", namespace, canary) is None else \
        scale_and_wait(kube, namespace, canary, 0, deadlines)
    say(f"abort: canary {second}")
    third = remove_baseline(kube, namespace, stable)
    say(f"abort: {third}")
    verdict = wait_endpoints(kube, namespace, service, stable, total, deadlines.endpoints_s, progress=say)
    if not verdict.ok:
        raise PermanentError(f"after the abort: {verdict.message}")
    gone = "" if third == "no baseline" else f", {third}"
    return f"{stable} back to {total} ready pods, {canary} at 0{gone}: {verdict.message}"


def remove_old_stable(kube: Kube, namespace: str, stable: str, how: str) -> str:
    """At 100 %: stable is already at 0 (verified by EndpointSlices); delete it or leave it at 0."""
    if how == "delete":
        return f"deleted Deployment {stable}" if delete_deployment(kube, namespace, stable) else f"{stable} gone"
    return f"kept Deployment {stable} at 0 replicas"
