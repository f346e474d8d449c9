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

from enum import Enum
from typing import Any

from pydantic import Field, model_validator

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


class WebhookHook(SpecModel):
    """A POST with the release as JSON: 2xx means go; any other status, no answer or a timeout fails the hook."""

    url: str = Field(..., max_length=2048, pattern=r"^https?://[^\s/]+(/\S*)?$", description="Where to POST.")
    timeout_s: float = Field(10.0, gt=0, le=600, description="The answer must come within this.")


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
