"""No lost release: a release started against a busy Prefect server (50 at once on its embedded SQLite database
answer 503 "database is locked" while their flow runs are created) is retried until it starts, within a stated
budget, in two layers:

1. **Prefect's client**, on every API call: 429, 502, 503 (plus PREFECT_CLIENT_RETRY_EXTRA_CODES) and connection
   errors are retried PREFECT_CLIENT_MAX_RETRIES times after 2, 4, 8, ... s, each spread by
   ±PREFECT_CLIENT_RETRY_JITTER_FACTOR. Prefect's defaults are 5 retries (≈ 62 s) and 0.2; `client_retry_defaults`
   makes them 6 (2 + 4 + ... + 64 ≈ 126 s) and 0.5 for greenlight's processes unless the user set them: fifty
   clients that collided once retry at the same instants again unless the jitter is wide.
2. **Ours** (`start_release`): a release whose flow never began (its flow run could not be created or moved to
   Running: nothing was read or changed in the cluster) is started again after 1, 2, 4, ... s (capped at
   START_BACKOFF_CAP_S, full jitter) until START_BUDGET_S (300 s) have passed since the first try. A release whose
   flow had begun is never started again here: it rolls back on its own, and a re-run converges.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import httpx

log = logging.getLogger(__name__)

CLIENT_RETRY_DEFAULTS = {"PREFECT_CLIENT_MAX_RETRIES": "6", "PREFECT_CLIENT_RETRY_JITTER_FACTOR": "0.5"}
START_BUDGET_S = 300.0
START_BACKOFF_CAP_S = 30.0
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_BEGUN: ContextVar[list | None] = ContextVar("greenlight_release_begun", default=None)


def client_retry_defaults(environ: dict | None = None) -> None:
    """Prefect's client retry settings for this process (before Prefect is imported; it reads them at import)."""
    env = os.environ if environ is None else environ
    for key, value in CLIENT_RETRY_DEFAULTS.items():
        env.setdefault(key, value)


def release_begun() -> None:
    """The first line of a release flow's body: from here on a failure is the release's, never retried here."""
    begun = _BEGUN.get()
    if begun is not None:
        begun.append(True)


def start_retryable(exc: BaseException, begun: bool) -> bool:
    """A failure to start (the flow's body never ran) that the server may not repeat: busy, locked, unreachable."""
    if begun or not isinstance(exc, Exception):
        return False
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRYABLE_STATUS
    return "database is locked" in str(exc)


def backoff_s(attempt: int, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, 2**attempt)] s (attempt 0 -> up to 1 s)."""
    return (rng or random).uniform(0, min(START_BACKOFF_CAP_S, 2.0 ** attempt))


def start_release(flow: Callable[..., Any], params: dict[str, Any], budget_s: float = START_BUDGET_S,
                  sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Any:
    """Call a release flow; start it again while it failed before its body began, within `budget_s`."""
    first, attempt = clock(), 0
    while True:
        begun: list = []
        token = _BEGUN.set(begun)
        try:
            return flow(**params)
        except Exception as exc:
            wait = backoff_s(attempt)
            if not start_retryable(exc, bool(begun)) or clock() + wait - first > budget_s:
                raise
            log.warning("the release did not start (%s: %s); starting it again in %.1f s (attempt %d, %.0f of "
                        "%.0f s budget used)", type(exc).__name__, str(exc)[:200], wait, attempt + 2,
                        clock() - first, budget_s)
            sleep(wait)
            attempt += 1
        finally:
            _BEGUN.reset(token)
