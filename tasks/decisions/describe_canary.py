"""How each step of a canary release describes itself in the plan (`--dry-run`): each percentage's move with the
replica counts of tasks/decisions/canary.py and the EndpointSlice split it must show, its analysis, its pause;
built from what preflight decided (tasks/canary/preflight.py: CanaryPreflight). Pure. Which pause follows a step is
decided here too (`pause_of`), for the run and the plan alike. The list of steps, and so the plan's order, is
the strategy's (tasks/canary/strategy.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from prefect_greenlight.tasks.decisions.canary import StepCounts
from prefect_greenlight.tasks.decisions.describe_bluegreen import field_lines
from prefect_greenlight.tasks.decisions.plan import FieldChange, PlanStep, StepKind
from prefect_greenlight.tasks.decisions.workload import resolve_port, service_port
from prefect_greenlight.tasks.spec.canary import AnalysisWindow, CanarySpec, JudgeWindow, PauseFor, StableCleanup


class CanaryRelease(Protocol):
    """What the plan needs of tasks/canary/preflight.py's CanaryPreflight."""

    spec: CanarySpec
    canary: str
    canary_manifest: dict
    canary_existed: bool
    total: int
    steps: tuple[StepCounts, ...]
    stable_image: str
    service_ports: tuple[dict, ...]
    canary_changes: tuple[FieldChange, ...]

    @property
    def stable(self) -> str: ...

    @property
    def service(self) -> str: ...

    @property
    def canary_images(self) -> list[str]: ...

    @property
    def baseline(self) -> str | None: ...


def abort_undo(r: CanaryRelease) -> str:
    gone = f" and the baseline {r.baseline} deleted" if r.baseline else ""
    return (f"abort: {r.stable} back to {r.total} and ready first, then {r.canary} to 0{gone}, verified by "
            "EndpointSlices")


def _baseline_move(r: CanaryRelease, index: int, want: StepCounts, before: StepCounts) -> str:
    if not r.baseline or want.baseline == before.baseline:
        return f"; baseline {r.baseline} stays at {want.baseline}" if r.baseline else ""
    verb = "apply" if index == 0 else "scale"
    return (f"; {verb} baseline {r.baseline} ({r.stable}'s pod template, {TRACK}) {before.baseline} -> "
            f"{want.baseline}")


TRACK = "greenlight.io/track: baseline"


def describe_move(r: CanaryRelease, index: int, want: StepCounts, before: StepCounts) -> PlanStep:
    """`step-<percent>`: the move from `before` to the step's counts (the first one applies the canary)."""
    c, s = r.canary, r.stable
    if index == 0:
        verb = "update the existing" if r.canary_existed else "create"
        first = (f"server-side apply: {verb} {c} with {want.canary} replica(s), {', '.join(r.canary_images)}; "
                 f"{len(r.canary_changes)} field(s) differ from {s} (server-side dry run)")
        details = field_lines(r.canary_changes, s)
    else:
        first = f"scale {c} {before.canary} -> {want.canary} and wait until ready" if want.canary != before.canary \
            else f"{c} stays at {want.canary}"
        details = ()
    then = _baseline_move(r, index, want, before)
    then += f"; then scale {s} {before.stable} -> {want.stable}" if want.stable != before.stable else \
        f"; {s} stays at {want.stable}"
    return PlanStep(f"step-{want.percent}", StepKind.CHANGE, f"Deployments {c}, {s}", first + then,
                    details=details, undo=abort_undo(r),
                    gate=(f"EndpointSlices of Service {r.service} hold exactly {want.canary} ready {c} / "
                          + (f"{want.baseline} ready {r.baseline} / " if r.baseline else "")
                          + f"{want.stable} ready {s} within {r.spec.deadlines.endpoints_s:.0f} s ({want.percent} % "
                          "by replica count)"))


def analysis_lines(r: CanaryRelease) -> tuple[str, ...]:
    a, lines = r.spec.analysis, []
    if a.http:
        h = a.http
        pod_spec = r.canary_manifest["spec"]["template"].get("spec") or {}
        port = resolve_port(pod_spec, h.port, service_port(r.service_ports, h.service_port))
        lines.append(f"HTTP GET :{port}{h.path}, {h.requests_per_pod} request(s) to up to {h.max_pods} pod(s) of each "
                     f"version: canary success rate >= {h.min_success_rate:g} and at most {h.max_success_drop:g} "
                     f"below stable's; p{h.percentile:g} latency <= {h.max_latency_ms:g} ms and <= "
                     f"{h.max_latency_ratio:g} x stable's (above {h.latency_floor_ms:g} ms)")
    lines += [f"Prometheus {q.url}: {q.query} {q.condition.value} {q.threshold:g}" for q in a.prometheus]
    return tuple(lines)


def describe_analysis(r: CanaryRelease, want: StepCounts, name: str, window: AnalysisWindow,
                      pause_name: str) -> PlanStep:
    a = r.spec.analysis
    return PlanStep(name, StepKind.GATE, f"pods of {r.canary} and {r.stable}",
                    f"probes and queries, {window.describe()}; nothing changes", details=analysis_lines(r),
                    gate=(f"every round Successful goes on; a Failed round ends it and aborts once more than "
                          f"{a.failure_limit} analyses failed; an Inconclusive one pauses for a human ({pause_name}, "
                          f"up to {a.inconclusive_timeout_s:.0f} s)"))


def describe_judge(r: CanaryRelease, want: StepCounts, name: str, window: JudgeWindow,
                   pause_name: str) -> PlanStep:
    j = r.spec.judge
    return PlanStep(name, StepKind.GATE, f"pods of {r.canary} and of the baseline {r.baseline}",
                    f"samples over {window.count} rounds {window.interval_s:g} s apart, both sets at once (HTTP "
                    f"probes: {j.http.requests_per_pod} request(s) to up to {j.http.max_pods} pod(s) of each), then "
                    "the Mann-Whitney U judge; nothing changes", details=(j.describe(),),
                    gate=(f"score >= {j.pass_score:g} goes on; >= {j.marginal_score:g}, or a metric without data "
                          f"(no_data: pause), pauses for a human ({pause_name}, up to "
                          f"{r.spec.analysis.inconclusive_timeout_s:.0f} s); below, or a critical metric High/Low, "
                          "aborts"))


@dataclass(frozen=True)
class Pause:
    """A pause after a step: `approval` (a human must answer; no answer in time rejects), `timed` (goes on when
    the time is up), `inconclusive` (an analysis could not decide: a human must answer)."""

    kind: str
    timeout_s: float


def pause_of(spec: CanarySpec, step: PauseFor) -> Pause:
    """A written or expanded pause step: timed for its duration, else an approval within approval_timeout_s."""
    if step.duration_s is None:
        return Pause("approval", spec.approval_timeout_s)
    return Pause("timed", step.duration_s)


def inconclusive_pause(spec: CanarySpec) -> Pause:
    return Pause("inconclusive", spec.analysis.inconclusive_timeout_s)


def describe_pause(r: CanaryRelease, name: str, pause: Pause) -> PlanStep:
    if pause.kind == "approval":
        gate = (f"approval: `greenlight promote RUN_ID [--full]` or the UI; no answer within "
                f"{pause.timeout_s:.0f} s counts as a rejection (aborts)")
    elif pause.kind == "timed":
        gate = f"timed: goes on after {pause.timeout_s:.0f} s unless aborted (promote ends it early)"
    else:
        gate = (f"the analysis was Inconclusive: a human must answer within {pause.timeout_s:.0f} s "
                "(`greenlight promote RUN_ID [--full]`); no answer aborts")
    return PlanStep(name, StepKind.GATE, "", "nothing changes", gate=gate)


def describe_cleanup(r: CanaryRelease) -> PlanStep:
    what = f"delete {r.stable} (at 0 now)" if r.spec.cleanup is StableCleanup.DELETE else f"keep {r.stable} at 0"
    what += f"; delete the baseline {r.baseline} (at 0 now)" if r.baseline else ""
    return PlanStep("cleanup", StepKind.CHANGE, f"Deployment {r.stable}", what, when="after the last step",
                    undo="not undone by the release")


def describe_preflight(r: CanaryRelease) -> PlanStep:
    return PlanStep("preflight", StepKind.CHECK, f"Service {r.service}, Deployments {r.stable}, {r.canary}",
                    f"read and decide: {r.total} pods in all; " + ", ".join(s.describe() for s in r.steps)
                    + "; the apiserver accepted the canary's server-side dry run; nothing changed",
                    details=(f"the step list: {'; '.join(s.describe() for s in r.spec.step_list())}",)
                    + ((f"baseline {r.baseline}: {r.stable}'s pod template with {TRACK}, as many pods as the canary "
                        "(at most the rest of the total), taken from stable's share; removed by the abort and the "
                        "clean-up",) if r.baseline else ()))
