"""The rollback window's reads and changes (the decisions: tasks/decisions/window.py).

- `open_window`: the clean-up step of a release with `rollback_window_s`: blue stays scaled and ready (its HPA held
  at its count), the window is recorded on the Service, and a run of the clean-up deployment is scheduled in Prefect
  for the window's end. The release ends there: it never sleeps the window.
- `close_window`: what that scheduled run does (flows/window_cleanup.py): take blue out of service as configured
  once the window has ended — unless the Service was rolled back to it or moved on, then it only forgets the window.
- `close_previous_window`: a new release inside a window first takes the previous warm version out of service
  (Argo Rollouts' behaviour when an update arrives during scaleDownDelaySeconds), or, when it is the very
  Deployment the release re-uses as its green, only forgets the window.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime, timezone

from prefect_greenlight.tasks.bluegreen.autoscaler import retire_autoscaler, settle_autoscaler
from prefect_greenlight.tasks.bluegreen.cleanup import record_manifest
from prefect_greenlight.tasks.bluegreen.deploy import take_out_of_service
from prefect_greenlight.tasks.bluegreen.preflight import BlueGreenPreflight
from prefect_greenlight.tasks.decisions.annotations import read_record
from prefect_greenlight.tasks.decisions.window import (
    RollbackWindow,
    WindowState,
    cleanup_due,
    clear_window_ops,
    format_time,
    read_window,
    set_window_ops,
    window_end,
    window_state,
)
from prefect_greenlight.tasks.errors import GuardFailed, PermanentError
from prefect_greenlight.tasks.kube.autoscaling import hold, release_hold
from prefect_greenlight.tasks.kube.client import Kube, json_patch, read
from prefect_greenlight.tasks.prefect_adapter.scheduling import schedule_run, window_cleanup_deployment
from prefect_greenlight.tasks.record.report import say

EARLY_S = 120  # a clean-up run started at most this early (a worker's prefetch) waits for the window's end


def _selector_test(selector: dict) -> list[dict]:
    return [{"op": "test", "path": f"/spec/selector/{k.replace('~', '~0').replace('/', '~1')}", "value": v}
            for k, v in sorted(selector.items())]


def _record_window(kube: Kube, namespace: str, service: str, window: RollbackWindow, live_selector: dict) -> None:
    """The window on the Service, guarded on the Service still selecting the release's green."""
    svc = read(kube, "Service", namespace, service)
    if svc is None:
        raise PermanentError(f"Service {namespace}/{service} disappeared")
    json_patch(kube, "Service", namespace, service, _selector_test(live_selector) + set_window_ops(svc, window))


def open_window(kube: Kube, plan: BlueGreenPreflight, connection: dict, now: datetime | None = None,
                schedule: Callable[..., str] = schedule_run) -> str:
    """Keep blue warm until the window's end and schedule its clean-up then (a Prefect flow run)."""
    c, spec, ns = plan.colors, plan.spec, plan.namespace
    settle_autoscaler(kube, ns, c.green)  # green serves: its HPA gets its own minReplicas back
    held = hold(kube, ns, c.blue, plan.blue_replicas)
    until = window_end(now or datetime.now(timezone.utc), spec.rollback_window_s)
    window = RollbackWindow(plan.release_id, c.blue, c.green, format_time(until), spec.cleanup.mode.value,
                            plan.blue_replicas)
    _record_window(kube, ns, c.service, window, c.green_selector)  # first: a scheduled run always finds it
    params = {"namespace": ns, "service": c.service, "release_id": plan.release_id,
              **{k: v for k, v in connection.items() if v}}
    run_id = schedule(window_cleanup_deployment(), params, until, f"window-cleanup-{c.service}-{plan.release_id}")
    _record_window(kube, ns, c.service, dataclasses.replace(window, cleanup_run=run_id), c.green_selector)
    msg = (f"rollback window: {c.blue} kept warm ({plan.blue_replicas} replicas, no traffic) until {window.until} "
           f"({spec.rollback_window_s:.0f} s); then {spec.cleanup.mode.value} by flow run {run_id}, scheduled for "
           "then")
    say(f"{held}; {msg}" if held else msg)
    return msg


def _forget(kube: Kube, namespace: str, service: str, release_id: str) -> None:
    svc = read(kube, "Service", namespace, service)
    ops = clear_window_ops(svc, release_id) if svc else []
    if ops:
        try:
            json_patch(kube, "Service", namespace, service, ops)
        except GuardFailed:
            pass  # a newer window replaced it meanwhile: that one stays


def _retire(kube: Kube, svc: dict, window: RollbackWindow) -> str:
    """The warm Deployment out of service as the window's mode says (never while the Service selects it)."""
    ns, service = svc["metadata"]["namespace"], svc["metadata"]["name"]
    if read(kube, "Deployment", ns, window.warm) is None:
        return f"{window.warm} already gone"
    release_hold(kube, ns, window.warm)  # recorded and re-created by a rollback with its own minReplicas
    if window.mode == "delete":
        record_manifest(kube, ns, service, svc["spec"].get("selector") or {}, read(kube, "Deployment", ns,
                                                                                   window.warm))
    retired = retire_autoscaler(kube, ns, service, window.warm)
    msg = take_out_of_service(kube, ns, service, window.warm, window.mode, 0)
    return f"{retired}; {msg}" if retired else msg


def close_window(kube: Kube, namespace: str, service: str, release_id: str, force: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> str:
    """The scheduled clean-up at the window's end (or `force`: a new release closes it early)."""
    svc = read(kube, "Service", namespace, service)
    window = read_window(svc)
    if svc is None or window is None or window.release_id != release_id:
        return f"no rollback window of release {release_id} on Service {namespace}/{service}: nothing to do"
    verdict = window_state(window, read_record(svc), datetime.now(timezone.utc))
    left = (window.ends() - datetime.now(timezone.utc)).total_seconds()
    if verdict.open and not force and left <= EARLY_S:
        say(f"started {left:.1f} s before the window's end: waiting for it")
        sleep(max(0.0, left))
        return close_window(kube, namespace, service, release_id, force, sleep)
    if not cleanup_due(verdict, force):
        if verdict.open:
            return f"not taken out of service: {verdict.reason}"
        if verdict.state is WindowState.ROLLED_BACK:
            release_hold(kube, namespace, window.warm)  # it serves again: its HPA scales it freely
        _forget(kube, namespace, service, release_id)
        return f"nothing taken out of service: {verdict.reason}"
    msg = _retire(kube, svc, window)
    _forget(kube, namespace, service, release_id)
    return f"rollback window of release {release_id} closed: {msg}"


def close_previous_window(kube: Kube, plan: BlueGreenPreflight) -> str:
    """A release inside the previous release's window: that warm version leaves first (as configured), or, when
    this release re-uses it as green, the window is only forgotten (its scheduled run then does nothing)."""
    window = plan.previous_window
    if window is None:
        return "no rollback window open"
    ns, service = plan.namespace, plan.colors.service
    if window.warm == plan.colors.green:
        _forget(kube, ns, service, window.release_id)
        msg = (f"rollback window of release {window.release_id} closed: {window.warm} becomes this release's green")
    else:
        msg = close_window(kube, ns, service, window.release_id, force=True)
    say(msg)
    return msg
