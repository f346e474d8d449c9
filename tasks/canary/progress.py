"""What the steps of one canary run share (the engine's `release.handed_on["canary"]`): where traffic stands now,
each step's verified split and analysis rows, the failed analyses so far; the progress record on the Service
(`greenlight.io/canary-*`, read by `greenlight status` and by a re-run that resumes); the form a pause shows; and
the release's result and report lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect_greenlight.tasks.canary.preflight import CanaryPreflight
from prefect_greenlight.tasks.canary.steps import record_progress
from prefect_greenlight.tasks.decisions.canary import StepCounts
from prefect_greenlight.tasks.kube.client import Kube
from prefect_greenlight.tasks.record.report import Timeline


def starting_counts(plan: CanaryPreflight) -> StepCounts:
    """Where a run starts from: a fresh canary from stable at its total; a resumed one from the replicas found,
    at the last step it passed."""
    found_canary, found_stable = plan.found_replicas if plan.resume_message else (0, plan.total)
    passed = plan.steps[plan.resume_index - 1].percent if plan.resume_index else 0
    return StepCounts(passed, found_canary, found_stable, plan.found_baseline if plan.resume_message else 0)


@dataclass
class CanaryProgress:
    plan: CanaryPreflight
    run_id: str
    current: StepCounts  # the split the Deployments are at now
    splits: list[dict] = field(default_factory=list)
    analyses: list[dict] = field(default_factory=list)
    failures: int = 0  # Failed analyses so far (one more than analysis.failure_limit aborts)

    @classmethod
    def start(cls, plan: CanaryPreflight, run_id: str) -> CanaryProgress:
        return cls(plan, run_id, starting_counts(plan))

    def record(self, kube: Kube, index: int, state: str) -> None:
        """The Service's progress record: at step `index` (1-based; 0 before the first) in `state`."""
        p, c = self.plan, self.current
        g = p.gateway
        route = f"{g.route}/{g.rule}/{g.canary_service}" if g else None  # None: a stale one removed
        record_progress(kube, p.namespace, p.service, stable=p.stable, deployment=p.canary, total=p.total,
                        steps=",".join(str(x.percent) for x in p.steps), step=f"{index}/{len(p.steps)}",
                        percent=c.percent, weight=f"{c.canary}/{c.stable}", state=state, release_id=p.release_id,
                        run_id=self.run_id, route=route)

    def moved(self, want: StepCounts, canary_ready: int, stable_ready: int) -> None:
        self.current = want
        self.splits.append({"percent": want.percent, "canary": want.canary, "stable": want.stable,
                            "canary_ready": canary_ready, "stable_ready": stable_ready})

    def pause_form(self, want: StepCounts, kind: str) -> str:
        """The markdown a paused run shows whoever answers: where the canary is, what remains, the analysis."""
        p = self.plan
        lines = [f"### Canary `{p.canary}` of Service `{p.service}` at {want.percent} % ({kind})", "",
                 f"- {want.canary} canary / {want.stable} stable pods (total {p.total})",
                 f"- stable `{p.stable}` `{p.stable_image}` · canary `{', '.join(p.canary_images)}`",
                 f"- remaining steps: {', '.join(s.describe() for s in p.steps if s.percent > want.percent)}"]
        lines += [f"- analysis {r['provider']}: {r['outcome']} {r['message']}" for r in self.analyses
                  if r["step"] == f"{want.percent} %"]
        lines += ["", "Tick **approve** to go on (and **full** to go straight to 100 %); unticked aborts."]
        return "\n".join(lines)

    def split_lines(self) -> str:
        return "\n".join(f"- {s['percent']} %: {s['canary_ready']} canary / {s['stable_ready']} stable ready"
                         for s in self.splits)

    def result(self, outcome: str, timeline: Timeline, hook_rows: list[dict]) -> dict:
        """The flow's result (the CLI, the worker and the pipeline read it)."""
        p = self.plan
        return {"outcome": outcome, "service": p.service, "namespace": p.namespace, "release_id": p.release_id,
                "stable": p.stable, "canary": p.canary, "total": p.total,
                "live_deployment": p.canary if outcome == "released" and p.gateway is None else p.stable,
                "plan": [s.describe() for s in p.steps], "splits": self.splits, "analysis": self.analyses,
                "steps": timeline.rows(), **({"hooks": hook_rows} if hook_rows else {})}
