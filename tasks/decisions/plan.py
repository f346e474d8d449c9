"""The plan of a release (`--dry-run`): the steps it would run, in the order and under the names its timeline will
show, each with the object it touches, the exact change, its gate and its undo; then what preflight found.
Pure: built from the typed spec plus the facts preflight read (tasks/decisions/describe_bluegreen.py and
describe_canary.py describe each step of the strategies' lists, tasks/*/strategy.py; describe_rollback.py builds the
rollback's steps; tasks/record/plan_render.py renders them).

A plan is a tuple of steps, so a step of another kind (a hook: a Job or a webhook gate, tasks/decisions/
describe_hooks.py) is inserted by position without changing the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from prefect_greenlight.tasks.decisions.lease import LockAction, decide


class StepKind(str, Enum):
    """What a step does: reads and decides, changes an object, waits for the cluster, or is a gate."""

    CHECK = "check"
    CHANGE = "change"
    WAIT = "wait"
    GATE = "gate"


NO_UNDO = "nothing to undo (this step changes nothing)"


@dataclass(frozen=True)
class FieldChange:
    """One field of a Deployment that differs: `path` in dotted form, containers and ports keyed by name."""

    path: str
    before: Any
    after: Any

    def describe(self) -> str:
        return f"{self.path}: {_short(self.before)} -> {_short(self.after)}"


@dataclass(frozen=True)
class PlanStep:
    name: str  # exactly as the run's timeline will name it (tests compare them)
    kind: StepKind
    touches: str  # the object, "Deployment green-dep", or "" when none
    change: str  # what happens, with concrete counts
    details: tuple[str, ...] = ()  # field changes, patch operations, checks
    gate: str = ""  # what must hold for the release to go on
    undo: str = NO_UNDO  # what undoing this step does if a later step fails
    when: str = ""  # timing, when it is not simply "next"
    patch: tuple[dict, ...] = ()  # the JSON patch, when the step sends one

    def as_dict(self, number: int) -> dict:
        return {"number": number, "step": self.name, "kind": self.kind.value, "touches": self.touches,
                "change": self.change, "details": list(self.details), "gate": self.gate, "undo": self.undo,
                "when": self.when, **({"patch": list(self.patch)} if self.patch else {})}


@dataclass(frozen=True)
class PlanFacts:
    """What preflight (and the plan's own reads) found; nothing here was changed to find it."""

    permissions: tuple[str, ...] = ()  # checked, all granted (a missing one refuses the release: exit 2)
    lease: str = "free"
    lease_free: bool = True
    autoscalers: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    hooks: tuple[str, ...] = ()  # every hook found, by point (tasks/decisions/describe_hooks.py)
    policy: str = ""  # what the release policy (windows, freezes) says of releasing now; "" when not read

    def as_dict(self) -> dict:
        return {"permissions_checked": list(self.permissions), "lease": self.lease, "lease_free": self.lease_free,
                "autoscalers": list(self.autoscalers), "warnings": list(self.warnings), "hooks": list(self.hooks),
                **({"policy": self.policy} if self.policy else {})}


@dataclass(frozen=True)
class Plan:
    strategy: str  # blue-green | canary | rollback
    namespace: str
    service: str
    summary: str  # one line: "green-dep replaces blue-dep behind Service production-svc"
    steps: tuple[PlanStep, ...]
    facts: PlanFacts = field(default_factory=PlanFacts)

    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]

    def as_dict(self) -> dict:
        return {"strategy": self.strategy, "namespace": self.namespace, "service": self.service,
                "summary": self.summary, "steps": [s.as_dict(i) for i, s in enumerate(self.steps, 1)],
                "step_names": self.step_names(), "facts": self.facts.as_dict()}


def _short(value: Any, limit: int = 80) -> str:
    text = "(none)" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the fields green changes -------------------------------------------------------------------------------
_SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                "namespace", "deletionTimestamp", "ownerReferences")
_SERVER_ANNOTATIONS = ("deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration")


def _comparable(deployment: dict | None) -> dict:
    if not deployment:
        return {}
    meta = {k: v for k, v in (deployment.get("metadata") or {}).items() if k not in _SERVER_META}
    ann = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _SERVER_ANNOTATIONS}
    meta["annotations"] = ann or None
    return {"metadata": meta, "spec": deployment.get("spec") or {}}


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    """Leaves by dotted path; lists of named objects (containers, ports, env, volumes) keyed by their name."""
    if isinstance(value, dict):
        if not value and path:
            out[path] = value
        for key, inner in value.items():
            _flatten(inner, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        for inner in value:
            _flatten({k: v for k, v in inner.items() if k != "name"}, f"{path}[{inner['name']}]", out)
    elif value is not None:
        out[path] = value


def deployment_changes(before: dict | None, after: dict) -> tuple[FieldChange, ...]:
    """The fields of `after` (green as the apiserver's server-side dry run returns it, defaults filled in) that
    differ from `before` (blue as it runs), ignoring status and server-set metadata."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    _flatten(_comparable(before), "", old)
    _flatten(_comparable(after), "", new)
    return tuple(FieldChange(p, old.get(p), new.get(p)) for p in sorted(set(old) | set(new))
                 if old.get(p) != new.get(p))


# -- the Lease --------------------------------------------------------------------------------------------------
def lease_fact(lease: dict | None, now: float) -> tuple[str, bool]:
    """(description, free?) of the Service's Lease as read now, judged as the release's lock would judge it."""
    if lease is None:
        return "free (no Lease yet: the release creates it)", True
    verdict = decide(lease, me="(the plan, holding nothing)", now=now)
    if verdict.action is LockAction.HELD:
        return (f"held by {verdict.holder} for {verdict.expires_in_s:.0f} s more unless renewed: a release now "
                "fails at once naming it (or waits with --lock-wait)"), False
    holder = verdict.holder or "nobody"
    return f"free (last held by {holder}, expired: the release takes it over)", True
