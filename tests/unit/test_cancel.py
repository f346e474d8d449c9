"""Cancel means abort: which interruptions are a cancel (cancel_means_undo, cancel_requested), what a cancelled
release reports (ReleaseFailed, final events), and a SIGTERM during a rollback that must not cut it short."""

from __future__ import annotations

import os
import signal

import pytest
from prefect.exceptions import TerminationSignal

from prefect_greenlight.tasks.decisions.undo import cancel_means_undo
from prefect_greenlight.tasks.errors import CancelRequested, ReleaseFailed, UndoOutcome
from prefect_greenlight.tasks.prefect_adapter import cancellation
from prefect_greenlight.tasks.record.events import ReleaseEvent
from prefect_greenlight.tasks.record.journal import final_events


@pytest.mark.parametrize(("terminated", "intent", "state", "undo"), [
    (True, "cancel", None, True),             # the worker's runner said cancel, then SIGTERM
    (True, "cancel", "RUNNING", True),        # the intent wins over a stale read
    (True, None, "CANCELLING", True),         # the control channel failed; the API says cancelling
    (True, None, "CANCELLED", True),
    (True, None, "RUNNING", False),           # a plain SIGTERM (pod eviction, kill): a re-run converges
    (True, None, None, False),
    (True, "reschedule", "CANCELLING", False),  # the worker hands the run over: never undo
    (True, "relinquish", None, False),
    (False, "cancel", "CANCELLING", False),   # not interrupted by Prefect at all
])
def test_which_interruptions_are_a_cancel(terminated, intent, state, undo):
    assert cancel_means_undo(terminated, intent, state) is undo


def test_cancel_requested_reads_the_intent_then_the_api(monkeypatch):
    monkeypatch.setattr(cancellation, "_intent", lambda: "cancel")
    monkeypatch.setattr(cancellation, "_run_state", lambda: pytest.fail("the intent alone decides"))
    assert isinstance(cancellation.cancel_requested(TerminationSignal(signal.SIGTERM)), CancelRequested)
    monkeypatch.setattr(cancellation, "_intent", lambda: None)
    monkeypatch.setattr(cancellation, "_run_state", lambda: "RUNNING")
    assert cancellation.cancel_requested(TerminationSignal(signal.SIGTERM)) is None
    monkeypatch.setattr(cancellation, "_run_state", lambda: "CANCELLING")
    assert cancellation.cancel_requested(TerminationSignal(signal.SIGTERM)) is not None
    assert cancellation.cancel_requested(KeyboardInterrupt()) is None


def test_a_cancelled_release_reports_cancelled_with_its_undo_steps_and_is_no_failure():
    failure = ReleaseFailed(reason=cancellation.CANCEL_REASON, phase="post-switch", cancelled=True,
                            undo=[UndoOutcome("switch Service web back to blue", True, "3 endpoints, all blue"),
                                  UndoOutcome("delete green", True, "deleted")])
    text = str(failure)
    assert text.startswith("release cancelled during post-switch: the flow run was cancelled in Prefect")
    assert "  - ok: switch Service web back to blue (3 endpoints, all blue)" in text
    assert "  - ok: delete green (deleted)" in text
    assert final_events("blue-green", "cancelled") == [ReleaseEvent.ROLLED_BACK]
    assert final_events("canary", "cancelled") == [ReleaseEvent.ROLLED_BACK]
    assert final_events("canary", "rollback-incomplete") == [ReleaseEvent.FAILED]


def test_a_sigterm_during_the_rollback_is_deferred_and_the_handler_restored():
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))
    try:
        with cancellation.sigterm_deferred():
            os.kill(os.getpid(), signal.SIGTERM)  # would interrupt the undo steps
            finished = True
        assert finished and seen == []
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_failure_while_the_run_is_cancelling_becomes_the_cancel(monkeypatch):
    """A pause refused because the run just went CANCELLING is the cancel arriving early: without a worker's
    SIGTERM within the wait, the cancel is raised here with the intent recorded, so the engine ends it Cancelled."""
    from prefect._internal import control_listener

    monkeypatch.setattr(cancellation, "_run_state", lambda: "RUNNING")
    assert cancellation.await_cancel(wait_s=0.1) is None  # an ordinary failure: roll back as a failure
    monkeypatch.setattr(cancellation, "_run_state", lambda: "CANCELLING")
    try:
        with pytest.raises(TerminationSignal):
            cancellation.await_cancel(wait_s=0.3)
        assert control_listener.get_intent() == "cancel"
        assert isinstance(cancellation.cancel_requested(TerminationSignal(signal.SIGTERM)), CancelRequested)
    finally:
        control_listener.clear_intent()
