"""Step 1 of a canary release: read the Service and both Deployments, decide the canary manifest and the
replica plan, and refuse (BadInput, nothing changed) when the spec or the cluster state is wrong.

Derived canary (image mode): a copy of stable with name `spec.canary_name_or_default`, one container's image
replaced, and `greenlight.io/track: canary` added to the pod template labels AND the selector, so the canary's
selector does not select stable's pods. (Stable's selector may still select the canary's pods when it is only
`app: my-app`; this is the tutorial's situation, harmless because ReplicaSets select by pod-template-hash and
greenlight attributes pods by owner references. It is reported as a warning.)
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from prefect_greenlight.tasks.canary.gateway_preflight import gateway_preflight, weight_counts
from prefect_greenlight.tasks.canary.steps import read_progress
from prefect_greenlight.tasks.decisions.autoscaling import autoscalers_of
from prefect_greenlight.tasks.decisions.canary import StepCounts, overlapping, step_plan
from prefect_greenlight.tasks.decisions.canary_progress import CanaryRecord, ResumeAction, ResumeDecision, decide_resume
from prefect_greenlight.tasks.decisions.colors import check_manifest, pod_labels, selector_matches, set_image
from prefect_greenlight.tasks.decisions.describe_gateway import GatewayPlan
from prefect_greenlight.tasks.decisions.hooks import HookContext, released_image
from prefect_greenlight.tasks.decisions.judge import JUDGE_EXTRA
from prefect_greenlight.tasks.decisions.judge import available as judge_available
from prefect_greenlight.tasks.decisions.plan import FieldChange, deployment_changes
from prefect_greenlight.tasks.decisions.workload import paused, port_problems
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.hooks.preflight import check_hook_jobs
from prefect_greenlight.tasks.kube.client import Kube, apply_deployment, list_objects, namespace_exists, read
from prefect_greenlight.tasks.kube.permissions import needed, require
from prefect_greenlight.tasks.spec.canary import TRACK_LABEL, CanarySpec


@dataclass(frozen=True)
class CanaryPreflight:
    spec: CanarySpec
    release_id: str
    canary: str
    canary_manifest: dict
    canary_existed: bool
    total: int
    steps: tuple[StepCounts, ...]
    stable_image: str
    warnings: tuple[str, ...] = field(default_factory=tuple)
    service_ports: tuple[dict, ...] = ()  # the Service's spec.ports: analysis aims at a port's targetPort
    # What preflight read, for the plan (--dry-run): the canary's server-side dry run against stable, what was checked
    canary_changes: tuple[FieldChange, ...] = ()
    permissions: tuple[str, ...] = ()
    autoscalers: tuple[str, ...] = ()  # every HPA in the namespace (none may scale stable or the canary)
    # A re-run of an unfinished canary (tasks/decisions/canary_progress.py): the first step to run, why, and the
    # replicas (canary, stable) found now, from which that step scales
    resume_index: int = 0
    resume_message: str = ""
    found_replicas: tuple[int, int] = (0, 0)
    # `baseline: true`: the baseline Deployment (stable's pod template; replicas set at each step) and its
    # replicas found now
    baseline_manifest: dict | None = None
    found_baseline: int = 0
    # `traffic: gateway`: the HTTPRoute, the Services and the state after each step (tasks/canary/gateway_steps.py)
    gateway: GatewayPlan | None = None

    @property
    def namespace(self) -> str:
        return self.spec.namespace

    @property
    def service(self) -> str:
        return self.spec.service

    @property
    def stable(self) -> str:
        return self.spec.stable

    @property
    def baseline(self) -> str | None:
        return self.baseline_manifest["metadata"]["name"] if self.baseline_manifest else None

    @property
    def canary_images(self) -> list[str]:
        return [c["image"] for c in self.canary_manifest["spec"]["template"]["spec"]["containers"]]

    def hook_context(self) -> HookContext:
        return HookContext(self.namespace, self.service, "canary", self.release_id, self.stable, self.canary,
                           tuple(self.canary_images), released_image(self.spec, self.canary_images))

    def summary(self) -> dict:
        return {"release_id": self.release_id, "namespace": self.namespace, "service": self.service,
                "stable": self.stable, "canary": self.canary, "total": self.total,
                "stable_image": self.stable_image, "canary_images": self.canary_images,
                "steps": [s.describe() for s in self.steps], "warnings": list(self.warnings),
                **({"gateway": self._gateway_summary()} if self.gateway else {})}

    def _gateway_summary(self) -> dict:
        """`traffic: gateway`: the route, the Services and the state after each step (weights, matches, pods)."""
        g = self.gateway
        return {"route": g.route, "rule": g.rule, "service": g.service, "canary_service": g.canary_service,
                "creates_canary_service": g.create_service is not None, "stable_replicas": g.stable_replicas,
                "states": [{"step": step.describe(), "weight": st.weight, "canary_pods": st.canary_pods,
                            "matches": [m.describe() for m in st.matches]}
                           for step, st in zip(self.spec.step_list(), g.states)]}


def new_release_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def derive_canary(stable: dict, image: str, name: str, container: str | None) -> dict:
    """The canary manifest from the live stable Deployment: name, image and the track label changed."""
    spec = copy.deepcopy(stable.get("spec") or {})
    for key in ("revisionHistoryLimit", "paused"):
        spec.pop(key, None)
    spec.setdefault("selector", {}).setdefault("matchLabels", {})[TRACK_LABEL] = "canary"
    spec["template"].setdefault("metadata", {}).setdefault("labels", {})[TRACK_LABEL] = "canary"
    set_image(spec, stable["metadata"]["name"], image, container)
    labels = dict(stable["metadata"].get("labels") or {})
    labels[TRACK_LABEL] = "canary"
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels}, "spec": spec}


def derive_baseline(stable: dict, name: str) -> dict:
    """The baseline: stable's pod template under another name, `greenlight.io/track: baseline` on the Deployment,
    its selector and its pods (so it never adopts stable's pods, and is told apart from both), replicas 0 until a
    step sets them."""
    spec = copy.deepcopy(stable.get("spec") or {})
    for key in ("revisionHistoryLimit", "paused"):
        spec.pop(key, None)
    spec.setdefault("selector", {}).setdefault("matchLabels", {})[TRACK_LABEL] = "baseline"
    spec["template"].setdefault("metadata", {}).setdefault("labels", {})[TRACK_LABEL] = "baseline"
    spec["replicas"] = 0
    labels = {**(stable["metadata"].get("labels") or {}), TRACK_LABEL: "baseline"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels,
                         "annotations": {"greenlight.io/baseline-of": stable["metadata"]["name"]}}, "spec": spec}


def _canary_manifest(spec: CanarySpec, stable: dict) -> tuple[dict, list[str]]:
    """The canary as the spec gives it (manifest; refused when paused) or derived from stable (image; a paused
    stable gives an unpaused canary, with a warning)."""
    if spec.manifest is not None:
        problems = check_manifest(spec.manifest, spec.namespace)
        if problems:
            raise BadInput(problems)
        return copy.deepcopy(spec.manifest), []
    warnings = []
    if paused(stable):
        warnings.append(f"stable {spec.stable!r} is paused (spec.paused); the canary is created unpaused")
    return derive_canary(stable, spec.image, spec.canary_name_or_default, spec.container), warnings


def _refuse_autoscalers(kube: Kube, namespace: str, deployments: tuple[str, ...]) -> tuple[str, ...]:
    """A canary by replica ratio and an HPA cannot share a Deployment: the HPA would undo every step's counts,
    and with them the traffic split. Refused before anything changes, naming the HPA and the ways out (documented
    in the README: blue-green carries an HPA over; a canary needs it off for the duration)."""
    hpas = list_objects(kube, "HorizontalPodAutoscaler", namespace)
    problems = [f"HorizontalPodAutoscaler {h['metadata']['name']!r} scales {d!r}: a canary moves traffic by "
                "replica counts, which the HPA would undo. Release with `greenlight blue-green` (it carries the "
                "HPA over to the new version), or remove the HPA for the canary's duration and re-create it after"
                for d in deployments for h in autoscalers_of(hpas, d)]
    if problems:
        raise BadInput(problems)
    return tuple(sorted(h["metadata"]["name"] for h in hpas))


def _service_problems(service: dict, stable: dict, canary: dict) -> list[str]:
    name = service["metadata"]["name"]
    selector = service.get("spec", {}).get("selector") or {}
    if not selector:
        return [f"Service {name!r} has no selector: it must select both versions (e.g. only the app label)"]
    problems = []
    if not selector_matches(selector, pod_labels(stable)):
        problems.append(f"Service {name!r} selector {selector} does not select stable "
                        f"{stable['metadata']['name']!r} (pod labels {pod_labels(stable)})")
    if not selector_matches(selector, pod_labels(canary)):
        problems.append(f"Service {name!r} selector {selector} selects nothing of canary "
                        f"{canary['metadata']['name']!r} (pod labels {pod_labels(canary)}): it would never get traffic")
    return problems


def preflight(kube: Kube, spec: CanarySpec, release_id: str | None = None) -> CanaryPreflight:
    """Decide the plan or raise BadInput naming every problem. Reads only (plus a server-side dry run)."""
    ns = spec.namespace
    if not namespace_exists(kube, ns):
        raise BadInput(f"namespace {ns!r} not found")
    permissions = needed(port_forward=spec.analysis.http is not None or spec.judge is not None,
                         manage_services=False, deletes=True,
                         jobs=any(h.job is not None for h in spec.hooks))
    require(kube, ns, permissions)
    service = read(kube, "Service", ns, spec.service)
    if service is None:
        raise BadInput(f"Service {spec.service!r} not found in namespace {ns!r}")
    deployments = {d["metadata"]["name"]: d for d in list_objects(kube, "Deployment", ns)}
    stable = deployments.get(spec.stable)
    if stable is None:
        raise BadInput(f"stable Deployment {spec.stable!r} not found in namespace {ns!r}")
    canary, warnings = _canary_manifest(spec, stable)
    name = canary["metadata"]["name"]
    if name == spec.stable:
        raise BadInput(f"the canary Deployment {name!r} is the stable one: give the canary another name")
    hpa_names = _refuse_autoscalers(kube, ns, (spec.stable, name))
    ports = tuple((service.get("spec") or {}).get("ports") or [])
    checks = [c for c in (spec.analysis.http, spec.judge.http if spec.judge else None) if c is not None]
    gateway = spec.gateway is not None
    problems = ([] if gateway else _service_problems(service, stable, canary)) + port_problems(
        canary["spec"]["template"].get("spec") or {}, checks, ports, f"canary {name!r}")
    if problems:
        raise BadInput(problems)
    existing = deployments.get(name)
    resume = _resume(service, spec, name, stable)
    total = resume.total
    if total < 1:
        raise BadInput(f"stable {spec.stable!r} has {total} replicas: give --total (the pods of both versions)")
    for a, b in ((stable, canary), (canary, stable)):
        match = (a.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
        if overlapping(match, pod_labels(b)):
            warnings.append(f"{a['metadata']['name']}'s selector {match} also matches {b['metadata']['name']}'s "
                            "pods: the Deployments overlap (pods are attributed by owner references)")
    route = gateway_preflight(kube, spec, service, stable, canary, total) if gateway else None
    steps = weight_counts(spec, route) if route else tuple(step_plan(total, spec.weights, spec.baseline))
    baseline = _baseline(spec, deployments, stable, steps)
    replicas = steps[0].canary
    canary["spec"]["replicas"] = replicas
    try:
        dry_run = apply_deployment(kube, ns, canary, dry_run=True)
    except Exception as exc:  # noqa: BLE001 - the apiserver's own validation of the manifest
        raise BadInput(f"the apiserver rejects canary Deployment {name!r}: {exc}") from exc
    plan = CanaryPreflight(spec=spec, release_id=release_id or spec.release_id or new_release_id(), canary=name,
                      canary_manifest=canary, canary_existed=existing is not None, total=total,
                      steps=steps, baseline_manifest=baseline,
                      found_baseline=_replicas(deployments.get(spec.baseline_name)) if baseline else 0,
                      stable_image=stable["spec"]["template"]["spec"]["containers"][0].get("image", ""),
                      warnings=tuple(warnings), service_ports=ports,
                      canary_changes=deployment_changes(stable, dry_run), permissions=tuple(map(str, permissions)),
                      autoscalers=hpa_names,
                      resume_index=resume.start_index if resume.action is ResumeAction.RESUME else 0,
                      resume_message=resume.message if resume.action is ResumeAction.RESUME else "",
                      found_replicas=(_replicas(existing), _replicas(stable)), gateway=route)
    check_hook_jobs(kube, spec.hooks, plan.hook_context(), service)
    return plan


def _baseline(spec: CanarySpec, deployments: dict[str, dict], stable: dict,
              steps: tuple[StepCounts, ...]) -> dict | None:
    """The baseline's manifest, or None without `baseline: true`. Refused: a name taken by a Deployment that is not
    a greenlight baseline, and a judge step at a weight that leaves no pod for the baseline."""
    if not spec.baseline:
        return None
    if spec.judge is not None and not judge_available():
        raise BadInput(JUDGE_EXTRA)
    name = spec.baseline_name
    found = deployments.get(name)
    if found is not None and ((found["metadata"].get("labels") or {}).get(TRACK_LABEL) != "baseline"):
        raise BadInput(f"Deployment {name!r} exists and is not a greenlight baseline (label {TRACK_LABEL}="
                       "baseline): rename it or release without `baseline`")
    weight, problems, at = 0, [], {c.percent: c for c in steps}
    for step in spec.step_list():
        weight = step.set_weight or weight
        counts = at.get(weight)
        if step.judge is not None and counts is not None and counts.baseline < 1:
            problems.append(f"judge step at {weight} %: {counts.describe()} leaves no pod for the baseline "
                            f"(total {counts.canary + counts.stable}); give a larger total or drop that judge step")
    if problems:
        raise BadInput(problems)
    return derive_baseline(stable, name)


def _replicas(deployment: dict | None) -> int:
    return int(((deployment or {}).get("spec") or {}).get("replicas", 0) or 0) if deployment else 0


def _resume(service: dict, spec: CanarySpec, canary: str, stable: dict) -> ResumeDecision:
    """Start afresh, or resume the unfinished canary the Service records with its recorded total; refuse another."""
    decision = decide_resume(CanaryRecord.from_progress(read_progress(service)), spec.stable, canary,
                             tuple(spec.weights), spec.total, _replicas(stable))
    if decision.action is ResumeAction.REFUSE:
        raise BadInput(decision.message)
    return decision
