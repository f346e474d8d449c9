"""Running a release's hooks inside its flow: each hook a step of the timeline (`hook-<name>`, between canary
steps `hook-<name>-<percent>`), recorded on the Service when it completed so it runs at most once per release
(tasks/decisions/hooks.py: the record, the fingerprint), reported in the run's markdown report with the last lines
of a Job's pods' logs.

A failed hook raises PermanentError in its step, so the flow undoes what it changed exactly as for any other
failed step (what that means at each point: FAILURE_EFFECT). `on_rollback` is the exception: its hooks run after
the undo, and a failure is a note on the failure, never an undo that failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_greenlight.tasks.decisions.hooks import (
    HOOKS_ANNOTATION,
    HookContext,
    HookRecord,
    delivery_id,
    hook_key,
    read_hook_record,
    record_for,
    safe_url,
    step_name,
    webhook_payload,
)
from prefect_greenlight.tasks.errors import PermanentError
from prefect_greenlight.tasks.hooks.job import run_job
from prefect_greenlight.tasks.hooks.webhook import call_webhook
from prefect_greenlight.tasks.kube.client import Kube, raw_patch, read, retrying
from prefect_greenlight.tasks.record.report import Timeline, say
from prefect_greenlight.tasks.spec import Deadlines, Hook, HookPoint


@dataclass
class HookRun:
    step: str
    point: str
    target: str  # "Job <name>" or the webhook's URL without its query
    ok: bool
    detail: str
    logs: list[tuple[str, list[str]]] = field(default_factory=list)
    skipped: bool = False

    def row(self) -> dict:
        return {"step": self.step, "point": self.point, "target": self.target, "ok": self.ok,
                "skipped": self.skipped, "detail": self.detail,
                "logs": [{"pod": pod, "lines": lines} for pod, lines in self.logs]}


@task(name="hook", cache_policy=NO_CACHE, task_run_name="{step}")
def run_hook(kube: Kube, hook: Hook, step: str, key: str, ctx: HookContext, record: HookRecord, service_uid: str,
             deadlines: Deadlines, percent: int | None = None, next_percent: int | None = None) -> HookRun:
    """One hook, once: a Job (created or adopted, waited for, its logs read) or a webhook call."""
    if hook.job is not None:
        out = run_job(kube, hook, ctx, key, record.key, service_uid, deadlines)
        return HookRun(step, hook.at.value, f"Job {out.job}", out.ok, out.detail, out.logs)
    assert hook.webhook is not None
    payload = webhook_payload(ctx, hook, step, delivery_id(record.key, key), percent, next_percent)
    ok, detail = call_webhook(hook.webhook, payload, delivery_id(record.key, key))
    say(f"hook {hook.name}: POST {safe_url(hook.webhook.url)}: {detail}")
    return HookRun(step, hook.at.value, f"POST {safe_url(hook.webhook.url)}", ok, detail)


class HookRunner:
    """The hooks of one release run. Without hooks every method is a no-op (and nothing is written)."""

    def __init__(self, kube: Kube, hooks: list[Hook], ctx: HookContext, timeline: Timeline, deadlines: Deadlines,
                 fingerprint: str):
        self.kube, self.hooks, self.ctx, self.timeline = kube, list(hooks), ctx, timeline
        self.deadlines, self.fingerprint = deadlines, fingerprint
        self.record: HookRecord | None = None
        self.service_uid = ""
        self.runs: list[HookRun] = []

    def at(self, point: HookPoint) -> list[Hook]:
        return [h for h in self.hooks if h.at is point]

    # -- the record on the Service ------------------------------------------------------------------------
    def begin(self) -> None:
        """Adopt this release's record (a re-run after a kill) or start a new one; under the release's Lease."""
        if not self.hooks:
            return
        service = read(self.kube, "Service", self.ctx.namespace, self.ctx.service)
        if service is None:
            raise PermanentError(f"Service {self.ctx.namespace}/{self.ctx.service} disappeared")
        self.service_uid = service["metadata"]["uid"]
        self.record = record_for(read_hook_record(service), self.fingerprint, self.ctx.release_id)
        if self.record.key != self.ctx.release_id:
            done = ", ".join(self.record.done) or "none"
            say(f"hooks: continuing release {self.record.key} (an earlier run of the same release); hooks "
                f"completed then do not run again: {done}")
        self._write()

    def _write(self) -> None:
        assert self.record is not None
        body = {"metadata": {"annotations": {HOOKS_ANNOTATION: self.record.annotation()}}}
        retrying(f"record hooks on Service {self.ctx.namespace}/{self.ctx.service}", lambda: raw_patch(
            self.kube, "Service", self.ctx.namespace, self.ctx.service, body, "application/merge-patch+json"))

    def finish(self, outcome: str) -> None:
        """The release ended: the next one starts a new record. A report, never a failure."""
        if self.record is None:
            return
        self.record = self.record.finished_as(outcome)
        try:
            self._write()
        except Exception as exc:  # noqa: BLE001
            say(f"could not mark the hooks record finished: {exc}")

    # -- running ------------------------------------------------------------------------------------------
    def run(self, point: HookPoint, lock=None, percent: int | None = None, next_percent: int | None = None) -> None:
        """Every hook at `point`, in the spec's order; the first failure raises (PermanentError)."""
        for hook in self.at(point):
            self._step(hook, lock, percent, next_percent)

    def _step(self, hook: Hook, lock, percent: int | None, next_percent: int | None) -> None:
        with self.timeline.step(step_name(hook, percent)) as s:
            s["detail"] = self.run_one(hook, lock, percent, next_percent)

    def run_one(self, hook: Hook, lock=None, percent: int | None = None, next_percent: int | None = None) -> str:
        """One hook, once per release (the engine's hook step; the timeline row is the engine's): its detail, or
        PermanentError when it failed."""
        run = self._once(hook, step_name(hook, percent), lock, percent, next_percent)
        if not run.ok:
            raise PermanentError(f"hook {hook.name} ({hook.at.value}) failed: {run.detail}")
        return run.detail

    def _once(self, hook: Hook, step: str, lock, percent: int | None, next_percent: int | None) -> HookRun:
        assert self.record is not None, "begin() first"
        key = hook_key(hook, percent)
        if key in self.record.done:
            run = HookRun(step, hook.at.value, "", True, f"already ran in this release: {self.record.done[key]}",
                          skipped=True)
            say(f"hook {hook.name}: {run.detail}")
        else:
            if lock is not None and hook.job is not None:
                lock.check()  # a Job is a change: only while the Lease is certainly ours
            try:
                run = run_hook(self.kube, hook, step, key, self.ctx, self.record, self.service_uid, self.deadlines,
                               percent, next_percent)
            except Exception as exc:  # noqa: BLE001 - e.g. the apiserver refused the Job: the hook failed
                run = HookRun(step, hook.at.value, hook.kind, False, str(exc).splitlines()[0][:300] if str(exc)
                              else type(exc).__name__)
            if run.ok:
                self.record = self.record.with_done(key, f"{run.target}: {run.detail}")
                self._write()
        self.runs.append(run)
        return run

    def on_rollback(self) -> list[str]:
        """The on-rollback hooks, after the undo: each outcome as a note; a failure never stops anything."""
        notes = []
        for hook in self.at(HookPoint.ON_ROLLBACK):
            try:
                self._step(hook, None, None, None)
                notes.append(f"ok: on-rollback hook {hook.name} ({self.runs[-1].detail})")
            except Exception as exc:  # noqa: BLE001 - reported, and the rollback stands
                notes.append(f"FAILED: on-rollback hook {hook.name} ({exc})")
        return notes

    # -- reporting ----------------------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        return [r.row() for r in self.runs]

    def markdown(self) -> str:
        if not self.runs:
            return ""
        lines = ["### Hooks", "", "| step | point | runs | ok | detail |", "|---|---|---|---|---|"]
        lines += [f"| {r.step} | {r.point} | {r.target or '-'} | {'yes' if r.ok else 'NO'}"
                  f"{' (skipped)' if r.skipped else ''} | {r.detail.replace('|', '/')} |" for r in self.runs]
        for r in self.runs:
            for pod, log_lines in r.logs:
                lines += ["", f"**{r.step}: last log lines of pod `{pod}`**", "", "```", *log_lines, "```"]
        return "\n".join(lines)
