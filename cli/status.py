"""`greenlight status`: what the Service serves now, read from the cluster alone (selector, release record,
Deployments' readiness, EndpointSlices, the release lock)."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime, timezone

from prefect_greenlight.tasks.canary.steps import read_progress
from prefect_greenlight.tasks.decisions.annotations import read_record
from prefect_greenlight.tasks.decisions.colors import pod_labels, selector_matches
from prefect_greenlight.tasks.decisions.endpoints import deployment_of_pods, tally
from prefect_greenlight.tasks.decisions.history import read_history
from prefect_greenlight.tasks.decisions.lease import decide
from prefect_greenlight.tasks.decisions.window import WindowState, WindowVerdict, read_window, window_state
from prefect_greenlight.tasks.decisions.workload import selector_query
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.kube.client import Kube, list_objects, read


def service_status(kube: Kube, namespace: str, service: str) -> dict:
    svc = read(kube, "Service", namespace, service)
    if svc is None:
        raise BadInput(f"Service {service!r} not found in namespace {namespace!r}")
    selector = svc.get("spec", {}).get("selector") or {}
    record = read_record(svc)
    deployments = list_objects(kube, "Deployment", namespace)
    canary = read_progress(svc)
    window = window_state(read_window(svc), record, datetime.now(timezone.utc))
    names = {record.live_deployment, record.previous_deployment, canary.get("stable", ""),
             canary.get("deployment", "")} - {""}
    rows = []
    for d in deployments:
        selected = selector_matches(selector, pod_labels(d))
        if selected or d["metadata"]["name"] in names:
            rows.append({"name": d["metadata"]["name"], "selected": selected,
                         "replicas": int(d["spec"].get("replicas", 0)),
                         "ready": int((d.get("status") or {}).get("readyReplicas") or 0),
                         "image": d["spec"]["template"]["spec"]["containers"][0].get("image", "")})
    slices = list_objects(kube, "EndpointSlice", namespace, f"kubernetes.io/service-name={service}")
    scope = selector_query({"matchLabels": selector} if selector else None)
    owners = deployment_of_pods(list_objects(kube, "Pod", namespace, scope),
                                list_objects(kube, "ReplicaSet", namespace, scope), deployments)
    lease = read(kube, "Lease", namespace, f"greenlight-{service}")
    lock = decide(lease, "", time.time()) if lease else None
    return {
        "service": service, "namespace": namespace, "selector": selector,
        "live_deployment": next((r["name"] for r in rows if r["selected"]), ""),
        "recorded_live": record.live_deployment, "previous_deployment": record.previous_deployment,
        "live_color": record.live_color, "release_id": record.release_id, "switched_at": record.switched_at,
        "deployments": sorted(rows, key=lambda r: not r["selected"]),
        "endpoints": tally(slices, owners).describe(),
        "canary": canary,
        "rollback_window": window_row(window),
        "lock": (f"held by {lock.holder} (expires in {lock.expires_in_s:.0f} s)"
                 if lock and lock.action.value == "held" else ""),
    }


def window_row(verdict: WindowVerdict) -> dict:
    """The rollback window for `greenlight status --json` ({} without one)."""
    w = verdict.window
    if w is None:
        return {}
    return {"state": verdict.state.value, "until": w.until, "warm": w.warm, "release_id": w.release_id,
            "cleanup": w.mode, "cleanup_run": w.cleanup_run, "reason": verdict.reason}


def window_line(window: dict) -> str:
    """One line for `greenlight status`: until when the previous version is kept warm."""
    if not window:
        return ""
    if window["state"] == WindowState.OPEN.value:
        return (f"  rollback window: open until {window['until']}: {window['warm']} kept warm, `greenlight "
                f"rollback` is a selector switch only; then {window['cleanup']} by flow run "
                f"{window['cleanup_run'] or '(not scheduled)'}")
    return f"  rollback window of release {window['release_id']}: {window['state']}: {window['reason']}"


def canary_line(canary: dict) -> str:
    """One line for `greenlight status`: the recorded canary ratio and step, or "" without a canary record."""
    if not canary.get("deployment"):
        return ""
    return (f"  canary: {canary.get('deployment')} {canary.get('percent', '?')} % "
            f"(canary/stable pods {canary.get('weight', '?')} of {canary.get('total', '?')}), "
            f"step {canary.get('step', '?')}, {canary.get('state', '?')}, stable {canary.get('stable')}, "
            f"release {canary.get('release-id', '-')} at {canary.get('updated-at', '-')}")


def release_history(kube: Kube, namespace: str, service: str) -> list[dict]:
    """The Service's release history (oldest first), from its `greenlight.io/history` annotation."""

    svc = read(kube, "Service", namespace, service)
    if svc is None:
        raise BadInput(f"Service {service!r} not found in namespace {namespace!r}")
    return [asdict(e) for e in read_history(svc)]


def print_status(status: dict) -> None:
    """`greenlight status` as text."""
    print(f"Service {status['service']} ({status['namespace']}): selector {status['selector']}")
    print(f"  live: {status['live_deployment'] or '?'}  previous: {status['previous_deployment'] or '-'}  "
          f"release: {status['release_id'] or '-'} at {status['switched_at'] or '-'}")
    for d in status["deployments"]:
        print(f"  {d['name']:<24} {d['ready']}/{d['replicas']} ready  {d['image']}"
              f"{'  <- live' if d['selected'] else ''}")
    print(f"  endpoints: {status['endpoints']}")
    if canary_line(status.get("canary") or {}):
        print(canary_line(status["canary"]))
    if window_line(status.get("rollback_window") or {}):
        print(window_line(status["rollback_window"]))
    if status["lock"]:
        print(f"  release in progress: {status['lock']}")


def print_history(entries: list[dict], service: str) -> None:
    """`greenlight history` as text, newest first."""
    if not entries:
        print(f"Service {service}: no releases recorded by greenlight")
    for e in reversed(entries):
        print(f"{e['finished_at'] or '?':<21} {e['strategy']:<10} {e['outcome']:<19} {e['from_deployment']} -> "
              f"{e['to_deployment']}  {', '.join(e['images'])}  {e['seconds']:.1f} s  release {e['release_id']}"
              f"  run {e['flow_run_name'] or '-'} {e['flow_run_id'] or ''}".rstrip())
        for label, key in (("approval", "approval"), ("reason", "reason"), ("asked by", "asked_by"),
                           ("override", "override")):
            if e.get(key):
                print(f"{'':<21} {label}: {e[key]}")
        if e.get("pipeline_id"):
            print(f"{'':<21} pipeline: {e['pipeline_id']} stage {e['pipeline_stage']} target {e['pipeline_target']}")
