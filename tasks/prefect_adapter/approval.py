"""Step 5, approval: the blue-green release pauses with the one pause form (tasks/prefect_adapter/pause.py) whose
description summarises the release. Modes: auto (no pause); manual (a person must answer within timeout_s, else it
counts as a rejection); timed (approved after auto_after_s unless a person answers first).
"""

from __future__ import annotations

from prefect_greenlight.tasks.decisions.pause import Decision, PauseKind
from prefect_greenlight.tasks.prefect_adapter.pause import answer_run, pause_run
from prefect_greenlight.tasks.spec import Approval, ApprovalMode


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


def request_approval(approval: Approval, description: str) -> Decision:
    """Pause the current flow run for an answer (no pause in auto mode): the one pause of
    tasks/prefect_adapter/pause.py, its rule tasks/decisions/pause.py."""
    kind = {ApprovalMode.AUTO: None, ApprovalMode.MANUAL: PauseKind.APPROVAL,
            ApprovalMode.TIMED: PauseKind.TIMED}[approval.mode]
    timeout = approval.auto_after_s if approval.mode is ApprovalMode.TIMED else approval.timeout_s
    return pause_run(kind, timeout, description)


def resume(flow_run_id: str, approve: bool, reason: str = "", approver: str = "") -> None:
    """Answer a paused release from code or the CLI (`greenlight approve/reject RUN_ID`)."""
    answer_run(flow_run_id, approve, reason=reason, approver=approver)
