"""A webhook hook: POST the release as JSON (tasks/decisions/hooks.py webhook_payload); 2xx means go. Any other
status (a redirect too: it is not followed), a connection error or no answer within the timeout fails the hook.
Errors are described without the URL, whose query may carry a token, and without any header value: the spec's
`secret_headers` are loaded from their Prefect Secret blocks here, just before the request
(tasks/prefect_adapter/secrets.py), and a block that cannot be loaded fails the hook naming the block."""

from __future__ import annotations

import time

import requests

from prefect_greenlight.tasks.decisions.hooks import webhook_outcome
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.prefect_adapter.secrets import SecretLoader, load_secret, secret_headers
from prefect_greenlight.tasks.spec import WebhookHook


def request_headers(hook: WebhookHook, delivery: str, load: SecretLoader = load_secret) -> dict[str, str]:
    """greenlight's own headers, the spec's plain ones and the secret ones (BadInput naming a bad block)."""
    return {"Idempotency-Key": delivery, "User-Agent": "greenlight-hook", **hook.headers,
            **secret_headers(hook.secret_headers, load).values}


def _headers_or_failure(hook: WebhookHook, delivery: str, load: SecretLoader) -> tuple[dict[str, str] | None, str]:
    try:
        return request_headers(hook, delivery, load), ""
    except BadInput as exc:  # a missing block: retrying cannot help; the message names blocks only
        return None, f"not called: {exc}"
    except Exception as exc:  # noqa: BLE001 - e.g. the Prefect API unreachable: its type, never a text to quote
        return None, f"not called: the Secret blocks could not be loaded ({type(exc).__name__})"


def call_webhook(hook: WebhookHook, payload: dict, delivery: str,
                 load: SecretLoader = load_secret) -> tuple[bool, str]:
    """(go?, what happened, with the time it took)."""
    started = time.monotonic()
    headers, failure = _headers_or_failure(hook, delivery, load)
    if headers is None:
        return False, failure
    status, error = None, ""
    try:
        resp = requests.post(hook.url, json=payload, timeout=(hook.timeout_s, hook.timeout_s),
                             allow_redirects=False, headers=headers)
        status, error = resp.status_code, resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""
    except requests.Timeout:
        error = f"no answer within {hook.timeout_s:g} s"
    except requests.RequestException as exc:
        cause = exc.__context__ or exc.__cause__
        error = f"{type(exc).__name__}" + (f" ({type(cause).__name__})" if cause is not None else "")
    ok, message = webhook_outcome(status, error, hook.timeout_s)
    return ok, f"{message} ({time.monotonic() - started:.2f} s)"
