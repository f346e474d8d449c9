"""The hooks' steps in a plan (`--dry-run`), under the names the run's timeline gives them (`hook-<name>`,
between canary steps `hook-<name>-<percent>`), inserted by position into the blue-green and canary plans. Pure.

A Job hook is a change (the Job greenlight creates, its image, its deadline and TTL); a webhook is a gate. Each
says what its failure does at its point. A hook this release already ran (a re-run after a kill: the Service's
record) is planned as skipped. `on-rollback` hooks are no step of a run that succeeds: the plan's facts name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect_greenlight.tasks.decisions.hooks import (
    FAILURE_EFFECT,
    HookRecord,
    hook_key,
    job_images,
    job_name,
    read_hook_record,
    record_for,
    released_image,
    safe_url,
    spec_fingerprint,
    step_name,
)
from prefect_greenlight.tasks.decisions.plan import PlanStep, StepKind
from prefect_greenlight.tasks.spec.hooks import Hook, HookPoint

PAYLOAD = "release_id, service, namespace, strategy, blue, green, images, step, phase, hook, delivery"


def _command(container: dict) -> str:
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    return " ".join(map(str, words)) or "(the image's entrypoint)"


def _job_step(hook: Hook, step: str, key: str, record: HookRecord, green_image: str) -> PlanStep:
    job = hook.job
    assert job is not None
    name = job_name(hook, record.key, key)
    spec = job.manifest.get("spec") or {}
    images = job_images(hook, green_image)
    containers = spec["template"]["spec"]["containers"]
    details = tuple(f"container {c.get('name')}: {image} {_command(c)}" for c, image in zip(containers, images))
    backoff = spec.get("backoffLimit", 0)
    deadline = spec.get("activeDeadlineSeconds", max(1, int(job.timeout_s)))
    ttl = spec.get("ttlSecondsAfterFinished", job.ttl_s)
    change = (f"create Job {name} ({', '.join(images)}{'; the green image substituted' if job.green_image else ''}),"
              f" labelled greenlight.io/hook={hook.name} and owned by the Service; wait until it is Complete; its "
              f"pods' last {job.log_lines} log lines go in the report")
    return PlanStep(step, StepKind.CHANGE, f"Job {name}", change, details=details,
                    gate=(f"Complete within {job.timeout_s:.0f} s; fails fast on BackoffLimitExceeded (backoffLimit "
                          f"{backoff}), DeadlineExceeded (activeDeadlineSeconds {deadline}) and its pods' doom reasons "
                          f"(pull errors, crash loops, config errors); {FAILURE_EFFECT[hook.at]}"),
                    undo=f"none: the Job stays for inspection, removed {ttl} s after it finished (its TTL)")


def _webhook_step(hook: Hook, step: str) -> PlanStep:
    w = hook.webhook
    assert w is not None
    headers = f" with the headers {w.header_summary()}" if w.headers or w.secret_headers else ""
    return PlanStep(step, StepKind.GATE, f"POST {safe_url(w.url)}",
                    f"POST the release as JSON ({PAYLOAD}){headers}; nothing changes",
                    gate=f"an answer 2xx within {w.timeout_s:g} s goes on; any other status, no answer or a timeout "
                         f"fails it: {FAILURE_EFFECT[hook.at]}")


@dataclass(frozen=True)
class HookPlan:
    """The release's hooks with what the plan needs to name their steps: the record the run would use (a new one,
    or this release's unfinished one) and the image a Job gets with green_image."""

    hooks: tuple[Hook, ...] = ()
    record: HookRecord = field(default_factory=lambda: HookRecord("", ""))
    green_image: str = ""

    def steps(self, point: HookPoint, percent: int | None = None) -> tuple[PlanStep, ...]:
        return tuple(self.step(hook, percent) for hook in self.hooks if hook.at is point)

    def step(self, hook: Hook, percent: int | None = None) -> PlanStep:
        """One hook's plan line (skipped when this release already ran it)."""
        step, key = step_name(hook, percent), hook_key(hook, percent)
        if key in self.record.done:
            return PlanStep(step, StepKind.CHECK, "", f"skipped: already ran in this release "
                                                      f"({self.record.done[key]})")
        if hook.job is not None:
            return _job_step(hook, step, key, self.record, self.green_image)
        return _webhook_step(hook, step)

    def facts(self) -> tuple[str, ...]:
        """Every hook found, by point; on-rollback ones run only if the release is undone."""
        lines = []
        for h in self.hooks:
            what = f"Job ({', '.join(job_images(h, self.green_image))})" if h.job is not None else \
                f"webhook POST {safe_url(h.webhook.url)}"  # type: ignore[union-attr]
            when = " (runs only if the release rolls back, after the undo)" if h.at is HookPoint.ON_ROLLBACK else ""
            lines.append(f"{h.at.value}: {h.name}: {what}{when}")
        if self.record.done:
            lines.append(f"this release ran before (release {self.record.key}): {', '.join(self.record.done)} "
                         "completed and will not run again")
        return tuple(lines)


def planned_hooks(spec: Any, strategy: str, service: dict, release_id: str, images: list[str]) -> HookPlan:
    """The HookPlan of a release as a run would start it now: with the Service's record of this release when it
    is unfinished (a re-run after a kill), else a new one under `release_id`."""
    record = record_for(read_hook_record(service), spec_fingerprint(strategy, spec), release_id)
    return HookPlan(tuple(spec.hooks), record, released_image(spec, images))


NO_HOOKS = HookPlan()
