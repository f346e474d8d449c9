"""tasks/record/engine.py: the flow engine's heartbeat context no longer joins its thread; everything else of it
(the heartbeat thread itself) stays."""

from __future__ import annotations

import prefect.flow_engine as engine

from prefect_greenlight.tasks.record.engine import heartbeats_not_joined


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


def test_an_engine_without_the_hook_is_left_alone(monkeypatch):
    def other(flow_engine):
        return "context"

    monkeypatch.setattr(engine, "_send_heartbeats", other)
    assert heartbeats_not_joined() is False
    assert engine._send_heartbeats is other


def test_the_installed_prefect_has_the_hook():
    """Fails when an upgrade of Prefect renames it: then the cut silently stops working and this says so."""
    import inspect

    assert "join_on_exit" in inspect.signature(engine._send_heartbeats).parameters
