"""The canary as a list of steps (the release engine, tasks/engine/), in the second tutorial's order:

  (pre-release hooks) (before-first-step hooks), then the spec's step list (`CanarySpec.step_list`: as written,
  or the percentages 10, 30, 50, 100 expanded), cut at each weight: (between-steps hooks, before every weight but
  the first) step-<p> -> its analyses and pauses in the written order (analysis-<p>, pause-<p>, `-2` for a second
  one); then (after-last-step hooks) -> cleanup

With `baseline: true` each move also sets the baseline (stable's pod template, as many pods as the canary) and
`judge-<p>` judges the canary against it (tasks/canary/judge_step.py: pass goes on, marginal pauses, fail aborts);
the abort and the clean-up remove it.

`step-<p>` moves the Deployments to the step's replica counts (the first applies the canary) and verifies the
split by EndpointSlices; `analysis-<p>` judges the canary over its window (Failed beyond failure_limit aborts;
Inconclusive adds a `pause-<p>` for a human right after it); `pause-<p>` waits until approved, or for its time;
the last of a weight's steps records it passed. A `promote
--full` answer at a pause runs the between-steps hooks from there to 100 % and the move to 100 % next (the engine's
`release.next_steps`), then goes on after the last step (`release.go_to`): no further step, analysis or pause. A
re-run of an unfinished canary starts its traffic steps at the one it resumes (plan.resume_index), after the hooks.

One undo for the whole release, the abort: stable back to its total and READY first, then the canary to 0,
verified. It is the first step's (pushed as the run starts: a resumed run moved traffic before it), and every
failure, the clean-up's too, aborts. The Service's progress record follows each step (tasks/canary/progress.py).
The dry run describes this same list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from prefect_greenlight.tasks.canary import gateway_steps
from prefect_greenlight.tasks.canary.analysis import AnalysisContext, Outcome, run_window
from prefect_greenlight.tasks.canary.analysis.http_probe import HttpProbe
from prefect_greenlight.tasks.canary.analysis.prometheus import PrometheusQuery
from prefect_greenlight.tasks.canary.judge_step import PodSets, report, run_judge
from prefect_greenlight.tasks.canary.pause import pause_for_decision
from prefect_greenlight.tasks.canary.preflight import CanaryPreflight
from prefect_greenlight.tasks.canary.progress import CanaryProgress, starting_counts
from prefect_greenlight.tasks.canary.steps import move_traffic, remove_baseline, remove_old_stable, restore_stable
from prefect_greenlight.tasks.decisions.canary import StepCounts
from prefect_greenlight.tasks.decisions.canary_progress import PASSED
from prefect_greenlight.tasks.decisions.describe_canary import (
    Pause,
    describe_analysis,
    describe_cleanup,
    describe_judge,
    describe_move,
    describe_pause,
    describe_preflight,
    inconclusive_pause,
    pause_of,
)
from prefect_greenlight.tasks.decisions.describe_hooks import NO_HOOKS, HookPlan
from prefect_greenlight.tasks.decisions.hooks import step_name
from prefect_greenlight.tasks.decisions.judge import Decision
from prefect_greenlight.tasks.decisions.plan import Plan, PlanFacts
from prefect_greenlight.tasks.engine.executor import Ending, Release
from prefect_greenlight.tasks.engine.steps import Step, plan_of
from prefect_greenlight.tasks.errors import PermanentError, Rejected, ReleaseFailed
from prefect_greenlight.tasks.hooks.runner import HookRunner
from prefect_greenlight.tasks.hooks.steps import hook_steps
from prefect_greenlight.tasks.kube.client import Kube
from prefect_greenlight.tasks.kube.observe import endpoint_counts
from prefect_greenlight.tasks.record.events import ReleaseEvent
from prefect_greenlight.tasks.record.journal import Journal
from prefect_greenlight.tasks.record.report import artifact_key, say, table_artifact
from prefect_greenlight.tasks.spec import Hook, HookPoint
from prefect_greenlight.tasks.spec.canary import AnalysisWindow, CanaryStep, JudgeWindow

STEPS = "steps"  # the phase a failure before the clean-up is reported in ("canary failed during steps: ...")


@dataclass(frozen=True)
class CanaryFacts:
    """What the dry run read to describe the steps: the hooks' plan."""

    hooks: HookPlan = NO_HOOKS


@dataclass(frozen=True)
class Traffic:
    """One traffic step of the release: its index (0-based) and counts, the counts before it, and the analysis
    and pause steps of the step list that follow its weight, in order."""

    index: int
    want: StepCounts
    before: StepCounts
    gates: tuple[CanaryStep, ...]

    @property
    def number(self) -> int:  # 1-based, as the progress record counts
        return self.index + 1


@dataclass(frozen=True)
class Jump:
    """What `promote --full` at a pause before the last step runs: the between-steps hooks from that step to the
    last and the move to the last (no analysis, no pause); then the run goes on at `then`, after the last step."""

    steps: tuple[Step, ...]
    then: str


def _progress(release: Release) -> CanaryProgress:
    return release.handed_on["canary"]


def start_record(release: Release) -> None:
    """The progress record before the first step: step 0 progressing, or a resumed run's last passed step."""
    progress = _progress(release)
    at = progress.plan.resume_index
    progress.record(release.kube, at, PASSED if at else "progressing")


def _recorder(t: Traffic, ends_step: bool) -> Callable[[Release, StepCounts], None]:
    """`traffic: gateway`: what a changing step notes after it (where traffic stands; passed when it ends the
    traffic step)."""
    def record(release: Release, counts: StepCounts) -> None:
        progress = _progress(release)
        progress.moved(counts, counts.canary, counts.stable)
        progress.record(release.kube, t.number, PASSED if ends_step else "progressing")
    return record


def _move(p: CanaryPreflight, t: Traffic, ends_step: bool) -> Step:
    if p.gateway is not None:
        return gateway_steps.change_step(p, f"step-{t.want.percent}", t.index, -1, _recorder(t, ends_step), STEPS)

    def run(release: Release) -> str:
        progress, want = _progress(release), t.want
        verdict = move_traffic(release.kube, p.namespace, p.service, p.stable, p.canary_manifest, progress.current,
                               want, t.index == 0, p.spec.deadlines, p.baseline_manifest)
        progress.moved(want, verdict.canary_ready, verdict.stable_ready)
        if want.stable == 0:
            release.journal.event(ReleaseEvent.SWITCHED, stable=p.stable, canary=p.canary, percent=want.percent)
        progress.record(release.kube, t.number, "progressing")
        if ends_step:
            progress.record(release.kube, t.number, PASSED)  # a re-run resumes after this step, not at it
        return f"{want.describe()}; endpoints {verdict.message}"
    return Step(f"step-{t.want.percent}", run, lambda f: describe_move(p, t.index, t.want, t.before), phase=STEPS,
                changes=True)


def _providers(kube: Kube, plan: CanaryPreflight) -> list:
    spec = plan.spec
    out: list = [HttpProbe(kube, spec.analysis.http, service_ports=plan.service_ports)] if spec.analysis.http else []
    return out + [PrometheusQuery(q) for q in spec.analysis.prometheus]


def _analysis(p: CanaryPreflight, t: Traffic, name: str, window: AnalysisWindow, jump: Jump | None,
              ends_step: bool) -> Step:
    pause_name = name.replace("analysis", "pause", 1)

    def run(release: Release) -> str:
        progress, percent = _progress(release), t.want.percent
        ctx = AnalysisContext(p.namespace, p.service, p.canary, p.stable, percent)
        found = run_window(_providers(release.kube, p), ctx, window,
                           lambda r: say(f"analysis at {percent} %, {r.describe()}"))
        rows = [r.row(percent) for r in found.results]
        progress.analyses += rows
        table_artifact(artifact_key("canary-analysis", p.service, p.release_id, name), rows,
                       f"Canary analysis at {percent} %: {found.outcome.value} ({found.rounds_run()})")
        detail = found.describe()
        if found.outcome is Outcome.FAILED:
            progress.failures += 1
            if progress.failures > p.spec.analysis.failure_limit:
                raise PermanentError(f"analysis at {percent} % failed ({progress.failures} failed, limit "
                                     f"{p.spec.analysis.failure_limit}): {detail}")
        if found.outcome is Outcome.INCONCLUSIVE:  # a human decides, right after this step
            release.next_steps = [_pause(p, t, pause_name, inconclusive_pause(p.spec), jump, ends_step)]
        elif ends_step:
            progress.record(release.kube, t.number, PASSED)
        return detail
    return Step(name, run, lambda f: describe_analysis(p, t.want, name, window, pause_name), phase=STEPS)


def _judge(p: CanaryPreflight, t: Traffic, name: str, window: JudgeWindow, jump: Jump | None,
           ends_step: bool) -> Step:
    """`judge-<p>`: canary against baseline over the window; fail aborts, marginal pauses for a human."""
    pause_name = name.replace("judge", "pause", 1)

    def run(release: Release) -> str:
        progress, percent = _progress(release), t.want.percent
        judgement, samples = run_judge(release.kube, PodSets(p.namespace, p.canary, p.baseline), p.spec.judge,
                                       window.interval_s, window.count, p.service_ports)
        progress.analyses += report(artifact_key("canary-judge", p.service, p.release_id, name), percent,
                                    judgement, samples, p.spec.judge)
        detail = judgement.describe()
        say(f"judge at {percent} %: {detail}")
        if judgement.decision is Decision.FAIL:
            raise PermanentError(f"the judge at {percent} % failed the canary against the baseline: {detail}")
        if judgement.decision is Decision.MARGINAL:
            release.next_steps = [_pause(p, t, pause_name, inconclusive_pause(p.spec), jump, ends_step)]
        elif ends_step:
            progress.record(release.kube, t.number, PASSED)
        return detail
    return Step(name, run, lambda f: describe_judge(p, t.want, name, window, pause_name), phase=STEPS)


def _pause(p: CanaryPreflight, t: Traffic, name: str, pause: Pause, jump: Jump | None, ends_step: bool) -> Step:
    """A pause for an answer; `promote --full` before the last step takes the jump."""
    def run(release: Release) -> str:
        progress, want = _progress(release), t.want
        progress.record(release.kube, t.number, f"paused-{pause.kind}")
        release.journal.event(ReleaseEvent.PAUSED, canary=p.canary, percent=want.percent, pause=pause.kind)
        decision = pause_for_decision(pause.kind, pause.timeout_s, progress.pause_form(want, pause.kind))
        say(f"step {want.percent} %: {decision.note()}")
        if pause.kind == "approval":
            release.journal.approval(f"at {want.percent} %: {decision.note()}", decision.approved)
        if not decision.approved:
            raise Rejected(f"canary at {want.percent} % {decision.note()}")
        full = decision.full and jump is not None
        if ends_step or full:
            progress.record(release.kube, t.number, PASSED)  # a re-run resumes after this step, not at it
        if full:
            say(f"promote --full: straight to {p.steps[-1].describe()}, no further analysis")
            release.next_steps, release.go_to = list(jump.steps), jump.then
        return decision.note()
    return Step(name, run, lambda f: describe_pause(p, name, pause), phase=STEPS)


def _cleanup(p: CanaryPreflight) -> Step:
    if p.gateway is not None:
        return gateway_steps.promote_step(p, lambda release: _progress(release).record(
            release.kube, len(p.steps), "promoted"))

    def run(release: Release) -> str:
        detail = remove_old_stable(release.kube, p.namespace, p.stable, p.spec.cleanup.value)
        if p.baseline:
            detail += f"; {remove_baseline(release.kube, p.namespace, p.stable)}"
        say(detail)
        _progress(release).record(release.kube, len(p.steps), "promoted")
        return detail
    return Step("cleanup", run, lambda f: describe_cleanup(p), phase="cleanup", changes=True)


def _hooks(hooks: list[Hook], point: HookPoint, percent: int | None = None,
           next_percent: int | None = None) -> list[Step]:
    return [dataclasses.replace(s, phase=STEPS) for s in hook_steps(hooks, point, percent, next_percent)]


def _groups(p: CanaryPreflight) -> list[tuple[CanaryStep, ...]]:
    """The step list cut at each weight: per traffic step, the analysis and pause steps after its weight."""
    groups: list[list[CanaryStep]] = []
    for step in p.spec.step_list():
        if step.set_weight is not None:
            groups.append([])
        else:
            groups[-1].append(step)
    return [tuple(g) for g in groups]


def _traffic(p: CanaryPreflight) -> list[Traffic]:
    """The traffic steps this run moves through: all of them, or a resumed run's from the one it resumes."""
    return [Traffic(i, want, p.steps[i - 1] if i > p.resume_index else starting_counts(p), gates)
            for i, (want, gates) in enumerate(zip(p.steps, _groups(p))) if i >= p.resume_index]


def _gate_steps(p: CanaryPreflight, t: Traffic, jump: Jump | None) -> list[Step]:
    """The traffic step's analyses and pauses, named `analysis-<p>` / `pause-<p>` (`-2`, `-3` for repeats); the
    last of them records the step passed."""
    out, seen = [], {"analysis": 0, "pause": 0, "judge": 0, "scale": 0, "match": 0}
    for k, gate in enumerate(t.gates):
        kind = "scale" if gate.kind == "set_canary_scale" else gate.kind
        seen[kind] += 1
        name = f"{kind}-{t.want.percent}" + (f"-{seen[kind]}" if seen[kind] > 1 else "")
        last = k == len(t.gates) - 1
        if kind in ("scale", "match"):
            out.append(gateway_steps.change_step(p, name, t.index, k, _recorder(t, last), STEPS))
        elif kind == "judge":
            out.append(_judge(p, t, name, gate.judge, jump, last))
        elif kind == "analysis":
            out.append(_analysis(p, t, name, gate.analysis, jump, last))
        else:
            out.append(_pause(p, t, name, pause_of(p.spec, gate.pause), jump, last))
    return out


def _jump(p: CanaryPreflight, hooks: list[Hook], t: Traffic, last: Traffic) -> Jump | None:
    if t is last:
        return None
    after = next((step_name(h) for h in hooks if h.at is HookPoint.AFTER_LAST_STEP), "cleanup")
    return Jump((*_hooks(hooks, HookPoint.BETWEEN_STEPS, t.want.percent, last.want.percent),
                 _move(p, last, ends_step=False)), after)


def canary_steps(p: CanaryPreflight, hooks: list[Hook] | None = None) -> list[Step]:
    """Every step of the run, in order, hooks at their points (`hooks`: the spec's unless given)."""
    hooks = list(p.spec.hooks if hooks is None else hooks)
    steps = [*_hooks(hooks, HookPoint.PRE_RELEASE), *_hooks(hooks, HookPoint.BEFORE_FIRST_STEP)]
    traffic = _traffic(p)
    for t in traffic:
        jump = _jump(p, hooks, t, traffic[-1])
        steps += _hooks(hooks, HookPoint.BETWEEN_STEPS, t.before.percent, t.want.percent) if t.index else []
        steps += [_move(p, t, ends_step=not t.gates), *_gate_steps(p, t, jump)]
    steps += [*_hooks(hooks, HookPoint.AFTER_LAST_STEP), _cleanup(p)]
    abort = dataclasses.replace(steps[0], undo=lambda release: restore_stable(
        release.kube, p.namespace, p.service, p.stable, p.canary, p.total, p.spec.deadlines),
        undo_name=f"abort: {p.stable} back to {p.total}, then {p.canary} to 0"
                  + (f" and {p.baseline} deleted" if p.baseline else ""))
    if p.gateway is not None:
        abort = dataclasses.replace(steps[0], undo=lambda release: gateway_steps.abort(release.kube, p),
                                    undo_name=f"abort: HTTPRoute {p.gateway.route} back to {p.service} 100 %, "
                                              f"verified, then {p.canary} to 0")
    return [abort, *steps[1:]]


def canary_plan(r: CanaryPreflight, facts: PlanFacts, hooks: HookPlan = NO_HOOKS) -> Plan:
    """The dry run: preflight, then the very list `canary_steps` gives the run, each step described (when every
    analysis is Successful: an Inconclusive one adds its pause)."""
    steps = canary_steps(r, list(hooks.hooks) or None)
    plan = plan_of("canary", r.spec.namespace, r.service, f"{r.canary} replaces {r.stable} behind Service "
                   f"{r.service} in {len(r.steps)} step(s)", steps, CanaryFacts(hooks), facts)
    pre = describe_preflight(r)
    if r.gateway is not None:  # traffic: gateway: the route and the state after each step of the list
        pre = dataclasses.replace(pre, details=(*pre.details, r.gateway.describe(), *(
            f"after {step.describe()}: {state.describe()}" for step, state in zip(r.spec.step_list(),
                                                                                 r.gateway.states))))
    return Plan(plan.strategy, plan.namespace, plan.service, plan.summary, (pre, *plan.steps), plan.facts)


def canary_ending(kube: Kube, p: CanaryPreflight, journal: Journal, hooks: HookRunner,
                  progress: CanaryProgress) -> Ending:
    """How a failed canary ends: aborted to stable, the abort recorded on the Service and in the report."""
    def announce(phase: str, reason: str, cancelled: bool, changes: int) -> str:
        return (f"canary {'cancelled' if cancelled else 'failed'} during {phase}: {reason}; aborting (stable "
                f"{p.stable} back to {p.total})")

    def record(outcome: str, failure: ReleaseFailed, phase: str) -> None:
        try:
            progress.current = StepCounts(0, 0, p.total)
            progress.record(kube, 0, "aborted" if failure.rolled_back else "abort-incomplete")
        except Exception as note_exc:  # noqa: BLE001 - the record is a report; the failure is what counts
            say(f"could not record the abort on the Service: {note_exc}")
        hooks.finish(outcome)
        journal.finish(outcome, from_deployment=p.stable, to_deployment=p.canary, images=p.canary_images,
                       after=endpoint_counts(kube, p.namespace, p.service), reason=f"{phase}: {failure.reason}",
                       details=f"### Steps\n\n{progress.split_lines()}\n\n### Abort\n\n{failure}\n\n"
                               f"{hooks.markdown()}")

    return Ending("abort", announce, record, outcome_of_success="aborted")
