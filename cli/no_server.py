"""No Prefect server configured (no PREFECT_API_URL in the environment or the active Prefect profile): Prefect
runs each command's flow on a temporary server of its own, started in the background and stopped at exit (its
runs stay in $PREFECT_HOME/prefect.db, but nothing serves its UI afterwards). Left alone, that prints Prefect's
"Starting/Stopping temporary server" lines, the temporary server's failed telemetry call (which would reach
outside the machine), and `--- Error logging to API --- All connection attempts failed` when the last log batch is
sent after the server has stopped. Instead greenlight says in one line what is happening and how to point at a
real server, switches telemetry off (PREFECT_SERVER_ANALYTICS_ENABLED=false for the server, DO_NOT_TRACK=1 for
the SDK), gives the temporary server time to start on a busy machine, hides Prefect's two server lines and sends
the last logs before the server stops.
"""

from __future__ import annotations

import logging
import os
import sys
import tomllib
from pathlib import Path

NOTICE = ("greenlight: no Prefect server configured (PREFECT_API_URL): this run uses a temporary local server that "
          "stops when it ends; for a real one: `prefect server start`, then "
          "`export PREFECT_API_URL=http://127.0.0.1:4200/api`")
QUIET_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
             "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90"}
FLOW_COMMANDS = frozenset({"blue-green", "canary", "rollback", "abort", "webhook"})
_SERVER_LINES = ("Starting temporary server on", "Stopping temporary server on")
_DRAIN_LINE = "Still processing items:"  # Prefect's queue services while they send their last batch at exit
_QUEUE_LOGGERS = ("EventsWorker", "APILogWorker")  # Prefect names each service's logger after its class


def _profiles_path(env: dict) -> Path:
    if env.get("PREFECT_PROFILES_PATH"):
        return Path(env["PREFECT_PROFILES_PATH"]).expanduser()
    home = Path(env.get("PREFECT_HOME") or Path(env.get("HOME", "~")) / ".prefect").expanduser()
    return home / "profiles.toml"


def server_configured(env: dict, profiles_text: str | None) -> bool:
    """Whether Prefect will talk to a real server: PREFECT_API_URL in the environment, or in the active profile
    (PREFECT_PROFILE, else the profiles file's `active`)."""
    if env.get("PREFECT_API_URL"):
        return True
    if not profiles_text:
        return False
    try:
        data = tomllib.loads(profiles_text)
    except tomllib.TOMLDecodeError:
        return False
    active = env.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    return bool(((data.get("profiles") or {}).get(active) or {}).get("PREFECT_API_URL"))


def prepare(argv: list[str], env: dict | None = None) -> bool:
    """Before Prefect is imported. Returns True when the temporary server will be used (and was announced)."""
    env = os.environ if env is None else env
    path = _profiles_path(env)
    text = path.read_text() if path.is_file() else None
    if server_configured(env, text):
        return False
    for key, value in QUIET_ENV.items():
        env.setdefault(key, value)
    if argv[:1] and argv[0] in FLOW_COMMANDS:
        print(NOTICE, file=sys.stderr)
    return True


class _HideServerLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_SERVER_LINES)


class _HideDrainLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_DRAIN_LINE)


def hide_server_lines() -> None:
    """Prefect's own announcement of the temporary server (the notice said it in one line): logged on the
    `prefect` logger itself, so a filter there drops it before any handler."""
    logger = logging.getLogger("prefect")
    if not any(isinstance(f, _HideServerLines) for f in logger.filters):
        logger.addFilter(_HideServerLines())


def hide_drain_lines() -> None:
    """`Still processing items: N items remaining...`, which Prefect's event and log workers print when they are
    stopped with a backlog (a busy machine): the flush below waits for them anyway, so the line says nothing the
    user can act on. Their loggers are not under `prefect`, hence a filter on each. Installed when a flow command
    starts (cli/quiet.py) and again, idempotently, by the flush, which every temporary-server command reaches."""
    for name in _QUEUE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HideDrainLines) for f in logger.filters):
            logger.addFilter(_HideDrainLines())


def flush_before_exit() -> None:
    """Send the last events and log batch while the temporary server still runs (its stop is an atexit handler
    too): events first, since a flow run's last events are logged about."""
    hide_drain_lines()
    for module, name in (("prefect.events.worker", "EventsWorker"), ("prefect.logging.handlers", "APILogWorker")):
        if module not in sys.modules:
            continue
        try:
            getattr(sys.modules[module], name).drain_all(timeout=5)
        except Exception:  # noqa: BLE001, S110 - exiting anyway; the events and logs are a report
            pass
