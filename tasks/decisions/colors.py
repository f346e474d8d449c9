"""Which color is live, which label keys tell the colors apart, and what green is. Pure functions.

Both tutorial styles work: `target: blue-dep` / `target: green-dep` (one key, the Deployment's own label), and
`app: my-app, version: blue|green` (a shared app key plus a color key). The Service selector is the truth about
which color is live; the color keys are the selector keys whose values differ between blue's and green's pods.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from prefect_greenlight.tasks.decisions.annotations import read_record
from prefect_greenlight.tasks.decisions.workload import ContainerChoice, choose_container, set_container_image
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import DNS1123_SUBDOMAIN, valid_image

_COLOR = re.compile(r"blue|green")
_OTHER = {"blue": "green", "green": "blue"}


@dataclass(frozen=True)
class ColorPlan:
    """Blue is what the Service selects now; green is what it will select after the switch."""

    service: str
    blue: str  # Deployment name
    green: str  # Deployment name
    color_keys: tuple[str, ...]
    blue_selector: dict[str, str]
    green_selector: dict[str, str]
    already_live: bool = False  # the Service already selects green (a re-run after the switch)

    @property
    def blue_color(self) -> str:
        return ",".join(self.blue_selector[k] for k in self.color_keys)

    @property
    def green_color(self) -> str:
        return ",".join(self.green_selector[k] for k in self.color_keys)


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_labels(deployment: dict) -> dict[str, str]:
    return deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}


def swap_color(value: str) -> str | None:
    """blue <-> green inside a label value or name ("blue-dep" -> "green-dep"), both ways at once so it is its own
    inverse; None when it names no color."""
    if not _COLOR.search(value):
        return None
    return _COLOR.sub(lambda m: _OTHER[m.group()], value)


def live_deployments(selector: dict[str, str], deployments: list[dict]) -> list[str]:
    return sorted(d["metadata"]["name"] for d in deployments if selector_matches(selector, pod_labels(d)))


def check_manifest(manifest: Any, namespace: str) -> list[str]:
    """Problems with a green Deployment manifest, each naming the field."""
    if not isinstance(manifest, dict):
        return [f"manifest must be a mapping, got {type(manifest).__name__}"]
    problems = []
    if manifest.get("apiVersion") != "apps/v1" or manifest.get("kind") != "Deployment":
        problems.append(f"manifest: expected apiVersion apps/v1, kind Deployment; got "
                        f"{manifest.get('apiVersion')!r}, {manifest.get('kind')!r}")
        return problems
    meta = manifest.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not re.fullmatch(DNS1123_SUBDOMAIN, name) or len(name) > 253:
        problems.append(f"manifest: metadata.name {name!r} is not a valid Deployment name")
    if meta.get("namespace") not in (None, namespace):
        problems.append(f"manifest: metadata.namespace {meta['namespace']!r} differs from the release's {namespace!r}")
    spec = manifest.get("spec") or {}
    if spec.get("paused"):
        problems.append("manifest: spec.paused is true: the Deployment would never roll out (remove spec.paused)")
    replicas = spec.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        problems.append(f"manifest: spec.replicas must be a whole number >= 1, got {replicas!r}")
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = pod_labels(manifest)
    if not labels:
        problems.append("manifest: spec.template.metadata.labels is empty")
    elif match and not selector_matches(match, labels):
        problems.append(f"manifest: spec.selector.matchLabels {match} does not match the pod labels {labels}")
    containers = (spec.get("template", {}).get("spec") or {}).get("containers") or []
    if not containers:
        problems.append("manifest: spec.template.spec.containers is empty")
    for i, c in enumerate(containers):
        image = c.get("image") if isinstance(c, dict) else None
        if not isinstance(image, str) or not valid_image(image):
            problems.append(f"manifest: spec.template.spec.containers[{i}].image {image!r} "
                            "is not a valid image reference")
    return problems


def plan_colors(service: dict, deployments: list[dict], green: dict) -> ColorPlan:
    """Decide blue, green and the color keys, or refuse naming the problem (nothing has changed yet).

    When the Service already selects green and its release record says greenlight switched it to this very
    Deployment, this is a re-run after the switch: the plan resumes from there (blue = the recorded previous).
    """
    name = service["metadata"]["name"]
    record = read_record(service)
    selector = service.get("spec", {}).get("selector") or {}
    if not selector:
        raise BadInput(f"Service {name!r} has no selector: greenlight switches traffic by changing it")
    green_name = green["metadata"]["name"]
    green_labels = pod_labels(green)
    missing = sorted(k for k in selector if k not in green_labels)
    if missing:
        raise BadInput(f"green's pod labels {green_labels} lack the Service selector key(s) {missing}: "
                       f"Service {name!r} could never select green")
    live = live_deployments(selector, [d for d in deployments if d["metadata"]["name"] != green_name])
    green_matches_now = selector_matches(selector, green_labels)
    if green_matches_now:
        if record.live_deployment == green_name and record.previous_selector and not live:
            keys = tuple(sorted(k for k in selector if record.previous_selector.get(k) != selector[k]))
            return ColorPlan(service=name, blue=record.previous_deployment, green=green_name, color_keys=keys,
                             blue_selector=dict(record.previous_selector), green_selector=dict(selector),
                             already_live=True)
        if live:
            raise BadInput(f"Service {name!r} selector {selector} matches both {', '.join(live)} and green "
                           f"{green_name!r}: the selector must tell the colors apart")
        raise BadInput(f"green's pod labels already match Service {name!r} selector {selector}: green equals blue "
                       "(give green a different color label)")
    if not live:
        namesake = next((d for d in deployments if d["metadata"]["name"] == green_name), None)
        if namesake is not None and selector_matches(selector, pod_labels(namesake)):
            raise BadInput(f"manifest: metadata.name {green_name!r} is the name of the live Deployment (Service "
                           f"{name!r} selects it): green needs a name of its own, e.g. {swap_color(green_name) or green_name + '-green'!r}")
        raise BadInput(f"Service {name!r} selector {selector} matches no Deployment in the namespace")
    if len(live) > 1:
        raise BadInput(f"Service {name!r} selector {selector} matches several Deployments ({', '.join(live)}): "
                       "cannot tell which color is live")
    keys = tuple(sorted(k for k in selector if green_labels[k] != selector[k]))
    return ColorPlan(service=name, blue=live[0], green=green_name, color_keys=keys,
                     blue_selector=dict(selector), green_selector={k: green_labels[k] for k in selector})


def set_image(spec: dict, deployment: str, image: str, container: str | None) -> ContainerChoice:
    """In a copied Deployment spec, give the new image to the named container, or to the one container whose
    image repository is the new image's (tasks.decisions.workload); never to a container nobody named."""
    pod_spec = spec["template"]["spec"]
    try:
        choice = choose_container(pod_spec, image, container, deployment)
    except ValueError as exc:
        raise BadInput(f"{'container' if container else 'image'}: {exc}") from exc
    set_container_image(pod_spec, choice, image)
    return choice


def derive_green(blue: dict, image: str, container: str | None, color_key: str | None, green_value: str | None,
                 service_selector: dict[str, str]) -> dict:
    """A green Deployment manifest from the live blue one: name, color label and image changed, all else kept."""
    if color_key:
        keys = [color_key]
    else:  # a value that IS a color beats one that merely contains it (app=bluegreen-demo, version=blue)
        exact = [k for k in sorted(service_selector) if service_selector[k] in _OTHER]
        keys = exact or [k for k in sorted(service_selector) if swap_color(service_selector[k])]
    if not keys:
        raise BadInput(f"cannot derive green: no value of the Service selector {service_selector} names blue or "
                       "green; give color_key and green_value, or a manifest")
    if len(keys) > 1:
        raise BadInput(f"cannot derive green: selector keys {keys} all name a color; give color_key")
    key = keys[0]
    if key not in service_selector:
        raise BadInput(f"color_key {key!r} is not a key of the Service selector {service_selector}")
    old_value = service_selector[key]
    new_value = green_value or swap_color(old_value)
    if not new_value or new_value == old_value:
        raise BadInput(f"cannot derive green's value for {key!r} from {old_value!r}; give green_value")
    name = blue["metadata"]["name"]
    new_name = swap_color(name) or f"{name}-{new_value}"
    spec = copy.deepcopy(blue.get("spec") or {})
    for field in ("revisionHistoryLimit",):
        spec.pop(field, None)
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    if key in match:
        match[key] = new_value
    spec["template"].setdefault("metadata", {}).setdefault("labels", {})[key] = new_value
    set_image(spec, name, image, container)
    if spec.get("replicas", 1) < 1:
        raise BadInput(f"Deployment {name!r} has {spec.get('replicas')} replicas: nothing to copy capacity from")
    labels = {k: v for k, v in (blue["metadata"].get("labels") or {}).items()}
    if key in labels:
        labels[key] = new_value
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": new_name, "namespace": blue["metadata"].get("namespace"), "labels": labels},
            "spec": spec}
