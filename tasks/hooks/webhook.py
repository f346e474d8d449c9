"""A webhook hook: POST the release as JSON (tasks/decisions/hooks.py webhook_payload); 2xx means go. Any other
status (a redirect too: it is not followed), a connection error or no answer within the timeout fails the hook.
Errors are described without the URL, whose query may carry a token."""

from __future__ import annotations

import time

import requests

from prefect_greenlight.tasks.decisions.hooks import webhook_outcome
from prefect_greenlight.tasks.spec import WebhookHook


def call_webhook(hook: WebhookHook, payload: dict, delivery: str) -> tuple[bool, str]:
    """(go?, what happened, with the time it took)."""
    started = time.monotonic()
    status, error = None, ""
    try:
        resp = requests.post(hook.url, json=payload, timeout=(hook.timeout_s, hook.timeout_s),
                             allow_redirects=False,
                             headers={"Idempotency-Key": delivery, "User-Agent": "greenlight-hook"})
        status, error = resp.status_code, resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""
    except requests.Timeout:
        error = f"no answer within {hook.timeout_s:g} s"
    except requests.RequestException as exc:
        cause = exc.__context__ or exc.__cause__
        error = f"{type(exc).__name__}" + (f" ({type(cause).__name__})" if cause is not None else "")
    ok, message = webhook_outcome(status, error, hook.timeout_s)
    return ok, f"{message} ({time.monotonic() - started:.2f} s)"
