"""UndoStack.unwind (newest first, keeps going after a failure) and the safety checks may_remove/may_switch_back."""

from __future__ import annotations

import pytest

from prefect_greenlight.tasks.decisions.undo import may_remove, may_switch_back
from prefect_greenlight.tasks.engine.undo import UndoStack
from prefect_greenlight.tasks.errors import ReleaseFailed, UndoOutcome
from tests.unit.builders import deployment, service


def test_unwind_runs_newest_first_and_empties_the_stack():
    ran: list[str] = []
    stack = UndoStack()
    for name in ("create green", "switch selector", "scale blue"):
        stack.push(name, lambda n=name: ran.append(n) or f"undid {n}")
    assert len(stack) == 3
    outcomes = stack.unwind()
    assert ran == ["scale blue", "switch selector", "create green"]
    assert outcomes == [UndoOutcome("scale blue", True, "undid scale blue"),
                        UndoOutcome("switch selector", True, "undid switch selector"),
                        UndoOutcome("create green", True, "undid create green")]
    assert len(stack) == 0 and stack.unwind() == []


def test_unwind_continues_after_a_failing_step_and_reports_it():
    ran: list[str] = []

    def boom() -> str:
        ran.append("switch back")
        raise RuntimeError("Service web: 422 test op failed")

    stack = UndoStack()
    stack.push("delete green", lambda: ran.append("delete green") or "deleted")
    stack.push("switch back", boom)
    stack.push("restore replicas", lambda: ran.append("restore replicas") or "3 replicas")
    outcomes = stack.unwind()
    assert ran == ["restore replicas", "switch back", "delete green"]
    assert [(o.step, o.ok) for o in outcomes] == [("restore replicas", True), ("switch back", False),
                                                  ("delete green", True)]
    assert outcomes[1].detail == "Service web: 422 test op failed"
    assert str(outcomes[1]) == "FAILED: switch back (Service web: 422 test op failed)"
    failed = ReleaseFailed("smoke failed", "smoke", outcomes)
    assert failed.rolled_back is False and "FAILED: switch back" in str(failed)


def test_every_step_failing_still_runs_all():
    stack = UndoStack()
    for i in range(3):
        stack.push(f"s{i}", lambda i=i: (_ for _ in ()).throw(ValueError(f"e{i}")))
    outcomes = stack.unwind()
    assert [(o.step, o.ok, o.detail) for o in outcomes] == [("s2", False, "e2"), ("s1", False, "e1"),
                                                           ("s0", False, "e0")]


def test_all_ok_means_rolled_back():
    stack = UndoStack()
    stack.push("a", lambda: "fine")
    assert ReleaseFailed("x", "deploy", stack.unwind()).rolled_back is True


BLUE_SEL = {"app": "my-app", "version": "blue"}
BLUE = deployment("my-app-blue", BLUE_SEL)
GREEN = deployment("my-app-green", {"app": "my-app", "version": "green"})


@pytest.mark.parametrize("svc, dep, ok, needle", [
    (service("web", BLUE_SEL), BLUE, False, "Service web still selects my-app-blue"),
    (service("web", {"app": "my-app"}), BLUE, False, "refusing to remove it"),  # selects both colors
    (service("web", {"app": "my-app", "version": "green"}), BLUE, True, "not selected by the Service"),
    (service("web", BLUE_SEL), GREEN, True, "not selected"),
    (service("web", BLUE_SEL), None, True, "already gone"),
    (None, BLUE, True, "the Service is gone"),
    (service("web", None), BLUE, True, "not selected"),  # no selector selects nothing
])
def test_may_remove(svc, dep, ok, needle):
    allowed, why = may_remove(svc, dep)
    assert allowed is ok and needle in why


@pytest.mark.parametrize("ready, replicas, ok, needle", [
    (0, 3, False, "has 0 of 3 ready replicas; switching back would drop traffic"),
    (None, 3, False, "0 of 3"),  # readyReplicas omitted by the API when 0
    (1, 3, True, "1 of 3 my-app-blue replicas ready"),
    (3, 3, True, "3 of 3"),
])
def test_may_switch_back(ready, replicas, ok, needle):
    blue = deployment("my-app-blue", BLUE_SEL, replicas=replicas, ready=ready)
    if ready is None:
        del blue["status"]["readyReplicas"]
    allowed, why = may_switch_back(blue, "my-app-blue")
    assert allowed is ok and needle in why


def test_may_switch_back_refuses_without_status_or_deployment():
    no_status = deployment("my-app-blue", BLUE_SEL, status=False)
    assert may_switch_back(no_status, "my-app-blue")[0] is False
    allowed, why = may_switch_back(None, "my-app-blue")
    assert allowed is False and why == "Deployment my-app-blue no longer exists"


def test_may_switch_back_refuses_when_scaled_to_zero():
    blue = deployment("my-app-blue", BLUE_SEL, replicas=0, ready=0)
    assert may_switch_back(blue, "my-app-blue") == (
        False, "Deployment my-app-blue has 0 of 0 ready replicas; switching back would drop traffic")
