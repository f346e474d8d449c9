"""Step 1, preflight: read the Service and the Deployments, decide blue and green, and refuse — before anything
changes — when the spec or the cluster state it names is wrong. The result is the release plan every later
step works from.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from prefect_greenlight.tasks.bluegreen.gateway import route_preflight
from prefect_greenlight.tasks.decisions.annotations import read_record
from prefect_greenlight.tasks.decisions.autoscaling import autoscalers_of, hpa_problems
from prefect_greenlight.tasks.decisions.colors import (
    ColorPlan,
    check_manifest,
    derive_green,
    plan_colors,
    pod_labels,
    set_image,
)
from prefect_greenlight.tasks.decisions.gateway_switch import RouteSwitch
from prefect_greenlight.tasks.decisions.history import read_history
from prefect_greenlight.tasks.decisions.hooks import HookContext, released_image
from prefect_greenlight.tasks.decisions.plan import FieldChange, deployment_changes
from prefect_greenlight.tasks.decisions.repeat import (
    RepeatAction,
    RepeatDecision,
    as_green,
    decide_repeat,
    release_finished,
    same_pod_template,
    with_digest,
)
from prefect_greenlight.tasks.decisions.rollback import SwitchKind, switch_kind_of
from prefect_greenlight.tasks.decisions.window import RollbackWindow, read_window
from prefect_greenlight.tasks.decisions.workload import paused, port_problems, service_warnings
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.hooks.preflight import check_hook_jobs
from prefect_greenlight.tasks.kube.client import Kube, apply_deployment, list_objects, namespace_exists, read
from prefect_greenlight.tasks.kube.permissions import ROUTE_SWITCH, needed, require
from prefect_greenlight.tasks.spec import BlueGreenSpec, CleanupMode, RollbackGreen


@dataclass(frozen=True)
class BlueGreenPreflight:
    spec: BlueGreenSpec
    release_id: str
    colors: ColorPlan
    green_manifest: dict
    green_existed: bool
    green_replicas_before: int  # 0 when green did not exist
    blue_replicas: int
    blue_image: str
    warnings: tuple[str, ...] = field(default_factory=tuple)
    service_ports: tuple[dict, ...] = ()  # the Service's spec.ports: checks aim at a port's targetPort
    blue_hpa: dict | None = None  # the HorizontalPodAutoscaler scaling blue; green gets an equivalent
    repeat: RepeatDecision | None = None  # release, resume after the switch, or already live (decisions/repeat.py)
    # What preflight read, for the plan (--dry-run): green's server-side dry run against blue, what was checked
    green_changes: tuple[FieldChange, ...] = ()
    permissions: tuple[str, ...] = ()
    autoscalers: tuple[str, ...] = ()  # every HPA in the namespace
    previous_window: RollbackWindow | None = None  # a rollback window whose warm Deployment is not blue (step 1b)
    route: RouteSwitch | None = None  # `traffic: gateway`: the HTTPRoute whose backendRef the switch moves

    @property
    def namespace(self) -> str:
        return self.spec.namespace

    @property
    def green_replicas(self) -> int:
        return int(self.green_manifest.get("spec", {}).get("replicas", 1))

    @property
    def green_images(self) -> list[str]:
        return [c["image"] for c in self.green_manifest["spec"]["template"]["spec"]["containers"]]

    def hook_context(self) -> HookContext:
        return HookContext(self.namespace, self.colors.service, "blue-green", self.release_id, self.colors.blue,
                           self.colors.green, tuple(self.green_images), released_image(self.spec, self.green_images))

    def summary(self) -> dict:
        return {
            "release_id": self.release_id, "namespace": self.namespace, "service": self.colors.service,
            "blue": self.colors.blue, "green": self.colors.green, "color_keys": list(self.colors.color_keys),
            "selector_now": self.colors.blue_selector, "selector_after": self.colors.green_selector,
            "blue_image": self.blue_image, "green_images": self.green_images, "blue_replicas": self.blue_replicas,
            "green_replicas": self.green_replicas, "green_existed": self.green_existed,
            "already_live": self.colors.already_live, "cleanup": self.spec.cleanup.mode.value,
            "scale_down_delay_s": self.spec.cleanup.delay_s, "approval": self.spec.approval.mode.value,
            "preview_service": self.spec.preview_service or "", "warnings": list(self.warnings),
            "autoscaler": self.blue_hpa["metadata"]["name"] if self.blue_hpa else "",
        }


def new_release_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def _first_image(deployment: dict) -> str:
    return deployment["spec"]["template"]["spec"]["containers"][0].get("image", "")


def _green_manifest(spec: BlueGreenSpec, service: dict, deployments: list[dict]) -> tuple[dict, list[str]]:
    """Green as the spec gives it (manifest) or derived from the live Deployment (image), with warnings."""
    selector = service.get("spec", {}).get("selector") or {}
    if spec.manifest is not None:
        problems = check_manifest(spec.manifest, spec.namespace)
        if problems:
            raise BadInput(problems)
        return with_digest(spec.manifest), []
    if not selector:
        raise BadInput(f"Service {spec.service!r} has no selector: greenlight switches traffic by changing it")
    live = [d for d in deployments if all(pod_labels(d).get(k) == v for k, v in selector.items())]
    if len(live) != 1:
        names = ", ".join(d["metadata"]["name"] for d in live) or "none"
        raise BadInput(f"Service {spec.service!r} selector {selector} must match exactly one Deployment to "
                       f"derive green from; it matches {len(live)} ({names})")
    released = _released_live(spec, service, live[0])
    if released is not None:
        return released, []
    green = derive_green(live[0], spec.image, spec.container, spec.color_key, spec.green_value, selector)
    warnings = []
    if paused(green):
        green["spec"].pop("paused")
        warnings.append(f"Deployment {live[0]['metadata']['name']!r} is paused (spec.paused); green is created "
                        "unpaused, blue is left as it is")
    return green, warnings


def _released_live(spec: BlueGreenSpec, service: dict, live: dict) -> dict | None:
    """Image mode re-run: when greenlight released the live Deployment and it already runs `spec.image`, green is
    the live Deployment itself (resume or already live), not a new one derived from it."""
    record, name = read_record(service), live["metadata"]["name"]
    if record.live_deployment != name or switch_kind_of(record) is not SwitchKind.RELEASE:
        return None
    candidate = as_green(live)
    set_image(candidate["spec"], name, spec.image, spec.container)
    same = same_pod_template(candidate["spec"]["template"], live, use_digest=False)
    return as_green(live) if same.same else None


def _repeat(spec: BlueGreenSpec, service: dict, colors: ColorPlan, green: dict, existing: dict | None) -> RepeatDecision:
    """A re-run whose green already serves: resume, already live, or refused (another pod template)."""
    record = read_record(service)
    template = None
    if colors.already_live and existing is not None:
        template = same_pod_template(green["spec"]["template"], existing, use_digest=spec.manifest is not None)
    decision = decide_repeat(colors.already_live, template, release_finished(read_history(service), record),
                             colors.service, colors.green, record)
    if decision.action is RepeatAction.REFUSE:
        raise BadInput(decision.message)
    return decision


def _shape_checks(spec: BlueGreenSpec, service: dict, green: dict, blue: dict | None, green_name: str) -> list[str]:
    """Refuse ports green does not declare; warn about overlapping selectors and the Service's own settings."""
    ports = (service.get("spec") or {}).get("ports") or []
    problems = port_problems(green["spec"]["template"].get("spec") or {}, spec.smoke, ports, f"green {green_name!r}")
    if problems:
        raise BadInput(problems)
    warnings = []
    green_match = (green.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    if blue is not None and green_match and all(pod_labels(blue).get(k) == v for k, v in green_match.items()):
        warnings.append(f"green's selector {green_match} also matches blue's pods: the Deployments overlap")
    return warnings + service_warnings(service, spec.cleanup.delay_s)


def _autoscaler(kube: Kube, spec: BlueGreenSpec, blue: dict | None, green: dict, green_name: str) -> tuple[
        dict | None, list[str], tuple[str, ...]]:
    """blue's HorizontalPodAutoscaler, if any (refusing shapes greenlight cannot carry over), and green's replicas
    raised to blue's current count when the manifest asks for fewer: green takes blue's whole load at once."""
    hpas = list_objects(kube, "HorizontalPodAutoscaler", spec.namespace)
    blue_name = (blue or {}).get("metadata", {}).get("name", "")
    problems = hpa_problems(hpas, blue_name, green_name)
    if problems:
        raise BadInput(problems)
    found = autoscalers_of(hpas, blue_name) if blue else []
    names = tuple(sorted(h["metadata"]["name"] for h in hpas))
    if not found:
        return None, [], names
    require(kube, spec.namespace, _HPA_WRITES)
    current = int(blue["spec"].get("replicas", 1))
    asked = int(green["spec"].get("replicas", 1))
    warnings = [f"HorizontalPodAutoscaler {found[0]['metadata']['name']!r} scales blue {blue_name!r}: green gets "
                "an equivalent before the switch; blue's is removed when blue is taken out of service"]
    if asked < current:
        green["spec"]["replicas"] = current
        warnings.append(f"the green manifest asks for {asked} replicas; blue runs {current} (autoscaled): green "
                        f"starts at {current}")
    return found[0], warnings, names


_HPA_WRITES = [p for p in needed(port_forward=False, manage_services=False, deletes=False, autoscaler=True)
               if p.resource == "horizontalpodautoscalers"]


def _check_preview(kube: Kube, spec: BlueGreenSpec) -> None:
    if not spec.preview_service:
        return
    preview = read(kube, "Service", spec.namespace, spec.preview_service)
    if preview and (preview.get("metadata", {}).get("annotations") or {}).get(
            "greenlight.io/preview-of") != spec.service:
        raise BadInput(f"preview Service {spec.preview_service!r} exists and is not managed by greenlight")


def _previous_window(service: dict, colors: ColorPlan) -> RollbackWindow | None:
    """A rollback window still recorded on the Service whose warm Deployment is not the live one: a new release
    closes it first (tasks/bluegreen/window.py)."""
    window = read_window(service)
    return window if window is not None and not colors.already_live and window.warm != colors.blue else None


def preflight(kube: Kube, spec: BlueGreenSpec, release_id: str | None = None) -> BlueGreenPreflight:
    """Decide the plan or raise BadInput naming every problem. Reads only; the server-side dry run of the green
    manifest lets the apiserver itself validate it (admission, schema) without persisting anything."""
    ns = spec.namespace
    if not namespace_exists(kube, ns):
        raise BadInput(f"namespace {ns!r} not found")
    permissions = needed(port_forward=bool(spec.smoke) or spec.post_switch.window_s > 0,
                         manage_services=bool(spec.preview_service),
                         deletes=spec.on_failure is RollbackGreen.DELETE or spec.cleanup.mode is CleanupMode.DELETE,
                         jobs=any(h.job is not None for h in spec.hooks))
    if spec.gateway is not None:
        permissions = sorted(set(permissions) | set(ROUTE_SWITCH))
    require(kube, ns, permissions)
    service = read(kube, "Service", ns, spec.service)
    if service is None:
        raise BadInput(f"Service {spec.service!r} not found in namespace {ns!r}")
    deployments = list_objects(kube, "Deployment", ns)
    by_name = {d["metadata"]["name"]: d for d in deployments}
    green, warnings = _green_manifest(spec, service, deployments)
    colors = plan_colors(service, deployments, green)
    if not colors.already_live and colors.green == colors.blue:
        raise BadInput(f"green Deployment {colors.green!r} is the live (blue) Deployment: green equals blue")
    blue = by_name.get(colors.blue)
    if blue is None and not colors.already_live:
        raise BadInput(f"Deployment {colors.blue!r} not found")
    warnings += _shape_checks(spec, service, green, blue, colors.green)
    blue_hpa, hpa_warnings, hpa_names = _autoscaler(kube, spec, blue, green, colors.green)
    if blue_hpa:
        permissions = sorted(set(permissions) | set(_HPA_WRITES))
    _check_preview(kube, spec)
    route = route_preflight(kube, spec, service, colors.green_selector) if spec.gateway is not None else None
    try:
        dry_run = apply_deployment(kube, ns, green, dry_run=True)
    except Exception as exc:  # noqa: BLE001 - the apiserver's own validation of the manifest
        raise BadInput(f"the apiserver rejects green Deployment {colors.green!r}: {exc}") from exc
    existing_green = by_name.get(colors.green)
    repeat = _repeat(spec, service, colors, green, existing_green)
    plan = BlueGreenPreflight(
        spec=spec, release_id=release_id or spec.release_id or new_release_id(), colors=colors,
        green_manifest=green, green_existed=existing_green is not None,
        green_replicas_before=int((existing_green or {}).get("spec", {}).get("replicas", 0) or 0),
        blue_replicas=int((blue or {}).get("spec", {}).get("replicas", 0) or 0),
        blue_image=_first_image(blue) if blue else "", warnings=tuple(warnings + hpa_warnings), blue_hpa=blue_hpa,
        service_ports=tuple((service.get("spec") or {}).get("ports") or []), repeat=repeat,
        green_changes=deployment_changes(blue, dry_run), permissions=tuple(map(str, permissions)),
        autoscalers=hpa_names, previous_window=_previous_window(service, colors), route=route)
    check_hook_jobs(kube, spec.hooks, plan.hook_context(), service)
    return plan
