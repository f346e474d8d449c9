"""Hooks: the user's own steps inside a release, at named points (issue 14). Shared by both specs.

A hook is a Kubernetes **Job** (a migration in the new image: `alembic upgrade head`, `rails db:migrate`) or an
HTTP **webhook** gate (Flagger's model: a POST with the release as JSON; 2xx means go, anything else or a timeout
fails the hook). Points:

- both strategies: `pre-release` (before anything is applied), `on-rollback` (after a failed release was undone;
  its failure is reported and never stops the rollback);
- blue-green: `pre-switch` (after the smoke test, before the approval and the switch), `post-switch` (after the
  EndpointSlices verified the switch; a failure switches back, verified);
- canary: `before-first-step`, `between-steps` (before each step but the first), `after-last-step` (at 100 %,
  before the old stable is removed).

A hook runs at most once per release, also when the release is run again after its process was killed (recorded
on the Service, and a Job by its own existence: tasks/decisions/hooks.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from prefect_greenlight.tasks.spec.common import Name, Seconds, SpecModel
from prefect_greenlight.tasks.spec.manifest_param import Manifest


class HookPoint(str, Enum):
    PRE_RELEASE = "pre-release"
    PRE_SWITCH = "pre-switch"
    POST_SWITCH = "post-switch"
    ON_ROLLBACK = "on-rollback"
    BEFORE_FIRST_STEP = "before-first-step"
    BETWEEN_STEPS = "between-steps"
    AFTER_LAST_STEP = "after-last-step"


BLUE_GREEN_POINTS = (HookPoint.PRE_RELEASE, HookPoint.PRE_SWITCH, HookPoint.POST_SWITCH, HookPoint.ON_ROLLBACK)
CANARY_POINTS = (HookPoint.PRE_RELEASE, HookPoint.BEFORE_FIRST_STEP, HookPoint.BETWEEN_STEPS,
                 HookPoint.AFTER_LAST_STEP, HookPoint.ON_ROLLBACK)
RESTART_POLICIES = ("Never", "OnFailure")


def job_problems(manifest: dict[str, Any], container: str | None) -> list[str]:
    """What makes `manifest` unusable as a hook Job (each naming the field), before the apiserver is asked."""
    problems = []
    if manifest.get("apiVersion") != "batch/v1" or manifest.get("kind") != "Job":
        problems.append(f"must be a batch/v1 Job, not {manifest.get('apiVersion')}/{manifest.get('kind')}")
    template = ((manifest.get("spec") or {}).get("template") or {})
    pod = template.get("spec") if isinstance(template, dict) else None
    containers = (pod or {}).get("containers") if isinstance(pod, dict) else None
    if not isinstance(containers, list) or not containers or not all(isinstance(c, dict) for c in containers):
        return problems + ["spec.template.spec.containers: a Job needs at least one container"]
    policy = pod.get("restartPolicy")
    if policy is not None and policy not in RESTART_POLICIES:
        problems.append(f"spec.template.spec.restartPolicy {policy!r}: a Job's pods restart Never or OnFailure")
    names = [c.get("name") for c in containers]
    if container is not None and container not in names:
        problems.append(f"container {container!r} is not among the Job's containers {names}")
    return problems


class JobHook(SpecModel):
    """A Kubernetes Job greenlight creates (named `<hook>-<8 hex>`, labelled and owned by the Service), waits
    for, and reports with the last lines of its pods' logs."""

    manifest: Manifest = Field(..., description="The Job (batch/v1), inline; `greenlight --spec` also reads "
                               "`manifest_file: PATH` (relative to the spec file).")
    green_image: bool = Field(False, description="Run the release's new image: every container (or `container`) "
                              "gets it.")
    container: str | None = Field(None, description="With green_image: the only container that gets it.")
    timeout_s: Seconds = Field(600, gt=0, description="The Job must be Complete within this (also its "
                               "activeDeadlineSeconds unless the manifest sets one).")
    ttl_s: int = Field(3600, ge=0, le=7 * 86400, description="ttlSecondsAfterFinished unless the manifest sets "
                       "one: the Job and its pods are removed this long after it finished.")
    log_lines: int = Field(20, ge=0, le=1000, description="Last log lines of each pod put in the report.")

    @model_validator(mode="after")
    def _a_job(self) -> JobHook:
        problems = job_problems(self.manifest, self.container)
        if problems:
            raise ValueError("manifest: " + "; ".join(problems))
        if self.container is not None and not self.green_image:
            raise ValueError("container names where the green image goes: it needs green_image: true")
        return self


# RFC 9110: a header name is a token; a value visible ASCII with inner spaces or tabs (no line breaks: a value
# with one would be refused by the HTTP client with an error quoting it). Prefect's block document names.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
HEADER_VALUE = re.compile(r"[\x21-\x7e]([\t\x20-\x7e]*[\x21-\x7e])?")
_BLOCK_DOCUMENT_NAME = re.compile(r"[a-z0-9-]+")
# Set by greenlight (Idempotency-Key, the JSON body) or by the HTTP client itself: a spec cannot replace them.
RESERVED_HEADERS = ("content-length", "content-type", "host", "idempotency-key", "transfer-encoding", "connection")


def header_name_problem(name: str) -> str | None:
    if not _TOKEN.fullmatch(name):
        return (f"header name {name!r}: an HTTP header name is letters, digits and !#$%&'*+-.^_`|~ (no spaces, "
                "no colon)")
    if name.lower() in RESERVED_HEADERS:
        return f"header {name!r} is set by greenlight or the HTTP client: it cannot be given"
    return None


def secret_block_problem(name: str) -> str | None:
    if not _BLOCK_DOCUMENT_NAME.fullmatch(name):
        return (f"Secret block name {name!r}: a Prefect block document name is lowercase letters, digits and "
                "dashes (e.g. gate-token)")
    return None


def _checked(problem: Callable[[str], str | None]) -> AfterValidator:
    """A pydantic validator raising `problem`'s own sentence (clearer than a regex in pydantic's message)."""
    def check(value: str) -> str:
        found = problem(value)
        if found:
            raise ValueError(found)
        return value
    return AfterValidator(check)


def _header_value(value: str) -> str:
    if not HEADER_VALUE.fullmatch(value):
        raise ValueError("a header value is visible ASCII with inner spaces (no line breaks, no leading or "
                         "trailing space, not empty)")
    return value


def _pattern(regex: re.Pattern) -> dict[str, str]:
    return {"pattern": f"^{regex.pattern}$"}  # for the JSON schema (the deployment's form); the validators decide


HeaderName = Annotated[str, Field(min_length=1, max_length=256, json_schema_extra=_pattern(_TOKEN)),
                       _checked(header_name_problem)]
SecretBlockName = Annotated[str, Field(min_length=1, max_length=255, json_schema_extra=_pattern(_BLOCK_DOCUMENT_NAME)),
                            _checked(secret_block_problem)]
HeaderValue = Annotated[str, Field(max_length=8192, json_schema_extra=_pattern(HEADER_VALUE)),
                        AfterValidator(_header_value)]


class WebhookHook(SpecModel):
    """A POST with the release as JSON: 2xx means go; any other status, no answer or a timeout fails the hook."""

    url: str = Field(..., max_length=2048, pattern=r"^https?://[^\s/]+(/\S*)?$", description="Where to POST.")
    timeout_s: float = Field(10.0, gt=0, le=600, description="The answer must come within this.")
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, max_length=32, description="Extra request headers, name to value, sent as given. "
        "They are part of the spec (the flow run's parameters, the plan): never a credential; use secret_headers.")
    secret_headers: dict[HeaderName, SecretBlockName] = Field(
        default_factory=dict, max_length=32, description="Request headers whose values are Prefect Secret blocks: "
        "header name to the NAME of a `Secret` block (e.g. `Authorization: gate-token`, the block holding "
        "`Bearer ...`). Only the name is in the spec; the value is loaded when the hook is called (and every block "
        "is loaded at preflight: a missing one refuses the release before anything changes) and never logged, "
        "reported or put in a parameter.")

    @model_validator(mode="after")
    def _headers_once(self) -> WebhookHook:
        names = [n.lower() for n in (*self.headers, *self.secret_headers)]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"headers {', '.join(twice)} given more than once (names are case-insensitive; "
                             "in headers and secret_headers together)")
        return self

    def header_summary(self) -> str:
        """The headers by name, each secret one with its block's name: what a plan or report may show."""
        return ", ".join([*self.headers, *(f"{h} (Prefect Secret block {b})" for h, b in self.secret_headers.items())])


class Hook(SpecModel):
    name: Name = Field(..., description="Unique among the release's hooks; the timeline shows `hook-<name>`.")
    at: HookPoint = Field(..., description="When it runs (see tasks/spec/hooks.py for each strategy's points).")
    job: JobHook | None = Field(None, description="A Kubernetes Job.")
    webhook: WebhookHook | None = Field(None, description="An HTTP gate.")

    @model_validator(mode="after")
    def _one_kind(self) -> Hook:
        if (self.job is None) == (self.webhook is None):
            raise ValueError("give exactly one of job or webhook")
        return self

    @property
    def kind(self) -> str:
        return "job" if self.job is not None else "webhook"


def check_hooks(hooks: list[Hook], allowed: tuple[HookPoint, ...], strategy: str) -> None:
    """ValueError (a field error of the spec) for a point the strategy has not, or a name used twice."""
    wrong = [f"{h.name} ({h.at.value})" for h in hooks if h.at not in allowed]
    if wrong:
        raise ValueError(f"hooks {', '.join(wrong)}: a {strategy} release has the points "
                         f"{', '.join(p.value for p in allowed)}")
    names = [h.name for h in hooks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"hook names must be unique: {', '.join(twice)} used more than once")
