"""Does a canary run start afresh or resume the one the Service records? Pure functions, table-tested in
tests/unit/test_canary_progress.py.

A canary records its stable, canary, total, steps and current step on the Service (`greenlight.io/canary-*`, see
tasks/canary/steps.py) at the start and at every step. A re-run after its process died must not take its total
from the shrunken stable (capacity would be lost for good): an unfinished record of the same stable and canary
resumes with the RECORDED total, at the recorded step: again when its analysis or pause had not passed
(state `progressing` / `paused-*`), the next one when it had (`passed`). Another total, other steps, or another
canary while one is unfinished: refused (exit 2, nothing changed): abort the unfinished one first.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

FINISHED = ("promoted", "aborted")  # states after which a new canary starts afresh
PASSED = "passed"  # the step's move, analysis and pause all done


class ResumeAction(str, Enum):
    START = "start"  # no unfinished canary recorded: total from --total or stable's replicas
    RESUME = "resume"  # the recorded canary, with the recorded total, from `start_index`
    REFUSE = "refuse"  # the recorded, unfinished canary is another release: bad input


@dataclass(frozen=True)
class CanaryRecord:
    """What the Service's `greenlight.io/canary-*` annotations say (read_progress's dict, parsed)."""

    stable: str
    canary: str
    total: int
    steps: tuple[int, ...]  # () on records written before the steps were recorded
    step: int  # the step the record was written at (0: started, nothing moved yet)
    of: int  # the number of steps the record counts to
    state: str
    release_id: str = ""

    @classmethod
    def from_progress(cls, progress: dict[str, str]) -> CanaryRecord | None:
        if not progress.get("stable") or not progress.get("deployment"):
            return None
        step, _, of = (progress.get("step") or "0/0").partition("/")
        try:
            steps = tuple(int(p) for p in (progress.get("steps") or "").split(",") if p.strip())
        except ValueError:
            steps = ()
        return cls(progress["stable"], progress["deployment"], _int(progress.get("total")), steps, _int(step),
                   _int(of), progress.get("state") or "", progress.get("release-id") or "")

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


@dataclass(frozen=True)
class ResumeDecision:
    action: ResumeAction
    total: int
    start_index: int  # 0-based index of the first step this run moves to
    message: str


def resume_index(record: CanaryRecord) -> int:
    """The first step (0-based) to run again: the recorded one unless it had passed, then the next."""
    if record.step <= 0:
        return 0
    return record.step if record.state == PASSED else record.step - 1


def decide_resume(record: CanaryRecord | None, stable: str, canary: str, steps: tuple[int, ...],
                  total_given: int | None, stable_replicas: int) -> ResumeDecision:
    """What a canary run of `stable` -> `canary` over `steps` does, given the Service's record."""
    fresh_total = total_given or stable_replicas
    if record is None or record.finished:
        return ResumeDecision(ResumeAction.START, fresh_total, 0, f"starting the canary {canary} (total "
                              f"{fresh_total})")
    where = (f"the unfinished canary {record.canary} of stable {record.stable} (release "
             f"{record.release_id or '?'}, step {record.step}/{record.of}, {record.state or 'no state'}, total "
             f"{record.total})")
    if (record.stable, record.canary) != (stable, canary):
        return _refuse(f"Service records {where}: not {canary} of {stable}. Finish it by running it again, or "
                       "`greenlight abort` it first")
    if record.total < 1:
        return _refuse(f"Service records {where} without a usable total: `greenlight abort` it first")
    if total_given and total_given != record.total:
        return _refuse(f"--total {total_given} differs from the recorded total {record.total} of {where}: "
                       "resume it with its own total, or `greenlight abort` it first")
    if (record.steps and record.steps != tuple(steps)) or (not record.steps and record.of != len(steps)):
        recorded = ",".join(map(str, record.steps)) or f"{record.of} steps"
        return _refuse(f"steps {','.join(map(str, steps))} differ from the recorded steps {recorded} of {where}: "
                       "resume it with its own steps, or `greenlight abort` it first")
    index = min(resume_index(record), len(steps))
    at = f"step {index + 1}/{len(steps)} ({steps[index]} %)" if index < len(steps) else "the clean-up"
    return ResumeDecision(ResumeAction.RESUME, record.total, index,
                          f"resuming {where} at {at} with the recorded total {record.total}")


def _refuse(message: str) -> ResumeDecision:
    return ResumeDecision(ResumeAction.REFUSE, 0, 0, message)


def move_order(current_canary: int, current_stable: int, want_canary: int, want_stable: int) -> tuple[str, ...]:
    """Which Deployments to scale, in order, so capacity never drops: a raise before a lower. Forward steps raise
    the canary first; a resume finding stable below its count (an abort that did not finish) raises stable first."""
    order = []
    if want_stable > current_stable:
        order.append("stable")
    if want_canary != current_canary:
        order.append("canary")
    if want_stable < current_stable:
        order.append("stable")
    return tuple(order)
