"""tasks/prefect_adapter/private_api.py: every private part of Prefect greenlight uses, checked against the
installed Prefect (`make test` runs this file on both ends of the supported range), with its fallback exercised.
A shape that changes fails here first, naming what changed, instead of silently turning a fallback on."""

from __future__ import annotations

import ast
import asyncio
import logging
import signal
from pathlib import Path
from types import SimpleNamespace

import prefect
import prefect.flow_engine as engine
import pytest
from prefect.exceptions import TerminationSignal
from prefect.workers.base import BaseWorker

from prefect_greenlight.tasks.prefect_adapter import private_api
from prefect_greenlight.tasks.prefect_adapter.private_api import SHAPES, Shape, heartbeats_not_joined

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = ROOT / "tasks" / "prefect_adapter" / "private_api.py"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.attribute)
def test_the_installed_prefect_has_every_shape_greenlight_uses(shape):
    assert shape.problem() is None, f"Prefect {prefect.__version__}: {shape.problem()}"


def test_a_base_worker_has_the_attributes_greenlight_reads():
    from prefect_greenlight.worker.worker import GreenlightWorker

    worker = GreenlightWorker(work_pool_name="shape-check")
    missing = [a for a in private_api.WORKER_ATTRIBUTES if not hasattr(worker, a)]
    assert not missing, f"Prefect {prefect.__version__}: BaseWorker lacks {missing}"


def test_a_missing_or_reshaped_thing_is_reported_not_raised():
    assert "is missing" in Shape("prefect.flow_engine", "no_such_thing", fallback="x").problem()
    assert "is missing" in Shape("prefect.no_such_module", "x").problem()
    reshaped = Shape("prefect.flow_engine", "_send_heartbeats", ("join_on_exit", "no_such_parameter"))
    assert "lacks parameters ['no_such_parameter']" in reshaped.problem()


def test_the_heartbeat_context_is_entered_without_join(monkeypatch):
    calls = []

    def original(flow_engine, join_on_exit: bool = True):
        calls.append((flow_engine, join_on_exit))
        return "context"

    monkeypatch.setattr(engine, "_send_heartbeats", original)
    assert heartbeats_not_joined() is True
    assert heartbeats_not_joined() is True  # idempotent: not wrapped twice
    assert engine._send_heartbeats("engine") == "context"
    assert engine._send_heartbeats("engine", join_on_exit=True) == "context"
    assert calls == [("engine", False), ("engine", False)]


def test_fallback_an_engine_without_the_hook_is_left_alone(monkeypatch):
    def other(flow_engine):
        return "context"

    monkeypatch.setattr(engine, "_send_heartbeats", other)
    assert heartbeats_not_joined() is False
    assert engine._send_heartbeats is other
    monkeypatch.delattr(engine, "_send_heartbeats")
    assert heartbeats_not_joined() is False


def test_the_cancel_intent_round_trips_through_prefects_control_listener():
    from prefect._internal import control_listener

    try:
        assert private_api.cancel_intent() is None
        assert private_api.record_cancel_intent() is True
        assert private_api.cancel_intent() == "cancel"
    finally:
        control_listener.clear_intent()


def test_fallback_without_a_control_listener_the_api_state_decides(monkeypatch):
    from prefect_greenlight.tasks.prefect_adapter import cancellation

    monkeypatch.setattr(private_api, "GET_INTENT", Shape("prefect._internal.gone", "get_intent"))
    monkeypatch.setattr(private_api, "SET_INTENT", Shape("prefect._internal.gone", "_set_intent"))
    assert private_api.cancel_intent() is None
    assert private_api.record_cancel_intent() is False
    monkeypatch.setattr(cancellation, "_run_state", lambda: "CANCELLING")
    assert cancellation.cancel_requested(TerminationSignal(signal.SIGTERM)) is not None
    monkeypatch.setattr(cancellation, "_run_state", lambda: "RUNNING")
    assert cancellation.cancel_requested(TerminationSignal(signal.SIGTERM)) is None


class _Client:
    def __init__(self):
        self.states = []

    async def set_flow_run_state(self, flow_run_id, state, force=False):
        self.states.append((flow_run_id, state.type.value, state.message, force))


def test_fallback_final_states_through_the_public_client(monkeypatch):
    """Where BaseWorker's private state helpers are gone, the public client sets the state, forced."""
    monkeypatch.setattr(private_api, "PROPOSE_CRASHED", Shape("prefect.workers.base", "BaseWorker._gone"))
    monkeypatch.setattr(private_api, "MARK_CANCELLED", Shape("prefect.workers.base", "BaseWorker._gone"))
    worker = SimpleNamespace(client=_Client())
    run = SimpleNamespace(id="run-1")
    asyncio.run(private_api.mark_crashed(worker, run, "thread died"))
    asyncio.run(private_api.mark_cancelled(worker, run, "cancelled"))
    assert worker.client.states == [("run-1", "CRASHED", "thread died", True),
                                    ("run-1", "CANCELLED", "cancelled", True)]


def test_fallback_worker_internals_missing(caplog):
    worker = SimpleNamespace()
    assert private_api.worker_pool_name(worker) is None
    assert private_api.worker_logger(worker) is private_api.log

    async def loop():
        pass

    with caplog.at_level(logging.WARNING):
        assert private_api.start_in_worker(worker, loop) is False
    assert "loop not started" in caplog.text


def test_the_base_cancel_hook_is_still_called_by_the_base_worker():
    """The override of `_cancel_run` only helps while BaseWorker calls it; the cancel poll covers the rest."""
    import inspect

    assert "self._cancel_run" in inspect.getsource(BaseWorker)


def _private_uses(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prefect._internal"):
            found.append(node.module)
        if isinstance(node, ast.Attribute) and node.attr in private_api.WORKER_ATTRIBUTES + (
                "_propose_crashed_state", "_mark_flow_run_as_cancelled", "_send_heartbeats"):
            found.append(node.attr)
    return found


def test_no_private_prefect_use_outside_the_adapter():
    uses = {}
    for top in ("flows", "tasks", "cli", "worker"):
        for path in (ROOT / top).rglob("*.py"):
            if path != ADAPTER and (found := _private_uses(ast.parse(path.read_text()))):
                uses[str(path.relative_to(ROOT))] = found
    assert not uses, f"private Prefect parts used outside tasks/prefect_adapter/private_api.py: {uses}"
    assert _private_uses(ast.parse(ADAPTER.read_text())), "the check itself finds the adapter's uses"
