"""Who may release: the allow-list of an event-driven release. The `greenlight.image.pushed` trigger (prefect.yaml)
passes `allow_list_variable`, the name of a Prefect Variable (`greenlight_allowed_services`) that the run reads when
it starts, so the list is changed in the UI or with `prefect variable set`, without a redeploy. Its value: a
comma-separated string of `namespace/Service` patterns, or a JSON list of them; shell-style wildcards are allowed
(`staging/*`; `*/*` allows everything and must be said explicitly). Unset or empty, nothing is allowed.

A literal `allowed_services` among the trigger's parameters is a list fixed at deploy time: it wins over the
Variable. A run started by hand passes neither and has no allow-list. Whoever emits the event chooses the payload,
never the list: a Service outside it is refused before anything is read, and the refusal says how to allow it.

Rule (tested): nothing here imports Prefect or the Kubernetes client (the Variable is read in
tasks/prefect_adapter/variables.py)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase

DEFAULT_VARIABLE = "greenlight_allowed_services"
PATTERN_FORMS = "a comma-separated string or a JSON list of 'namespace/Service' patterns"


class AllowSource(str, Enum):
    """Where a run's allow-list came from (a stable contract: the refused event's `source`)."""

    NONE = "none"              # started by hand: no allow-list
    DEPLOYMENT = "deployment"  # the trigger's literal `allowed_services`, fixed at deploy time
    VARIABLE = "variable"      # the Prefect Variable named by `allow_list_variable`, read at run time


@dataclass(frozen=True)
class AllowList:
    source: AllowSource
    patterns: tuple[str, ...] = ()
    variable: str | None = None     # the Variable that holds (or would hold) the list
    problem: str | None = None      # the Variable's value was not understood: nothing is allowed

    @property
    def listed(self) -> str:
        return ",".join(self.patterns)


@dataclass(frozen=True)
class AllowVerdict:
    allowed: bool
    reason: str
    how: str = ""       # what to change so that it is allowed (refusals only)
    command: str = ""   # the CLI command that does it, when one does


def is_literal(text: str | None) -> bool:
    """A value the deployment fixed. `{{ ... }}` was left unrendered (a placeholder nobody set): not a list."""
    return text is not None and "{{" not in text


def variable_to_read(allowed_services: str | None, allow_list_variable: str | None) -> str | None:
    """The Variable this run must read: none when a literal deploy-time list wins or none is named."""
    return None if is_literal(allowed_services) else (allow_list_variable or None)


def parse_patterns(value: object) -> tuple[str, ...]:
    """A comma-separated string, a JSON list (or a string holding one), or None (unset) -> the patterns.
    Raises ValueError, saying what it got, for anything else."""
    if value is None:
        return ()
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{value[:80]!r}, which is not a valid JSON list ({exc})") from None
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return tuple(p.strip() for p in value if p.strip())
    raise ValueError(f"{json.dumps(value)[:80]}, not {PATTERN_FORMS}")


def resolve_allow_list(allowed_services: str | None, allow_list_variable: str | None,
                       variable_value: object = None) -> AllowList:
    """The run's allow-list from its parameters and the value of the Variable `variable_to_read` named."""
    if is_literal(allowed_services):
        try:
            return AllowList(AllowSource.DEPLOYMENT, parse_patterns(allowed_services), allow_list_variable)
        except ValueError as exc:
            return AllowList(AllowSource.DEPLOYMENT, (), allow_list_variable, problem=str(exc))
    if allow_list_variable:
        try:
            return AllowList(AllowSource.VARIABLE, parse_patterns(variable_value), allow_list_variable)
        except ValueError as exc:
            return AllowList(AllowSource.VARIABLE, (), allow_list_variable, problem=str(exc))
    if allowed_services is not None:  # an unrendered placeholder and no Variable: fail closed
        return AllowList(AllowSource.DEPLOYMENT, ())
    return AllowList(AllowSource.NONE)


def check_allowed(namespace: str, service: str, allow: AllowList) -> AllowVerdict:
    target = f"{namespace}/{service}"
    if allow.source is AllowSource.NONE:
        return AllowVerdict(True, "no allow-list")
    for pattern in allow.patterns:
        if "/" in pattern and fnmatchcase(target, pattern):
            return AllowVerdict(True, f"{target} allowed by {pattern!r}")
    if allow.source is AllowSource.DEPLOYMENT:
        return _refused_by_deployment(target, allow)
    return _refused_by_variable(target, allow)


def _listed(allow: AllowList, empty: str) -> str:
    if allow.problem:
        return f"nothing: it holds {allow.problem}"
    return ", ".join(allow.patterns) if allow.patterns else empty


def _refused_by_variable(target: str, allow: AllowList) -> AllowVerdict:
    name = allow.variable or DEFAULT_VARIABLE
    held = _listed(allow, "nothing: it is unset or empty")
    value = ",".join([*allow.patterns, target])
    command = f"prefect variable set {name} {shlex.quote(value)} --overwrite"
    return AllowVerdict(
        False,
        f"Service {target} is not in the allow-list of the Prefect Variable {name} ({held}); nothing was changed",
        f"To allow it, set the Prefect Variable {name} to include '{target}' ({PATTERN_FORMS}; wildcards "
        f"allowed), then emit the event again; no redeploy needed. UI: Variables; CLI: {command}",
        command)


def _refused_by_deployment(target: str, allow: AllowList) -> AllowVerdict:
    name = allow.variable or DEFAULT_VARIABLE
    held = _listed(allow, "nothing: it is empty")
    return AllowVerdict(
        False,
        f"Service {target} is not in this deployment's allow-list ({held}); nothing was changed",
        f"To allow it, add '{target}' to the trigger's allowed_services in prefect.yaml and run prefect deploy "
        f"again, or remove allowed_services there so that the Prefect Variable {name} decides (read at run time)")
