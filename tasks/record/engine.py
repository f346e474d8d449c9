"""One cut in how Prefect's flow engine ends a run (BENCHMARKS.md, cut 3): it joins its heartbeat thread, which
sleeps in 1-second slices, so every run waits up to 1 s (0.4 s measured on average) after its final state was
recorded. The thread is a daemon and ends itself at its next slice; greenlight lets it. Heartbeats are still sent
while the run runs (every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds), so nothing that watches them changes."""

from __future__ import annotations

import inspect
import logging

log = logging.getLogger(__name__)


def heartbeats_not_joined() -> bool:
    """Make the engine's heartbeat context not join its thread; True when in effect (idempotent). A Prefect whose
    engine lacks the hook (renamed, other signature) is left as it is."""
    try:
        import prefect.flow_engine as engine
    except ImportError:  # pragma: no cover - Prefect is a dependency
        return False
    original = getattr(engine, "_send_heartbeats", None)
    if original is None:
        return False
    if getattr(original, "greenlight_unjoined", False):
        return True
    if "join_on_exit" not in inspect.signature(original).parameters:
        log.debug("prefect.flow_engine._send_heartbeats has no join_on_exit: left as it is")
        return False

    def unjoined(flow_engine, join_on_exit: bool = True):
        return original(flow_engine, join_on_exit=False)

    unjoined.greenlight_unjoined = True  # type: ignore[attr-defined]
    engine._send_heartbeats = unjoined
    return True
