"""A Prefect server with API auth on refuses a client without its credentials (HTTP 401): the CLI says so in one
line naming the server and the setting, exits 2, and any other error is left alone."""

from __future__ import annotations

import httpx
import pytest

from prefect_greenlight.cli import main as cli_main
from prefect_greenlight.cli.server_auth import refused_credentials
from prefect_greenlight.tasks.errors import GreenlightError

URL = "http://127.0.0.1:4391/api"


def _status_error(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", f"{URL}/admin/version")
    response = httpx.Response(code, json={"exception_message": "Unauthorized"}, request=request)
    return httpx.HTTPStatusError(f"Client error '{code}'", request=request, response=response)


def test_without_credentials_it_names_the_server_and_the_setting():
    message = refused_credentials(_status_error(401), {"PREFECT_API_URL": URL})
    assert message == (f"the Prefect server at {URL} refused the request (HTTP 401 Unauthorized): the server has API "
                       "auth switched on (PREFECT_SERVER_API_AUTH_STRING); set PREFECT_API_AUTH_STRING='user:password'"
                       " to the same value; nothing was started")


def test_with_other_credentials_it_says_they_were_refused():
    message = refused_credentials(_status_error(401), {"PREFECT_API_URL": URL, "PREFECT_API_AUTH_STRING": "a:b"})
    assert message.startswith(f"the Prefect server at {URL} refused the credentials in PREFECT_API_AUTH_STRING")
    assert "a:b" not in message  # the secret is never printed


def test_a_401_wrapped_by_greenlight_is_found_through_its_cause():
    try:
        try:
            raise _status_error(401)
        except httpx.HTTPStatusError as exc:
            raise GreenlightError("flow run x: cannot read it from Prefect") from exc
    except GreenlightError as wrapped:
        assert "refused the request (HTTP 401" in refused_credentials(wrapped, {"PREFECT_API_URL": URL})


@pytest.mark.parametrize("exc", [_status_error(403), _status_error(503), ValueError("401"), GreenlightError("x")])
def test_anything_else_is_not_about_credentials(exc):
    assert refused_credentials(exc, {"PREFECT_API_URL": URL}) is None


def test_the_cli_exits_2_with_one_line(monkeypatch, capsys):
    def refused(args):
        raise _status_error(401)

    monkeypatch.setenv("PREFECT_API_URL", URL)
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    monkeypatch.setattr(cli_main, "cmd_webhook", refused)
    assert cli_main.main(["webhook", "--url", "http://127.0.0.1:1/hook"]) == cli_main.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: the Prefect server at {URL} refused the request"), err


def test_other_errors_keep_their_exit_codes(monkeypatch, capsys):
    def fails(args):
        raise GreenlightError("flow run x: not paused")

    def crashes(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli_main, "cmd_webhook", fails)
    assert cli_main.main(["webhook", "--url", "http://127.0.0.1:1/hook"]) == cli_main.EXIT_FAILED
    assert capsys.readouterr().err == "FAILED: flow run x: not paused\n"
    monkeypatch.setattr(cli_main, "cmd_webhook", crashes)
    with pytest.raises(RuntimeError, match="a bug"):
        cli_main.main(["webhook", "--url", "http://127.0.0.1:1/hook"])
