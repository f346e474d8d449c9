"""One pause for every place a release waits on a person or a clock: the blue-green approval, a canary's pauses
(until approved, for a duration, after an inconclusive analysis) and a pipeline's gate. One form (approve, full,
reason, approver), one decision, one timeout rule:

| kind | who answers | no answer within the timeout |
|---|---|---|
| approval | a person (UI form, `greenlight approve/reject/promote RUN_ID`) | rejected |
| inconclusive | a person: an analysis could not decide | rejected |
| gate | a person: a pipeline's gate before its next stage | rejected |
| timed | nobody needs to: a pause for a duration; a person may answer first | approved |

`full` (straight to 100 %) counts only for an approving answer where the pause allows it (a canary's). Pure: the
pausing itself is tasks/prefect_adapter/pause.py."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class PauseKind(str, Enum):
    APPROVAL = "approval"
    INCONCLUSIVE = "inconclusive"
    GATE = "gate"
    TIMED = "timed"

    @property
    def approves_on_timeout(self) -> bool:
        return self is PauseKind.TIMED


class Answer(Protocol):
    """What a person filled in (the pause form)."""

    approve: bool
    reason: str
    approver: str  # and `full`, where the pause offers it


@dataclass(frozen=True)
class Decision:
    approved: bool
    reason: str
    approver: str
    how: str  # "auto" (no pause), "human", "timeout"
    full: bool = False  # a canary goes straight to 100 %

    def note(self) -> str:
        """`approved by ana (human): looks good`, `rejected by nobody (timeout): no answer within 600 s`."""
        verdict = ("promoted to 100 %" if self.full else "approved") if self.approved else "rejected"
        who = self.approver or ("nobody" if self.how == "timeout" else "unknown")
        return f"{verdict} by {who} ({self.how}){': ' + self.reason if self.reason else ''}"

    def as_dict(self) -> dict:
        return {"approved": self.approved, "full": self.full, "reason": self.reason, "approver": self.approver,
                "how": self.how, "note": self.note()}


AUTOMATIC = Decision(True, "automatic promotion", "greenlight", "auto")


def decide(kind: PauseKind, answer: Answer | None, waited_s: float, allows_full: bool = False) -> Decision:
    """What happened during a pause, as a decision. No answer: the kind's timeout rule."""
    if answer is not None:
        approved = bool(answer.approve)
        return Decision(approved, answer.reason, answer.approver, "human",
                        full=approved and allows_full and bool(getattr(answer, "full", False)))
    if kind.approves_on_timeout:
        return Decision(True, f"no objection within {waited_s:.0f} s", "greenlight", "timeout")
    return Decision(False, f"no answer within {waited_s:.0f} s", "", "timeout")
