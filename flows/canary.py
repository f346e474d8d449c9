"""Canary release of a Service, step by step as in the second tutorial:

  1. preflight   read the Service and both Deployments; decide the canary and the replica plan; refuse bad input
     (hooks)     pre-release, then before-first-step
  2. canary      apply the canary beside stable (the first step's replicas) and wait until it is ready
  3. each step   (10 %, 30 %, 50 %, 100 % by default; counts from prefect_greenlight.tasks.decisions.canary.replica_counts)
       a. scale the canary UP to its count and wait until ready (fail fast on pods that never will be)
       b. scale stable DOWN to its count and wait
       c. verify  the Service's EndpointSlices hold exactly canary/stable ready pods (owner references)
       d. analyse HTTP probes of canary vs stable, Prometheus queries: Failed beyond failure_limit aborts,
                  Inconclusive pauses for a human
       e. pause   approval (approve_steps) or a timed pause; `promote --full` jumps to 100 %, reject aborts
       (hooks)   between-steps, before every step but the first (a gate for the next increase)
     (hooks)     after-last-step, at 100 %
  4. clean up    the old stable (at 0 now) is deleted, as the tutorial does, or kept at 0

Any failure after the first change aborts: stable back to its full count and READY first, then the canary to
0, verified by EndpointSlices; then the on-rollback hooks (their failure is reported, never stops the abort); the
run ends Failed. A failed hook aborts like any failed step; hooks run at most once per release (tasks/hooks/). A
cancel from Prefect (the UI's Cancel, `prefect flow-run cancel`) aborts the same way and the run ends Cancelled
(tasks/record/cancellation.py). Progress is recorded on the Service as `greenlight.io/canary-*` annotations
(`greenlight status`), one release per Service at a time (Lease, whose annotation names the flow run so
`greenlight abort --service S` can reject a paused run).
"""

from __future__ import annotations

from prefect import flow

from prefect_greenlight.tasks.canary.analysis import AnalysisContext, Outcome, combine, run_providers
from prefect_greenlight.tasks.canary.analysis.http_probe import HttpProbe
from prefect_greenlight.tasks.canary.analysis.prometheus import PrometheusQuery
from prefect_greenlight.tasks.canary.pause import pause_for_decision
from prefect_greenlight.tasks.canary.plan import plan_canary
from prefect_greenlight.tasks.canary.preflight import CanaryPlan, new_release_id, preflight
from prefect_greenlight.tasks.canary.steps import (
    apply_canary,
    record_progress,
    remove_old_stable,
    restore_stable,
    scale_step,
    verify_split,
)
from prefect_greenlight.tasks.decisions.canary import StepCounts
from prefect_greenlight.tasks.decisions.canary_progress import PASSED, move_order
from prefect_greenlight.tasks.decisions.hooks import spec_fingerprint
from prefect_greenlight.tasks.decisions.lease import RUN_ID_ANNOTATION
from prefect_greenlight.tasks.decisions.undo import UndoStack
from prefect_greenlight.tasks.errors import BadInput, CancelRequested, PermanentError, Rejected, ReleaseFailed
from prefect_greenlight.tasks.hooks.runner import HookRunner
from prefect_greenlight.tasks.kube.client import Kube, connect
from prefect_greenlight.tasks.kube.lease import ServiceLock
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.record.cancellation import (
    await_cancel,
    cancel_requested,
    ending_cancelled,
    sigterm_deferred,
)
from prefect_greenlight.tasks.record.events import ReleaseEvent
from prefect_greenlight.tasks.record.journal import Journal
from prefect_greenlight.tasks.record.plan_render import plan_text, publish_plan
from prefect_greenlight.tasks.record.report import artifact_key, say, table_artifact
from prefect_greenlight.tasks.record.starting import release_begun
from prefect_greenlight.tasks.spec.canary import CanarySpec
from prefect_greenlight.tasks.spec.hooks import HookPoint


def _providers(kube: Kube, plan: CanaryPlan) -> list:
    spec = plan.spec
    out: list = [HttpProbe(kube, spec.analysis.http, service_ports=plan.service_ports)] if spec.analysis.http else []
    return out + [PrometheusQuery(q) for q in spec.analysis.prometheus]


class CanaryRun:
    """One canary release: the plan, what happened so far, and the step methods the flow calls in order."""

    def __init__(self, kube: Kube, plan: CanaryPlan, run_id: str, journal: Journal):
        self.kube, self.plan, self.spec, self.run_id, self.journal = kube, plan, plan.spec, run_id, journal
        self.timeline = journal.timeline
        self.splits: list[dict] = []
        self.analyses: list[dict] = []
        self.failures = 0
        found_canary, found_stable = plan.found_replicas if plan.resume_message else (0, plan.total)
        passed = plan.steps[plan.resume_index - 1].percent if plan.resume_index else 0
        self.current = StepCounts(passed, found_canary, found_stable)
        self.hooks = HookRunner(kube, plan.spec.hooks, plan.hook_context(), self.timeline, plan.spec.deadlines,
                                spec_fingerprint("canary", plan.spec))
        self.phase = "canary"  # the phase a failure is reported in

    def record(self, index: int, state: str) -> None:
        p, c = self.plan, self.current
        record_progress(self.kube, p.namespace, p.service, stable=p.stable, deployment=p.canary, total=p.total,
                        steps=",".join(str(x.percent) for x in p.steps), step=f"{index}/{len(p.steps)}",
                        percent=c.percent, weight=f"{c.canary}/{c.stable}", state=state, release_id=p.release_id,
                        run_id=self.run_id)

    def move_to(self, index: int, want: StepCounts) -> None:                                     # 3a-3c
        p, deadlines = self.plan, self.spec.deadlines
        with self.timeline.step(f"step-{want.percent}") as s:
            order = move_order(self.current.canary, self.current.stable, want.canary, want.stable)
            if index == 1 and "canary" not in order:  # the first step always applies the canary's manifest
                order = ("stable", "canary") if want.stable > self.current.stable else ("canary", *order)
            for which in order:  # a raise before a lower: capacity never drops below the total
                if which == "stable":
                    scale_step(self.kube, p.namespace, p.stable, want.stable, deadlines)
                elif index == 1:  # applied with the first step's replicas: scaled up and ready in one go
                    apply_canary(self.kube, p.namespace, p.canary_manifest, deadlines)
                else:
                    scale_step(self.kube, p.namespace, p.canary, want.canary, deadlines)
            verdict = verify_split(self.kube, p.namespace, p.service, p.canary, p.stable, want,
                                   deadlines.endpoints_s)
            self.current = want
            s["detail"] = f"{want.describe()}; endpoints {verdict.message}"
        if want.stable == 0:
            self.journal.event(ReleaseEvent.SWITCHED, stable=p.stable, canary=p.canary, percent=want.percent)
        self.splits.append({"percent": want.percent, "canary": want.canary, "stable": want.stable,
                            "canary_ready": verdict.canary_ready, "stable_ready": verdict.stable_ready})
        self.record(index, "progressing")

    def analyse(self, want: StepCounts) -> None:                                                  # 3d
        providers = _providers(self.kube, self.plan)
        if not providers:
            return
        p = self.plan
        with self.timeline.step(f"analysis-{want.percent}") as s:
            results = run_providers(providers, AnalysisContext(p.namespace, p.service, p.canary, p.stable,
                                                               want.percent))
            outcome = combine(results)
            rows = [r.row(want.percent) for r in results]
            self.analyses += rows
            table_artifact(artifact_key("canary-analysis", p.service, p.release_id, f"step-{want.percent}"), rows,
                           f"Canary analysis at {want.percent} %: {outcome.value}")
            s["detail"] = f"{outcome.value}: " + "; ".join(f"{r.provider}: {r.message}" for r in results)
            say(f"analysis at {want.percent} %: {s['detail']}")
            if outcome is Outcome.FAILED:
                self.failures += 1
                if self.failures > self.spec.analysis.failure_limit:
                    raise PermanentError(f"analysis at {want.percent} % failed ({self.failures} failed, limit "
                                         f"{self.spec.analysis.failure_limit}): {s['detail']}")
        if outcome is Outcome.INCONCLUSIVE:
            self.pause(want, "inconclusive", self.spec.analysis.inconclusive_timeout_s)

    def pause(self, want: StepCounts, kind: str, timeout_s: float) -> bool:                      # 3e
        """Returns True when the answer was `promote --full`."""
        index = self.plan.steps.index(want) + 1
        self.record(index, f"paused-{kind}")
        self.journal.event(ReleaseEvent.PAUSED, canary=self.plan.canary, percent=want.percent, pause=kind)
        with self.timeline.step(f"pause-{want.percent}") as s:
            decision = pause_for_decision(kind, timeout_s, self.describe(want, kind))
            s["detail"] = decision.note()
            say(f"step {want.percent} %: {decision.note()}")
            if kind == "approval":
                self.journal.approval(f"at {want.percent} %: {decision.note()}", decision.approved)
            if not decision.approved:
                raise Rejected(f"canary at {want.percent} % {decision.note()}")
        return decision.full

    def describe(self, want: StepCounts, kind: str) -> str:
        p = self.plan
        lines = [f"### Canary `{p.canary}` of Service `{p.service}` at {want.percent} % ({kind})", "",
                 f"- {want.canary} canary / {want.stable} stable pods (total {p.total})",
                 f"- stable `{p.stable}` `{p.stable_image}` · canary `{', '.join(p.canary_images)}`",
                 f"- remaining steps: {', '.join(s.describe() for s in p.steps if s.percent > want.percent)}"]
        lines += [f"- analysis {r['provider']}: {r['outcome']} {r['message']}" for r in self.analyses
                  if r["step"] == f"{want.percent} %"]
        lines += ["", "Tick **approve** to go on (and **full** to go straight to 100 %); unticked aborts."]
        return "\n".join(lines)

    def run_steps(self, lock: ServiceLock) -> None:
        """Every step in order; after `promote --full` jump to the last step and skip its analysis and pause."""
        steps, last = list(self.plan.steps), len(self.plan.steps) - 1
        i, promoted_full = self.plan.resume_index, False
        self.hooks.run(HookPoint.PRE_RELEASE, lock)
        self.hooks.run(HookPoint.BEFORE_FIRST_STEP, lock)
        while i <= last:
            want = steps[i]
            if i:
                self.hooks.run(HookPoint.BETWEEN_STEPS, lock, self.current.percent, want.percent)
            lock.check()
            self.move_to(i + 1, want)
            if promoted_full:
                break
            self.analyse(want)
            if want.percent in self.spec.approve_steps:
                promoted_full = self.pause(want, "approval", self.spec.approval_timeout_s)
            elif self.spec.pause_s > 0 and i < last:
                promoted_full = self.pause(want, "timed", self.spec.pause_s)
            self.record(i + 1, PASSED)  # a re-run resumes after this step, not at it
            if promoted_full and i < last:
                say(f"promote --full: straight to {steps[last].describe()}, no further analysis")
                i = last
            else:
                promoted_full, i = False, i + 1
        self.hooks.run(HookPoint.AFTER_LAST_STEP, lock)

    def steps_and_cleanup(self, lock: ServiceLock) -> None:
        """Steps 2-4: every step in order, then the old stable removed; `phase` follows along."""
        p = self.plan
        at = p.resume_index  # 0, or a resumed run: the steps before it passed
        self.record(at, PASSED if at else "progressing")
        self.hooks.begin()
        self.phase = "steps"
        self.run_steps(lock)
        self.phase = "cleanup"
        lock.check()
        with self.timeline.step("cleanup") as s:
            s["detail"] = remove_old_stable(self.kube, p.namespace, p.stable, self.spec.cleanup.value)
            say(s["detail"])
        self.record(len(p.steps), "promoted")

    def result(self, outcome: str) -> dict:
        p = self.plan
        return {"outcome": outcome, "service": p.service, "namespace": p.namespace, "release_id": p.release_id,
                "stable": p.stable, "canary": p.canary, "total": p.total,
                "live_deployment": p.canary if outcome == "released" else p.stable,
                "plan": [s.describe() for s in p.steps], "splits": self.splits, "analysis": self.analyses,
                "steps": self.timeline.rows(), **({"hooks": self.hooks.rows()} if self.hooks.runs else {})}

    def split_lines(self) -> str:
        return "\n".join(f"- {s['percent']} %: {s['canary_ready']} canary / {s['stable_ready']} stable ready"
                         for s in self.splits)


def _planned_steps(spec: CanarySpec) -> int:
    """Steps the progress artifact counts to: preflight, each step (and its analysis), approvals, hooks, cleanup."""
    analysed = bool(spec.analysis.http or spec.analysis.prometheus)
    hooks = sum((len(spec.steps) - 1) if h.at is HookPoint.BETWEEN_STEPS else h.at is not HookPoint.ON_ROLLBACK
                for h in spec.hooks)
    return 2 + len(spec.steps) * (1 + analysed) + len(spec.approve_steps) + hooks


def _dry_run(kube: Kube, run: CanaryRun) -> dict:
    """The plan instead of the release: printed, a markdown artifact of the run, and the result's `plan`."""
    plan = plan_canary(kube, run.plan)
    publish_plan(plan, run.plan.release_id)
    return {**run.result("dry-run"), "plan": plan.as_dict(), "plan_text": plan_text(plan),
            "steps_planned": [s.describe() for s in run.plan.steps]}


def _abort(run: CanaryRun, undo: UndoStack, phase: str, exc: Exception) -> ReleaseFailed:
    """Undo (stable back first, then the canary to 0, verified), then the on-rollback hooks; the outcome recorded
    on the Service and in the report. Returns the failure to raise."""
    plan, kube, cancelled = run.plan, run.kube, isinstance(exc, CancelRequested)
    say(f"canary {'cancelled' if cancelled else 'failed'} during {phase}: {exc}; aborting (stable {plan.stable} "
        f"back to {plan.total})")
    with sigterm_deferred(), run.timeline.step("abort"):
        outcomes = undo.unwind()
    failure = ReleaseFailed(reason=str(exc), phase=phase, undo=outcomes, notes=run.hooks.on_rollback(),
                            cancelled=cancelled)
    try:
        run.current = StepCounts(0, 0, plan.total)
        run.record(0, "aborted" if failure.rolled_back else "abort-incomplete")
    except Exception as note_exc:  # noqa: BLE001 - the record is a report; the failure is what counts
        say(f"could not record the abort on the Service: {note_exc}")
    if not failure.rolled_back:
        outcome = "rollback-incomplete"
    else:
        outcome = "cancelled" if cancelled else "rejected" if isinstance(exc, Rejected) else "aborted"
    run.hooks.finish(outcome)
    run.journal.finish(outcome, from_deployment=plan.stable, to_deployment=plan.canary, images=plan.canary_images,
                       after=endpoint_counts(kube, plan.namespace, plan.service), reason=f"{phase}: {exc}",
                       details=f"### Steps\n\n{run.split_lines()}\n\n### Abort\n\n{failure}\n\n"
                               f"{run.hooks.markdown()}")
    return failure


def run_canary(kube: Kube, spec: CanarySpec, release_id: str, run_id: str = "", dry_run: bool = False) -> dict:
    journal = Journal(kube, spec.namespace, spec.service, release_id, "canary", _planned_steps(spec))
    timeline = journal.timeline
    with timeline.step("preflight") as s:                                                         # 1
        plan = preflight(kube, spec, release_id)
        s["detail"] = f"{plan.stable} -> {plan.canary}: " + ", ".join(x.describe() for x in plan.steps)
    for warning in plan.warnings:
        say(f"warning: {warning}")
    if plan.resume_message:
        say(plan.resume_message)
    run = CanaryRun(kube, plan, run_id, journal)
    if dry_run:
        return _dry_run(kube, run)
    with ServiceLock(kube, spec.namespace, spec.service, plan.release_id, wait_s=spec.lock_wait_s,
                     annotations={RUN_ID_ANNOTATION: run_id, "greenlight.io/strategy": "canary"}) as lock:
        journal.started(endpoint_counts(kube, plan.namespace, plan.service), stable=plan.stable,
                        canary=plan.canary, images=plan.canary_images, steps=[x.percent for x in plan.steps])
        undo = UndoStack()
        undo.push(f"abort: {plan.stable} back to {plan.total}, then {plan.canary} to 0", lambda: restore_stable(
            kube, plan.namespace, plan.service, plan.stable, plan.canary, plan.total, spec.deadlines))
        try:
            try:
                run.steps_and_cleanup(lock)                                                       # 2-4
            except BadInput:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure after the first change aborts
                await_cancel()  # the failure may be a cancel arriving early: then it raises TerminationSignal
                raise _abort(run, undo, run.phase, exc) from exc
        except BaseException as exc:  # Prefect's TerminationSignal: a cancel aborts, then ends Cancelled
            cancel = cancel_requested(exc)
            if cancel is not None:
                with sigterm_deferred():
                    say(str(_abort(run, undo, run.phase, cancel)))
            raise
        run.hooks.finish("released")
    journal.finish("released", from_deployment=plan.stable, to_deployment=plan.canary, images=plan.canary_images,
                   after=endpoint_counts(kube, plan.namespace, plan.service),
                   details=f"### Steps\n\n{run.split_lines()}\n\n{run.hooks.markdown()}")
    say(f"released: Service {plan.service} serves {plan.canary} ({plan.total} pods)")
    return run.result("released")


def _flow_run_id() -> str:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else ""


@flow(name="canary-release", log_prints=True)
def canary_release(spec: CanarySpec, kubeconfig: str | None = None, context: str | None = None,
                   dry_run: bool = False, cluster_config: str | None = None) -> dict:
    """Release `spec` as a canary (`dry_run`: only its plan). Kubernetes credentials: kubeconfig/context, the
    KubernetesClusterConfig block named `cluster_config`, $KUBECONFIG, or in-cluster.

    Args:
        cluster_config: Name of a Prefect KubernetesClusterConfig block (prefect-kubernetes) holding the cluster's
            kubeconfig, instead of `kubeconfig`; `context` picks another of its contexts.
    """
    release_begun()
    return ending_cancelled(lambda: run_canary(connect(kubeconfig, context, cluster_config), spec,
                                               spec.release_id or new_release_id(), _flow_run_id(), dry_run))
