"""A Prefect server with API auth switched on (PREFECT_SERVER_API_AUTH_STRING="user:password", HTTP basic auth)
answers every API request without those credentials (PREFECT_API_AUTH_STRING on the client) with 401
`{"exception_message": "Unauthorized"}`; only GET /api/health and /api/ready stay open. Prefect's client meets
it on its first call (GET /admin/version, before any flow run exists) and raises PrefectHTTPStatusError, which
would end the command in a 60-line traceback. greenlight says instead, in one line, which server refused and which
setting to set, and exits 2 (nothing was started: the server refused the first request, so no flow run exists and
the release never read or changed the cluster).

The server reads its auth string once, at start, so a 401 in the middle of a command would take a server
restarted with other credentials; the message is the same.
"""

from __future__ import annotations

import os


def unauthorized_response(exc: BaseException):
    """The HTTP response of a 401 anywhere in `exc`'s chain of causes, else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        if getattr(response, "status_code", None) == 401:
            return response
        current = current.__cause__ or current.__context__
    return None


def _server_url(response, env: dict) -> str:
    if env.get("PREFECT_API_URL"):
        return env["PREFECT_API_URL"]
    try:
        # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
        from prefect.settings import get_current_settings

        configured = get_current_settings().api.url  # from the active Prefect profile
        if configured:
            return str(configured)
    except Exception:  # noqa: BLE001, S110 - the request's own URL names the server too
        pass
    url = getattr(getattr(response, "request", None), "url", None)
    return f"{url.scheme}://{url.netloc.decode()}" if url is not None else "(unknown)"


def _auth_string_set(env: dict) -> bool:
    if env.get("PREFECT_API_AUTH_STRING"):
        return True
    try:
        # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
        from prefect.settings import get_current_settings

        secret = get_current_settings().api.auth_string  # from the active Prefect profile
        return bool(secret and secret.get_secret_value())  # Prefect's client sends no credentials for ""
    except Exception:  # noqa: BLE001 - settings unreadable: say it is not set
        return False


def refused_credentials(exc: BaseException, env: dict | None = None) -> str | None:
    """The one-line explanation of a Prefect server's 401, or None when `exc` is not one."""
    response = unauthorized_response(exc)
    if response is None:
        return None
    env = os.environ if env is None else env
    url = _server_url(response, env)
    if _auth_string_set(env):
        why = ("refused the credentials in PREFECT_API_AUTH_STRING (HTTP 401 Unauthorized): set it to the server's "
               "PREFECT_SERVER_API_AUTH_STRING ('user:password')")
    else:
        why = ("refused the request (HTTP 401 Unauthorized): the server has API auth switched on "
               "(PREFECT_SERVER_API_AUTH_STRING); set PREFECT_API_AUTH_STRING='user:password' to the same value")
    return f"the Prefect server at {url} {why}; nothing was started"
