"""The one pause rule (tasks/decisions/pause.py): every kind, every answer, the timeout rule, `full` only where a
pause allows it, and the note that status, history and pipeline status show."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from prefect_greenlight.tasks.decisions.pause import AUTOMATIC, Decision, PauseKind, decide


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
