"""Step 5, approval: pause the flow run with a form in the Prefect UI (approve: bool, reason, approver) whose
description summarises the release. The default answer is "no": a resume without input rejects.

Modes: auto (no pause); manual (wait up to timeout_s, then count it a rejection); timed (approve after
auto_after_s unless a human answers first). `decide` is pure; `request_approval` does the pausing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import Field

from prefect_greenlight.tasks.spec import Approval, ApprovalMode

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 2


try:
    from prefect.input import RunInput
except ImportError:  # pragma: no cover - prefect is a hard dependency; this keeps the pure part importable
    from pydantic import BaseModel as RunInput  # type: ignore[assignment]


class ApprovalForm(RunInput):
    """What the approver fills in."""

    approve: bool = Field(False, description="Promote green: switch the Service's traffic to it.")
    reason: str = Field("", description="Why (recorded on the Service and in the flow run).")
    approver: str = Field("", description="Who is answering.")


@dataclass(frozen=True)
class ApprovalDecision:
    approved: bool
    reason: str
    approver: str
    how: str  # "auto", "human", "timeout"

    def note(self) -> str:
        verdict = "approved" if self.approved else "rejected"
        who = self.approver or ("nobody" if self.how == "timeout" else "unknown")
        return f"{verdict} by {who} ({self.how}){': ' + self.reason if self.reason else ''}"


def decide(mode: ApprovalMode, answer: ApprovalForm | None, timed_out: bool, waited_s: float) -> ApprovalDecision:
    """Turn what happened during the pause into a decision."""
    if mode is ApprovalMode.AUTO:
        return ApprovalDecision(True, "automatic promotion", "greenlight", "auto")
    if timed_out or answer is None:
        if mode is ApprovalMode.TIMED:
            return ApprovalDecision(True, f"no objection within {waited_s:.0f} s", "greenlight", "timeout")
        return ApprovalDecision(False, f"no answer within {waited_s:.0f} s", "", "timeout")
    return ApprovalDecision(bool(answer.approve), answer.reason, answer.approver, "human")


def _labels(selector: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def summary_markdown(summary: dict, smoke_rows: list[dict]) -> str:
    lines = [
        f"### Promote `{summary['green']}` for Service `{summary['service']}`?",
        "",
        f"- namespace: `{summary['namespace']}` · release `{summary['release_id']}`",
        f"- live now: `{summary['blue']}` ({summary['blue_replicas']} replicas, `{summary['blue_image']}`)",
        f"- candidate: `{summary['green']}` ({summary['green_replicas']} replicas, "
        f"`{', '.join(summary['green_images'])}`)",
        f"- selector: `{_labels(summary['selector_now'])}` → `{_labels(summary['selector_after'])}`",
        f"- after the switch: blue is `{summary['cleanup']}` after {summary['scale_down_delay_s']:.0f} s",
    ]
    if summary.get("preview_service"):
        lines.append(f"- preview: Service `{summary['preview_service']}` already serves `{summary['green']}` "
                     f"(try it: `kubectl -n {summary['namespace']} port-forward svc/{summary['preview_service']} …`)")
    if smoke_rows:
        passed = sum(1 for r in smoke_rows if r["ok"])
        lines += ["", f"**Smoke checks: {passed} of {len(smoke_rows)} passed**", "",
                  "| pod | path | status | ms | ok |", "|---|---|---|---:|---|"]
        lines += [f"| {r['pod']} | {r['path']} | {r['status']} | {r['latency_ms']} | {r['ok']} |" for r in smoke_rows]
    lines += ["", "Tick **approve** to switch traffic; leave it unticked to reject (green is rolled back)."]
    return "\n".join(lines)


def request_approval(approval: Approval, description: str) -> ApprovalDecision:
    """Pause the current flow run for an answer (no-op in auto mode)."""
    if approval.mode is ApprovalMode.AUTO:
        return decide(approval.mode, None, False, 0)
    import time

    from prefect.context import FlowRunContext
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    from prefect_greenlight.tasks.record.report import say

    timeout = approval.auto_after_s if approval.mode is ApprovalMode.TIMED else approval.timeout_s
    form = ApprovalForm.with_initial_data(description=description, approve=False)
    ctx = FlowRunContext.get()
    run_id = str(ctx.flow_run.id) if ctx and ctx.flow_run else "?"
    say(f"waiting up to {timeout:.0f} s for approval ({approval.mode.value}): "
        f"greenlight approve {run_id}  |  greenlight reject {run_id}")
    started = time.monotonic()
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=max(1, int(timeout)),
                                poll_interval=POLL_INTERVAL_S)
        return decide(approval.mode, answer, False, time.monotonic() - started)
    except FlowPauseTimeout:
        _resume_self()
        return decide(approval.mode, None, True, time.monotonic() - started)


def _resume_self() -> None:
    """After a pause times out the server still shows the run Paused; move it back to Running so the release
    can finish (roll back, or promote in timed mode) and end in a true final state."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.states import Running

    ctx = FlowRunContext.get()
    if ctx is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(ctx.flow_run.id, Running(), force=True)


def resume(flow_run_id: str, approve: bool, reason: str = "", approver: str = "") -> None:
    """Answer a paused release from code or the CLI (`greenlight approve/reject RUN_ID`)."""
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(flow_run_id, run_input={"approve": approve, "reason": reason, "approver": approver})
