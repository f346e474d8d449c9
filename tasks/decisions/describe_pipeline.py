"""How a pipeline's steps describe themselves in its plan (`greenlight pipeline run --dry-run`): a `stage-<name>`
step per stage and a `gate-<stage>` step between two stages (tasks/pipeline/strategy.py builds the list). Pure:
from the pipeline spec alone; each target's own plan is its release's dry run.
"""

from __future__ import annotations

from prefect_greenlight.tasks.decisions.plan import PlanStep, StepKind
from prefect_greenlight.tasks.spec.pipeline import FailurePolicy, GateMode, PipelineSpec, target_name

POLICY = {
    FailurePolicy.TARGET: "the failed release rolls itself back; the other targets stay released",
    FailurePolicy.STAGE: "the stage's released targets are rolled back too, newest first, each verified",
    FailurePolicy.ATOMIC: "every target released so far is rolled back, newest stage first, each verified",
}


def describe_stage(spec: PipelineSpec, i: int) -> PlanStep:
    """Stage `i`: its targets released in parallel up to max_parallel, each a child flow run."""
    stage = spec.stages[i]
    targets = [(target_name(stage, t), t) for t in stage.targets]
    later_atomic = [s.name for s in spec.stages[i + 1:] if s.on_failure is FailurePolicy.ATOMIC]
    undo = f"if a target of this stage fails: {POLICY[stage.on_failure]}"
    if later_atomic:
        undo += f"; its released targets are rolled back if stage {', '.join(later_atomic)} fails (atomic)"
    return PlanStep(
        f"stage-{stage.name}", StepKind.CHANGE,
        ", ".join(f"{t.cluster}:{t.namespace}/{t.service}" for _, t in targets),
        f"release {len(targets)} target(s), up to {stage.max_parallel} at once, each a child flow run; a failed "
        "target stops the stage from starting another",
        tuple(f"{name}: {t.strategy.value} release of Service {t.namespace}/{t.service} in {t.cluster}"
              for name, t in targets),
        gate="every target released", undo=undo)


def describe_gate(spec: PipelineSpec, i: int) -> PlanStep:
    """The gate after stage `i`, before stage `i + 1`."""
    stage, nxt = spec.stages[i], spec.stages[i + 1].name
    gate = stage.gate
    if gate.mode is GateMode.SOAK:
        change = (f"soak: every {gate.interval_s:g} s for {gate.soak_s:g} s, the pods each of stage {stage.name}'s "
                  "Services routes to pass their target's smoke checks")
        policy = ("the targets that failed it are rolled back" if stage.on_failure is FailurePolicy.TARGET
                  else POLICY[stage.on_failure])
        verdict = f"every round passes; a failing round fails stage {stage.name} ({policy})"
    elif gate.mode is GateMode.MANUAL:
        change = f"pause the pipeline's flow run with the approval form (stage {stage.name}'s results)"
        verdict = f"approved within {gate.timeout_s:g} s; a rejection or no answer stops the pipeline"
    else:
        change, verdict = f"promote to stage {nxt} at once", "automatic"
    if gate.wait_for_window_s:
        change += (f"; then wait (at most {gate.wait_for_window_s:g} s) until the release policy lets every target "
                   f"of stage {nxt} release (its window opens, its freeze ends)")
    return PlanStep(f"gate-{stage.name}", StepKind.GATE, "", change, gate=verdict, when=f"before stage {nxt}")
