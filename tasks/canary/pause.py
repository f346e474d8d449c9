"""Pauses between canary steps, with the one pause of every release (tasks/prefect_adapter/pause.py; its rule,
tasks/decisions/pause.py). Answers: `greenlight approve RUN_ID` (next step), `greenlight promote RUN_ID [--full]`
(next step, or straight to 100 % skipping the remaining steps and analyses), `greenlight reject RUN_ID` /
`greenlight abort --service S` (abort).

Kinds: `approval` (a person must answer; no answer within the timeout is a rejection), `timed` (the step's pause;
no answer means go on), `inconclusive` (an analysis could not decide: a person must answer).
"""

from __future__ import annotations

from prefect_greenlight.tasks.decisions.pause import Decision, PauseKind
from prefect_greenlight.tasks.prefect_adapter.pause import answer_run, pause_run, run_state_name


def pause_for_decision(kind: str, timeout_s: float, description: str) -> Decision:
    """Pause the current flow run until someone answers or `timeout_s` passes; `full` may be answered."""
    return pause_run(PauseKind(kind), timeout_s, description, allows_full=True)


def resume_canary(flow_run_id: str, approve: bool, full: bool = False, reason: str = "", approver: str = "") -> None:
    answer_run(flow_run_id, approve, full=full, reason=reason, approver=approver)


def paused_state(flow_run_id: str) -> str:
    """The flow run's state name ("Paused", "Running", ...), or "" when Prefect does not know it."""
    return run_state_name(flow_run_id)
