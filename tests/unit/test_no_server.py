"""No Prefect server configured: when the temporary server is used, one line says so, telemetry is off, and a
configured server (environment or active profile) changes nothing; Prefect's queue services' drain line is hidden,
their other lines are not."""

from __future__ import annotations

import logging

import pytest

from prefect_greenlight.cli import no_server
from prefect_greenlight.cli.no_server import NOTICE, hide_drain_lines, prepare, server_configured

PROFILES = """
active = "local"
[profiles.local]
PREFECT_API_URL = "http://127.0.0.1:4200/api"
[profiles.ephemeral]
PREFECT_SERVER_ALLOW_EPHEMERAL_MODE = "true"
"""


@pytest.mark.parametrize(("env", "profiles", "configured"), [
    ({"PREFECT_API_URL": "http://127.0.0.1:4200/api"}, None, True),
    ({}, None, False),                                  # a new user: no profile file yet
    ({}, PROFILES, True),                               # the active profile names a server
    ({"PREFECT_PROFILE": "ephemeral"}, PROFILES, False),
    ({}, 'active = "ephemeral"\n[profiles.ephemeral]\n', False),
    ({}, "not = [toml", False),
    ({"PREFECT_API_URL": ""}, None, False),
])
def test_server_configured(env, profiles, configured):
    assert server_configured(env, profiles) is configured


def test_without_a_server_one_line_and_telemetry_off(tmp_path, capsys):
    env = {"HOME": str(tmp_path), "PREFECT_HOME": str(tmp_path / ".prefect")}
    assert prepare(["blue-green", "--service", "web"], env) is True
    assert capsys.readouterr().err == NOTICE + "\n"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and env["DO_NOT_TRACK"] == "1"
    assert "PREFECT_API_URL" in NOTICE and "prefect server start" in NOTICE and "\n" not in NOTICE
    assert prepare(["history", "--service", "web"], dict(env)) is True  # no flow: quiet, no notice
    assert capsys.readouterr().err == ""


def test_with_a_server_nothing_changes(tmp_path, capsys):
    (tmp_path / ".prefect").mkdir()
    (tmp_path / ".prefect" / "profiles.toml").write_text(PROFILES)
    env = {"HOME": str(tmp_path), "PREFECT_HOME": str(tmp_path / ".prefect")}
    assert prepare(["blue-green"], env) is False
    assert capsys.readouterr().err == "" and "PREFECT_SERVER_ANALYTICS_ENABLED" not in env


def test_the_user_keeps_telemetry_settings_they_made(tmp_path):
    env = {"HOME": str(tmp_path), "PREFECT_SERVER_ANALYTICS_ENABLED": "true"}
    prepare([], env)
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "true"
    assert no_server.FLOW_COMMANDS >= {"blue-green", "canary", "rollback"}


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())


@pytest.mark.parametrize("name", ["EventsWorker", "APILogWorker"])
def test_the_drain_line_is_hidden_and_other_warnings_are_kept(name):
    logger = logging.getLogger(name)
    keep = _Keep()
    logger.addHandler(keep)
    try:
        hide_drain_lines()
        hide_drain_lines()  # twice: one filter
        logger.warning("Still processing items: 2 items remaining...")
        logger.warning("Service %r failed to process item %r", name, "x")
    finally:
        logger.removeHandler(keep)
    assert keep.seen == [f"Service '{name}' failed to process item 'x'"]
    assert sum(type(f).__name__ == "_HideDrainLines" for f in logger.filters) == 1
