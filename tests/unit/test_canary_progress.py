"""A canary re-run resumes with its recorded total (tasks/decisions/canary_progress.py): the decision table, and the
scaling order that never drops capacity."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.decisions.canary_progress import (
    CanaryRecord,
    ResumeAction,
    decide_resume,
    move_order,
)

STEPS = (10, 30, 50, 100)


def rec(state="progressing", step=2, total=10, steps="10,30,50,100", stable="v1", canary="v2", of=4):
    return CanaryRecord.from_progress({"stable": stable, "deployment": canary, "total": str(total), "steps": steps,
                                       "step": f"{step}/{of}", "state": state, "release-id": "r1"})


# (case, record, --total, stable replicas now) -> (action, total, first step to run, 0-based)
CASES = [
    ("no record: total from stable", None, None, 10, ResumeAction.START, 10, 0),
    ("no record: --total wins", None, 12, 10, ResumeAction.START, 12, 0),
    ("promoted before: a new canary starts afresh", rec("promoted", 4), None, 10, ResumeAction.START, 10, 0),
    ("aborted before: afresh (stable is back at its total)", rec("aborted", 0), None, 10, ResumeAction.START, 10, 0),
    ("killed at the start: step 1 again", rec("progressing", 0), None, 10, ResumeAction.RESUME, 10, 0),
    (("killed after moving to step 2, before its analysis passed: step 2 again with the recorded total, not "
      "the shrunken stable's 7"), rec("progressing", 2), None, 7, ResumeAction.RESUME, 10, 1),
    ("killed paused at step 2: step 2 again (its pause had not passed)", rec("paused-approval", 2), None, 7,
     ResumeAction.RESUME, 10, 1),
    ("killed after step 2 passed: step 3 next", rec("passed", 2), None, 7, ResumeAction.RESUME, 10, 2),
    ("killed after the last step passed: only the clean-up", rec("passed", 4), None, 0, ResumeAction.RESUME, 10, 4),
    ("abort that did not finish: from step 1, recorded total", rec("abort-incomplete", 0), None, 6,
     ResumeAction.RESUME, 10, 0),
    ("--total equal to the recorded one", rec("progressing", 2), 10, 7, ResumeAction.RESUME, 10, 1),
    ("record without steps (older): the count must match", rec("progressing", 2, steps=""), None, 7,
     ResumeAction.RESUME, 10, 1),
    ("another --total: refused", rec("progressing", 2), 12, 7, ResumeAction.REFUSE, 0, 0),
    ("other steps: refused", rec("progressing", 2, steps="20,100", of=2), None, 7, ResumeAction.REFUSE, 0, 0),
    ("older record, another number of steps: refused", rec("progressing", 1, steps="", of=2), None, 7,
     ResumeAction.REFUSE, 0, 0),
    ("another canary unfinished: refused", rec("progressing", 2, canary="v3"), None, 7, ResumeAction.REFUSE, 0, 0),
    ("another stable unfinished: refused", rec("progressing", 2, stable="v0"), None, 7, ResumeAction.REFUSE, 0, 0),
    ("unusable recorded total: refused", rec("progressing", 2, total=0), None, 7, ResumeAction.REFUSE, 0, 0),
]


@pytest.mark.parametrize("case,record,total_given,stable_now,action,total,index", CASES, ids=[c[0] for c in CASES])
def test_decide_resume(case, record, total_given, stable_now, action, total, index):
    d = decide_resume(record, "v1", "v2", STEPS, total_given, stable_now)
    assert (d.action, d.total, d.start_index) == (action, total, index), d.message


def test_messages_name_the_record():
    resumed = decide_resume(rec("passed", 2), "v1", "v2", STEPS, None, 7)
    assert resumed.message == ("resuming the unfinished canary v2 of stable v1 (release r1, step 2/4, passed, "
                               "total 10) at step 3/4 (50 %) with the recorded total 10")
    refused = decide_resume(rec("progressing", 2), "v1", "v2", STEPS, 12, 7)
    assert "--total 12 differs from the recorded total 10" in refused.message and "greenlight abort" in refused.message
    other = decide_resume(rec("progressing", 2, canary="v3"), "v1", "v2", STEPS, None, 7)
    assert "the unfinished canary v3 of stable v1" in other.message and "not v2 of v1" in other.message
    assert "the clean-up" in decide_resume(rec("passed", 4), "v1", "v2", STEPS, None, 0).message


@pytest.mark.parametrize("progress", [{}, {"stable": "v1"}, {"deployment": "v2"}])
def test_no_record(progress):
    assert CanaryRecord.from_progress(progress) is None


def test_garbage_fields_parse_to_nothing_usable():
    r = CanaryRecord.from_progress({"stable": "v1", "deployment": "v2", "total": "ten", "step": "x/y",
                                    "steps": "10,abc"})
    assert (r.total, r.step, r.of, r.steps) == (0, 0, 0, ())
    assert decide_resume(r, "v1", "v2", STEPS, None, 7).action is ResumeAction.REFUSE


# (current canary, stable) -> (wanted canary, stable): the order of scalings
ORDERS = [
    ((1, 9), (3, 7), ("canary", "stable")),   # a forward step: canary up first, then stable down
    ((0, 10), (1, 9), ("canary", "stable")),  # the first step
    ((3, 7), (3, 7), ()),                     # resumed at the step it was at: nothing to scale
    ((5, 9), (5, 5), ("stable",)),            # killed between the canary's raise and stable's lower
    ((5, 2), (1, 9), ("stable", "canary")),   # an abort that did not finish: stable up before the canary goes down
    ((0, 0), (10, 0), ("canary",)),
]


@pytest.mark.parametrize("current,want,order", ORDERS)
def test_move_order_raises_before_it_lowers(current, want, order):
    assert move_order(*current, *want) == order
