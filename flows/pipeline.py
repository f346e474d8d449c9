"""Promotion pipeline (issue 16): the same new version through ordered stages, each stage one or more targets in
any cluster of the kubeconfig, every target an ordinary release run as a child flow (subflow) with its own report.

  1. resolve        every target's cluster (kubeconfig context or cluster block) and release spec
  2. preflight      every target's own release pre-flight, all before the first change in any cluster (exit 2)
  3. resume         targets whose Service history says this pipeline already released them are skipped
  4. per stage      its targets in parallel up to max_parallel (child flows tagged with pipeline, stage, target)
     on failure     the failed release rolled itself back; the policy rolls back the stage's other released targets
                    (stage) or every released target so far, newest stage first (atomic), each rollback verified
     gate           before the next stage: automatic, a manual approval form (the stage's results), or a soak
  5. report         a markdown artifact with stages × targets (outcome, seconds, what each Service serves now)

Events `greenlight.pipeline.started|stage-passed|paused|failed|completed` about `greenlight.pipeline.<id>`.
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from prefect import flow

from prefect_greenlight.tasks.decisions.pause import AUTOMATIC, Decision, PauseKind
from prefect_greenlight.tasks.decisions.pipeline import (
    RELEASED,
    TargetOutcome,
    pipeline_outcome,
    resume_point,
    stage_table,
    target_done,
    to_roll_back,
)
from prefect_greenlight.tasks.errors import PipelineFailed
from prefect_greenlight.tasks.pipeline.targets import (
    PipelineTarget,
    SoakFailed,
    history_of,
    preflight_all,
    resolve,
    serving_now,
    soak,
)
from prefect_greenlight.tasks.prefect_adapter.pause import pause_run
from prefect_greenlight.tasks.record.events import PipelineEvent, emit_pipeline
from prefect_greenlight.tasks.record.history import pipeline_tags
from prefect_greenlight.tasks.record.report import artifact_key, markdown_artifact, say
from prefect_greenlight.tasks.spec.pipeline import GateMode, PipelineSpec, Strategy


def new_pipeline_id() -> str:
    return "pl-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]


def _child(t: PipelineTarget, pipeline_id: str, kubeconfig: str | None, *, dry_run: bool = False,
           rollback: bool = False) -> dict:
    """One target's release (or its rollback) as a child flow run, tagged with the pipeline, stage and target
    (the release writes them into the Service's history entry)."""
    from prefect import tags

    from prefect_greenlight.flows.blue_green import blue_green_release
    from prefect_greenlight.flows.canary import canary_release
    from prefect_greenlight.flows.rollback import rollback_release
    from prefect_greenlight.tasks.pipeline.targets import target_credentials

    kubeconfig, context, block = target_credentials(t.target, kubeconfig)
    with tags(*pipeline_tags(pipeline_id, t.stage.name, t.name)):
        if rollback:
            return rollback_release.with_options(flow_run_name=f"{pipeline_id}-{t.name}-rollback")(
                namespace=t.target.namespace, service=t.target.service, cleanup=t.spec.cleanup,
                deadlines=t.spec.deadlines, kubeconfig=kubeconfig, context=context, cluster_config=block)
        release = canary_release if t.target.strategy is Strategy.CANARY else blue_green_release
        return release.with_options(flow_run_name=f"{pipeline_id}-{t.name}")(
            spec=t.spec, kubeconfig=kubeconfig, context=context, cluster_config=block, dry_run=dry_run)


class PipelineRun:
    """The rows of the report (one per target) and the stage loop's state."""

    def __init__(self, spec: PipelineSpec, pipeline_id: str, kubeconfig: str | None,
                 stages: list[list[PipelineTarget]], t0: float):
        self.spec, self.pipeline_id, self.kubeconfig, self.stages = spec, pipeline_id, kubeconfig, stages
        self.rows = {(t.stage_index, t.name): {
            "stage": t.stage.name, "target": t.name, "context": t.target.cluster,
            "namespace": t.target.namespace, "service": t.target.service, "strategy": t.target.strategy.value,
            "outcome": TargetOutcome.NOT_STARTED.value, "seconds": 0.0, "reason": ""} for row in stages for t in row}
        self.t0 = t0  # the run's start, before resolve and pre-flight
        self.gates: list[dict] = []  # every gate's answer: who, why, how

    def row(self, t: PipelineTarget) -> dict:
        return self.rows[(t.stage_index, t.name)]

    # -- step 4: one stage
    def release_stage(self, targets: list[PipelineTarget], max_parallel: int) -> list[PipelineTarget]:
        """Release the stage's targets (up to max_parallel at once; none starts after one failed). Returns the
        failed targets."""
        stop = threading.Event()

        def one(t: PipelineTarget) -> None:
            if stop.is_set():
                return
            t0 = time.monotonic()
            try:
                result = _child(t, self.pipeline_id, self.kubeconfig)
                self.row(t).update(outcome=TargetOutcome.RELEASED.value, release=result.get("outcome"))
            except Exception as exc:  # noqa: BLE001 - the release rolled itself back; the policy decides the rest
                stop.set()
                self.row(t).update(outcome=TargetOutcome.FAILED.value, reason=str(exc)[:500])
            self.row(t)["seconds"] = round(time.monotonic() - t0, 1)

        with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(targets))),
                                thread_name_prefix="greenlight-target") as pool:
            # each child flow needs the pipeline's flow-run context: one copy of it per target, taken here in the
            # pipeline's thread (a copy taken in the worker thread would be the worker's empty context)
            for future in [pool.submit(contextvars.copy_context().run, one, t) for t in targets]:
                future.result()
        return [t for t in targets if self.row(t)["outcome"] == TargetOutcome.FAILED.value]

    def roll_back(self, policy: str, failed_stage: int, only: list[str] | None = None) -> list[str]:
        """Roll back what `policy` says, newest first; `only`: under policy `target`, these released targets
        (they failed the soak gate after their release passed)."""
        released = [[t.name for t in row if self.row(t)["outcome"] in (o.value for o in RELEASED)]
                    for row in self.stages]
        by_name = {(t.stage_index, t.name): t for row in self.stages for t in row}
        keys = to_roll_back(policy, released, failed_stage)
        if policy == "target" and only:
            keys = [(failed_stage, name) for name in reversed(only)]
        done = []
        for key in keys:
            t = by_name[key]
            say(f"pipeline {self.pipeline_id}: rolling back {t.name} ({t.where}), policy {policy}")
            try:
                result = _child(t, self.pipeline_id, self.kubeconfig, rollback=True)
                self.row(t).update(outcome=TargetOutcome.ROLLED_BACK.value, rollback=result.get("outcome"))
                done.append(t.name)
            except Exception as exc:  # noqa: BLE001 - the next rollback still runs; the report names this one
                self.row(t).update(outcome=TargetOutcome.ROLLBACK_FAILED.value, reason=str(exc)[:500])
        return done

    def fail(self, i: int, failed: list[str], why: str, resumed: str, soaked: bool = False) -> PipelineFailed:
        """Stage `i` failed: apply its failure policy, report, emit `failed`; the error to raise."""
        stage = self.spec.stages[i]
        rolled = self.roll_back(stage.on_failure.value, i, failed if soaked else None)
        message = (f"stage {stage.name} failed ({why}); policy {stage.on_failure.value} rolled back "
                   f"{', '.join(rolled) or 'nothing else'}")
        result = self.result("failed", message, resumed)
        emit_pipeline(PipelineEvent.FAILED, self.pipeline_id, stage=stage.name, failed=failed, rolled_back=rolled,
                      reason=message)
        return PipelineFailed(message, result)

    # -- the gate after a stage
    def gate(self, i: int) -> Decision:
        """The gate after stage `i`: automatic, a soak, or the one pause (a person answers; no answer within its
        timeout is a rejection). The answer, who and why, goes in the result and, when it stops the pipeline, in
        its final state (`greenlight pipeline status`)."""
        stage, nxt = self.spec.stages[i], self.spec.stages[i + 1].name
        if stage.gate.mode is GateMode.SOAK:
            soak(self.stages[i], stage.gate.soak_s, stage.gate.interval_s, say)
            return self.answered(stage.name, nxt, Decision(True, f"soaked {stage.gate.soak_s:.0f} s", "greenlight",
                                                           "auto"))
        if stage.gate.mode is GateMode.AUTO:
            return self.answered(stage.name, nxt, AUTOMATIC)
        emit_pipeline(PipelineEvent.PAUSED, self.pipeline_id, stage=stage.name, next_stage=nxt)
        summary = "\n\n".join([f"### Promote pipeline `{self.pipeline_id}` to stage `{nxt}`?",
                               f"Stage `{stage.name}` passed:", stage_table(self.table(upto=i)),
                               ("Tick **approve** to start the next stage; leave it unticked to stop the "
                                "pipeline (what is released stays).")])
        decision = pause_run(PauseKind.GATE, stage.gate.timeout_s, summary)
        say(f"pipeline {self.pipeline_id}: promotion to {nxt} {decision.note()}")
        return self.answered(stage.name, nxt, decision)

    def answered(self, stage: str, next_stage: str, decision: Decision) -> Decision:
        self.gates.append({"stage": stage, "next_stage": next_stage, **decision.as_dict()})
        return decision

    # -- step 5: the report
    def table(self, upto: int | None = None) -> list[dict]:
        rows = [self.row(t) for row in self.stages[:None if upto is None else upto + 1] for t in row]
        for t in (t for row in self.stages for t in row):
            self.row(t)["serving"] = serving_now(t) if upto is None else self.row(t).get("serving", "")
        return rows

    def result(self, outcome: str, message: str, resumed: str) -> dict:
        rows = self.table()
        md = "\n\n".join([f"## Pipeline `{self.pipeline_id}`: {outcome}", message, f"_{resumed}_",
                          stage_table(rows)])
        markdown_artifact(artifact_key("pipeline", self.pipeline_id), md, f"pipeline {outcome}")
        return {"pipeline_id": self.pipeline_id, "outcome": outcome, "message": message, "resumed": resumed,
                "seconds": round(time.monotonic() - self.t0, 1), "targets": rows, "table": stage_table(rows),
                "gates": self.gates}


def _dry_run(run: PipelineRun) -> dict:
    plans = []
    for t in (t for row in run.stages for t in row):
        result = _child(t, run.pipeline_id, run.kubeconfig, dry_run=True)
        run.row(t)["outcome"] = TargetOutcome.PLANNED.value
        plans.append({"stage": t.stage.name, "target": t.name, "where": t.where,
                      "plan_text": result.get("plan_text") or result.get("message", ""), "plan": result.get("plan")})
    out = run.result("dry-run", "dry run: nothing changed in any cluster", "no resume in a dry run")
    return {**out, "plans": plans}


def run_pipeline(spec: PipelineSpec, pipeline_id: str, kubeconfig: str | None = None,
                 dry_run: bool = False) -> dict:
    t0 = time.monotonic()
    stages = resolve(spec, pipeline_id, kubeconfig)                                                # 1
    for warning in preflight_all(stages):                                                          # 2
        say(f"warning: {warning}")
    run = PipelineRun(spec, pipeline_id, kubeconfig, stages, t0)
    if dry_run:
        return _dry_run(run)
    done = [[target_done(history_of(t), pipeline_id, t.stage.name, t.name) for t in row] for row in stages]  # 3
    for t in (t for row, flags in zip(stages, done) for t, d in zip(row, flags) if d):
        run.row(t)["outcome"] = TargetOutcome.DONE_BEFORE.value
    start = resume_point(done)
    resumed = start.describe([s.name for s in spec.stages])
    say(f"pipeline {pipeline_id}: {len(stages)} stage(s), {sum(map(len, stages))} target(s); {resumed}")
    emit_pipeline(PipelineEvent.STARTED, pipeline_id, stages=[s.name for s in spec.stages], resumed=resumed)
    for i in range(start.stage_index, len(stages)):                                                # 4
        stage = spec.stages[i]
        if i > 0 and (i > start.stage_index or start.ask_gate):
            try:
                decision = run.gate(i - 1)
            except SoakFailed as exc:
                for name in exc.targets:
                    run.rows[(i - 1, name)]["reason"] = str(exc)[:500]
                raise run.fail(i - 1, exc.targets, f"soak: {exc}", resumed, soaked=True) from None
            if not decision.approved:
                result = run.result("rejected", f"promotion to stage {stage.name} {decision.note()}", resumed)
                emit_pipeline(PipelineEvent.FAILED, pipeline_id, stage=stage.name, reason=result["message"],
                              decision=decision.as_dict())
                raise PipelineFailed(result["message"], result)
        todo = [t for t in stages[i] if run.row(t)["outcome"] == TargetOutcome.NOT_STARTED.value]
        if failed := run.release_stage(todo, stage.max_parallel):
            names = [t.name for t in failed]
            raise run.fail(i, names, f"{', '.join(names)}; each failed release rolled itself back", resumed)
        emit_pipeline(PipelineEvent.STAGE_PASSED, pipeline_id, stage=stage.name,
                      targets=[t.name for t in stages[i]])
        say(f"pipeline {pipeline_id}: stage {stage.name} passed ({len(stages[i])} target(s))")
    result = run.result(pipeline_outcome(list(run.rows.values()), False), "every stage passed", resumed)   # 5
    emit_pipeline(PipelineEvent.COMPLETED, pipeline_id, seconds=result["seconds"])
    return result


@flow(name="greenlight-pipeline", log_prints=True)
def pipeline_release(spec: PipelineSpec, dry_run: bool = False, kubeconfig: str | None = None) -> dict:
    """Promote one version through `spec`'s stages (see the module docstring). Credentials: the kubeconfig (or
    $KUBECONFIG) with a context per target cluster; a target with `cluster_block:` uses that
    KubernetesClusterConfig block instead."""
    pipeline_id = spec.pipeline_id or new_pipeline_id()
    _tag_own_run(pipeline_id)
    return run_pipeline(spec, pipeline_id, kubeconfig, dry_run)


def _tag_own_run(pipeline_id: str) -> None:
    """Tag this flow run `greenlight.pipeline:<id>` (however it was started: CLI, UI, schedule), so `greenlight
    pipeline status ID` finds it and the UI filters by it."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    tag = f"greenlight.pipeline:{pipeline_id}"
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(ctx.flow_run.id, tags=sorted({*ctx.flow_run.tags, tag}))
    except Exception as exc:  # noqa: BLE001 - a label, not a step
        say(f"warning: could not tag the pipeline's flow run: {exc}")
