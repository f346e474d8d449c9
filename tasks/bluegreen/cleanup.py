"""Step 9, cleanup: after the scale-down delay (open connections drain; kube-proxy catches up), take blue out of
service — scale to 0 (default: instant rollback stays possible), delete, or keep. Blue is never touched while
the Service still selects it. Before a delete, blue's manifest is recorded on the Service so `greenlight
rollback` can recreate it.
"""

from __future__ import annotations

import json
import time

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_greenlight.tasks.bluegreen.autoscaler import retire_autoscaler, settle_autoscaler
from prefect_greenlight.tasks.bluegreen.deploy import take_out_of_service
from prefect_greenlight.tasks.bluegreen.preflight import BlueGreenPreflight
from prefect_greenlight.tasks.decisions.annotations import PREVIOUS_MANIFEST
from prefect_greenlight.tasks.kube.client import Kube, json_patch, read
from prefect_greenlight.tasks.record.report import say
from prefect_greenlight.tasks.spec import CleanupMode

_DROP_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink")


def portable_manifest(deployment: dict) -> dict:
    """What is needed to recreate a Deployment: no status, no server-set metadata."""
    meta = {k: v for k, v in deployment["metadata"].items() if k not in _DROP_META}
    ann = {k: v for k, v in (meta.get("annotations") or {}).items()
           if k not in ("deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration")}
    meta["annotations"] = ann
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": deployment["spec"]}


def record_manifest(kube: Kube, namespace: str, service: str, live_selector: dict[str, str], deployment: dict) -> None:
    """Store a Deployment's manifest on the Service, guarded on the selector still being `live_selector`."""
    svc = read(kube, "Service", namespace, service) or {}
    ops = [{"op": "test", "path": f"/spec/selector/{k.replace('~', '~0').replace('/', '~1')}", "value": v}
           for k, v in sorted(live_selector.items())]
    value = json.dumps(portable_manifest(deployment), sort_keys=True, separators=(",", ":"))
    if svc.get("metadata", {}).get("annotations"):
        ops.append({"op": "add", "path": f"/metadata/annotations/{PREVIOUS_MANIFEST.replace('/', '~1')}",
                    "value": value})
    else:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {PREVIOUS_MANIFEST: value}})
    json_patch(kube, "Service", namespace, service, ops)


@task(name="cleanup-blue", cache_policy=NO_CACHE)
def cleanup_blue(kube: Kube, plan: BlueGreenPreflight, sleep=time.sleep) -> str:
    mode, delay = plan.spec.cleanup.mode, plan.spec.cleanup.delay_s
    blue, ns, service = plan.colors.blue, plan.namespace, plan.colors.service
    if mode is CleanupMode.KEEP or not blue:
        settle_autoscaler(kube, ns, plan.colors.green)  # green serves; the HPA's own stabilization takes over
        return f"kept {blue or 'blue'} as it is"
    if delay > 0:
        say(f"waiting {delay:.0f} s (scale-down delay) before taking {blue} out of service")
        sleep(delay)
    current = read(kube, "Deployment", ns, blue)
    if current is None:
        settle_autoscaler(kube, ns, plan.colors.green)
        return f"{blue} already gone"
    if mode is CleanupMode.DELETE:
        record_manifest(kube, ns, service, plan.colors.green_selector, current)
    retired = retire_autoscaler(kube, ns, service, blue)
    msg = take_out_of_service(kube, ns, service, blue, mode.value, 0)
    settle_autoscaler(kube, ns, plan.colors.green)
    msg = f"{retired}; {msg}" if retired else msg
    say(msg)
    return msg
