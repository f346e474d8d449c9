"""Pauses between canary steps: the flow run pauses with a form (approve, full, reason, approver). Answers:
`greenlight approve RUN_ID` (next step), `greenlight promote RUN_ID [--full]` (next step, or straight to 100 %
skipping the remaining steps and analyses), `greenlight reject RUN_ID` / `greenlight abort --service S` (abort).

Kinds of pause: `approval` (a human must answer; no answer within the timeout is a rejection), `timed` (the
step's `pause_s`; no answer means go on), `inconclusive` (an analysis could not decide: a human must answer).
`decide` is pure; `pause_for_decision` does the pausing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydantic import Field

from prefect_greenlight.tasks.record.approval import POLL_INTERVAL_S, RunInput, _resume_self
from prefect_greenlight.tasks.record.report import say


class CanaryStepForm(RunInput):
    """What whoever answers a paused canary fills in."""

    approve: bool = Field(False, description="Go on with the canary (unticked: abort, stable back to 100 %).")
    full: bool = Field(False, description="Skip the remaining steps and analyses: straight to 100 %.")
    reason: str = Field("", description="Why (recorded in the flow run).")
    approver: str = Field("", description="Who is answering.")


@dataclass(frozen=True)
class StepDecision:
    approved: bool
    full: bool
    reason: str
    approver: str
    how: str  # "human", "timeout"

    def note(self) -> str:
        verdict = ("promoted to 100 %" if self.full else "approved") if self.approved else "rejected"
        who = self.approver or ("nobody" if self.how == "timeout" else "unknown")
        return f"{verdict} by {who} ({self.how}){': ' + self.reason if self.reason else ''}"


def decide(kind: str, answer: CanaryStepForm | None, waited_s: float) -> StepDecision:
    if answer is not None:
        return StepDecision(bool(answer.approve), bool(answer.approve and answer.full), answer.reason,
                            answer.approver, "human")
    if kind == "timed":
        return StepDecision(True, False, f"pause of {waited_s:.0f} s over", "greenlight", "timeout")
    return StepDecision(False, False, f"no answer within {waited_s:.0f} s", "", "timeout")


def pause_for_decision(kind: str, timeout_s: float, description: str) -> StepDecision:
    """Pause the current flow run until someone answers or `timeout_s` passes."""
    from prefect.context import FlowRunContext
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    ctx = FlowRunContext.get()
    run_id = str(ctx.flow_run.id) if ctx and ctx.flow_run else "?"
    say(f"paused ({kind}) for up to {timeout_s:.0f} s: greenlight approve {run_id}  |  "
        f"greenlight promote {run_id} [--full]  |  greenlight reject {run_id}")
    form = CanaryStepForm.with_initial_data(description=description, approve=kind == "timed")
    started = time.monotonic()
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=max(1, int(timeout_s)), poll_interval=POLL_INTERVAL_S)
        return decide(kind, answer, time.monotonic() - started)
    except FlowPauseTimeout:
        _resume_self()
        return decide(kind, None, time.monotonic() - started)


def resume_canary(flow_run_id: str, approve: bool, full: bool = False, reason: str = "", approver: str = "") -> None:
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(flow_run_id, run_input={"approve": approve, "full": full, "reason": reason,
                                            "approver": approver})


def paused_state(flow_run_id: str) -> str:
    """The flow run's state name ("Paused", "Running", ...), or "" when Prefect does not know it."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
            return run.state.name if run.state else ""
    except Exception:  # noqa: BLE001 - unknown run, unreachable API
        return ""
