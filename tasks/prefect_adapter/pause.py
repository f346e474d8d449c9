"""Pausing a release's flow run for a decision (tasks/decisions/pause.py), with Prefect's own pause: the run shows
Paused with a form in the UI (its description says what is being decided), and any of the UI, `greenlight
approve|reject|promote RUN_ID` or `resume_flow_run` answers it. The form's default answer is the safe one (not
approved), because a resume without input returns the defaults. After a timeout the server still shows the run
Paused; it is moved back to Running so the release can finish (roll back, or go on for a timed pause) and end in
a true final state."""

from __future__ import annotations

import time

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput
from prefect.states import Running
from pydantic import Field

from prefect_greenlight.tasks.decisions.pause import AUTOMATIC, Decision, PauseKind, decide
from prefect_greenlight.tasks.errors import PermanentError
from prefect_greenlight.tasks.record.report import say

POLL_INTERVAL_S = 2


class PauseForm(RunInput):
    """What whoever answers a paused release fills in."""

    approve: bool = Field(False, description="Go on (unticked: stop, and the release is rolled back).")
    reason: str = Field("", description="Why (recorded on the Service, in the history and in the flow run).")
    approver: str = Field("", description="Who is answering.")


class PromoteForm(PauseForm):
    """The same form where a pause may also skip ahead (a canary's)."""

    full: bool = Field(False, description="Skip the remaining steps and analyses: straight to 100 %.")


def current_run_id() -> str:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else ""


def pause_run(kind: PauseKind | None, timeout_s: float, description: str, allows_full: bool = False) -> Decision:
    """Pause the current flow run until someone answers or `timeout_s` passes (`kind` None: no pause at all)."""
    if kind is None:
        return AUTOMATIC
    run_id = current_run_id() or "?"
    answers = f"greenlight approve {run_id}  |  greenlight reject {run_id}"
    answers += f"  |  greenlight promote {run_id} [--full]" if allows_full else ""
    say(f"paused ({kind.value}) for up to {timeout_s:.0f} s: {answers}")
    form = (PromoteForm if allows_full else PauseForm).with_initial_data(description=description,
                                                                         approve=kind.approves_on_timeout)
    started = time.monotonic()
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=max(1, int(timeout_s)), poll_interval=POLL_INTERVAL_S)
        return decide(kind, answer, time.monotonic() - started, allows_full)
    except FlowPauseTimeout:
        resume_self()
        return decide(kind, None, time.monotonic() - started, allows_full)


def resume_self() -> None:
    """After a pause's timeout the run is back to Running, so that the release finishes: Prefect shows it still
    Paused, or Failed "paused and never resumed" (its own mark of a pause that timed out, how a timed pause ends).
    A run marked Crashed meanwhile (its worker went silent: the heartbeat automation) or being cancelled was ended
    by someone else: PermanentError, never forced back to Running."""
    run_id = current_run_id()
    if not run_id:
        return
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
        if state is not None and (state.is_crashed() or state.is_cancelling() or state.is_cancelled()):
            raise PermanentError(f"this run was marked {state.name} while it was paused "
                                 f"({(state.message or '')[:300]}); it is not resumed")
        client.set_flow_run_state(run_id, Running(), force=True)


def answer_run(flow_run_id: str, approve: bool, full: bool = False, reason: str = "", approver: str = "") -> None:
    """Answer a paused release from code or the CLI (`full` only where the pause offers it: the server checks
    the answer against the paused run's form)."""
    answer = {"approve": approve, "reason": reason, "approver": approver, **({"full": True} if full else {})}
    resume_flow_run(flow_run_id, run_input=answer)


def run_state_name(flow_run_id: str) -> str:
    """The flow run's state name ("Paused", "Running", ...), or "" when Prefect does not know it."""
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
            return run.state.name if run.state else ""
    except Exception:  # noqa: BLE001 - unknown run, unreachable API
        return ""
