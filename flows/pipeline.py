"""Promotion pipeline (issue 16): the same new version through ordered stages, each stage one or more targets in
any cluster of the kubeconfig, every target an ordinary release run as a child flow (subflow) with its own report.
The stages and gates are a declared list of steps (tasks/pipeline/strategy.py) that the one executor runs
(tasks/engine/) and the dry run describes:

  1. resolve        every target's cluster (kubeconfig context or cluster block) and release spec
  2. preflight      every target's own release pre-flight, all before the first change in any cluster (exit 2)
  3. resume         targets whose Service history says this pipeline already released them are skipped
  4. the steps      stage-<name>: its targets in parallel up to max_parallel (child flows tagged with pipeline,
                    stage, target); gate-<name> before the next stage: automatic, a manual approval form (the
                    stage's results), or a soak
     on failure     the failed release rolled itself back; the policy rolls back the stage's other released targets
                    (stage) or every released target so far, newest stage first (atomic), each rollback verified
  5. report         a markdown artifact with stages × targets (outcome, seconds, what each Service serves now)

Events `greenlight.pipeline.started|stage-passed|paused|failed|completed` about `greenlight.pipeline.<id>`.
"""

from __future__ import annotations

import time

from prefect import flow

from prefect_greenlight.flows.blue_green import blue_green_release
from prefect_greenlight.flows.canary import canary_release
from prefect_greenlight.flows.rollback import rollback_release
from prefect_greenlight.tasks.engine.executor import Release, execute
from prefect_greenlight.tasks.pipeline.board import PipelineBoard
from prefect_greenlight.tasks.pipeline.children import ChildFlows, Children, tag_own_run
from prefect_greenlight.tasks.pipeline.run import completed, dry_run_result, new_pipeline_id, resume
from prefect_greenlight.tasks.pipeline.strategy import passed_over, pipeline_ending, pipeline_steps
from prefect_greenlight.tasks.pipeline.targets import preflight_all, resolve
from prefect_greenlight.tasks.prefect_adapter.cancellation import ending_cancelled
from prefect_greenlight.tasks.record.report import Timeline, say
from prefect_greenlight.tasks.spec.pipeline import PipelineSpec

CHILD_FLOWS = ChildFlows(blue_green=blue_green_release, canary=canary_release, rollback=rollback_release)


def run_pipeline(spec: PipelineSpec, pipeline_id: str, kubeconfig: str | None = None,
                 dry_run: bool = False) -> dict:
    t0 = time.monotonic()
    stages = resolve(spec, pipeline_id, kubeconfig)                                                # 1
    warnings = preflight_all(stages)                                                               # 2
    for warning in warnings:
        say(f"warning: {warning}")
    board = PipelineBoard(spec, pipeline_id, stages, t0)
    children = Children(CHILD_FLOWS, pipeline_id, kubeconfig)
    steps = pipeline_steps(spec, stages, children)
    if dry_run:
        return dry_run_result(board, steps, children, warnings)
    at = resume(board, steps)                                                                      # 3
    execute(steps, Release(None, Timeline(), handed_on={"board": board}), pipeline_ending(board),  # 4
            resume_at=at, begin=passed_over(steps, at))
    return completed(board)                                                                        # 5


@flow(name="greenlight-pipeline", log_prints=True)
def pipeline_release(spec: PipelineSpec, dry_run: bool = False, kubeconfig: str | None = None) -> dict:
    """Promote one version through `spec`'s stages (see the module docstring). Credentials: the kubeconfig (or
    $KUBECONFIG) with a context per target cluster; a target with `cluster_block:` uses that
    KubernetesClusterConfig block instead."""
    pipeline_id = spec.pipeline_id or new_pipeline_id()
    tag_own_run(pipeline_id)
    return ending_cancelled(lambda: run_pipeline(spec, pipeline_id, kubeconfig, dry_run))
