"""The one pause rule (tasks/decisions/pause.py): every kind, every answer, the timeout rule, `full` only where a
pause allows it, and the note that status, history and pipeline status show."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from prefect.states import Crashed, Paused

from prefect_greenlight.tasks.decisions.pause import AUTOMATIC, Decision, PauseKind, decide
from prefect_greenlight.tasks.errors import PermanentError
from prefect_greenlight.tasks.prefect_adapter import pause


@dataclass
class Form:
    approve: bool = False
    full: bool = False
    reason: str = ""
    approver: str = ""


@pytest.mark.parametrize("kind,approved", [(PauseKind.APPROVAL, False), (PauseKind.INCONCLUSIVE, False),
                                           (PauseKind.GATE, False), (PauseKind.TIMED, True)])
def test_no_answer_follows_the_kinds_timeout_rule(kind, approved):
    d = decide(kind, None, 600.4)
    assert (d.approved, d.how, d.full) == (approved, "timeout", False)
    assert d.note() == ("approved by greenlight (timeout): no objection within 600 s" if approved
                        else "rejected by nobody (timeout): no answer within 600 s")


@pytest.mark.parametrize("kind", list(PauseKind))
@pytest.mark.parametrize("approve,full,allows_full,want_full", [
    (True, False, True, False), (True, True, True, True), (True, True, False, False), (False, True, True, False)])
def test_a_persons_answer_decides_whatever_the_kind(kind, approve, full, allows_full, want_full):
    d = decide(kind, Form(approve, full, "why", "ana"), 3, allows_full)
    assert (d.approved, d.full, d.approver, d.reason, d.how) == (approve, want_full, "ana", "why", "human")


def test_notes_say_who_and_why():
    assert Decision(True, "looks good", "ana", "human").note() == "approved by ana (human): looks good"
    assert Decision(True, "", "ana", "human", full=True).note() == "promoted to 100 % by ana (human)"
    assert Decision(False, "", "", "human").note() == "rejected by unknown (human)"
    assert AUTOMATIC.note() == "approved by greenlight (auto): automatic promotion"
    assert Decision(False, "no", "bo", "human").as_dict() == {
        "approved": False, "full": False, "reason": "no", "approver": "bo", "how": "human",
        "note": "rejected by bo (human): no"}


class FakeClient:
    """Prefect's sync client as resume_self uses it: the run's state, and the states set."""

    def __init__(self, state):
        self.state, self.set = state, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read_flow_run(self, run_id):
        return type("Run", (), {"state": self.state})()

    def set_flow_run_state(self, run_id, state, force=False):
        self.set.append((state.type.value, force))


def test_a_paused_run_whose_pause_timed_out_is_set_running_again(monkeypatch):
    client = FakeClient(Paused())
    monkeypatch.setattr(pause, "current_run_id", lambda: "run-1")
    monkeypatch.setattr(pause, "get_client", lambda sync_client: client)
    pause.resume_self()
    assert client.set == [("RUNNING", True)]


def test_a_run_crashed_while_paused_is_never_forced_back_to_running(monkeypatch):
    client = FakeClient(Crashed(message="no heartbeat from its greenlight worker for 60 s"))
    monkeypatch.setattr(pause, "current_run_id", lambda: "run-1")
    monkeypatch.setattr(pause, "get_client", lambda sync_client: client)
    with pytest.raises(PermanentError, match="marked Crashed while it was paused .no heartbeat"):
        pause.resume_self()
    assert client.set == []


def test_a_timed_pause_that_prefect_marked_failed_never_resumed_is_set_running_again(monkeypatch):
    """How a timed pause ends: Prefect marks the run Failed "paused and never resumed" at the timeout; the release
    goes on (the full make test found timed pauses failing when this was refused)."""
    from prefect.states import Failed

    client = FakeClient(Failed(message="The flow was paused and never resumed."))
    monkeypatch.setattr(pause, "current_run_id", lambda: "run-1")
    monkeypatch.setattr(pause, "get_client", lambda sync_client: client)
    pause.resume_self()
    assert client.set == [("RUNNING", True)]
