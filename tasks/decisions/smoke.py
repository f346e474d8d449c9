"""Smoke tests: HTTP checks against individual pods through port-forward, before (and optionally after) any
traffic moves: the verdict on one answer (`judge`), the port a check targets, and the summary line. Pure; the
I/O is in tasks.bluegreen.smoke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from prefect_greenlight.tasks.decisions.workload import resolve_port, service_port
from prefect_greenlight.tasks.spec import SmokeCheck


class SmokeFailure(str, Enum):
    UNREACHABLE = "unreachable"
    STATUS = "unexpected-status"
    BODY = "body-mismatch"
    SLOW = "too-slow"


@dataclass(frozen=True)
class SmokeResult:
    pod: str
    path: str
    ok: bool
    attempts: int
    status: int | None = None
    latency_ms: float | None = None
    failure: SmokeFailure | None = None
    detail: str = ""

    def row(self) -> dict:
        return {"pod": self.pod, "path": self.path, "ok": self.ok, "status": self.status,
                "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
                "attempts": self.attempts, "detail": self.detail}


def judge(check: SmokeCheck, status: int | None, body: str, latency_ms: float | None,
          error: str = "") -> tuple[SmokeFailure | None, str]:
    """Does one answer pass the check? (None, detail) on success."""
    if status is None:
        return SmokeFailure.UNREACHABLE, error or "no answer"
    if status != check.expect_status:
        return SmokeFailure.STATUS, f"HTTP {status}, expected {check.expect_status}"
    if check.body_contains is not None and check.body_contains not in body:
        return SmokeFailure.BODY, f"body lacks {check.body_contains!r}"
    if check.body_regex is not None and not re.search(check.body_regex, body):
        return SmokeFailure.BODY, f"body does not match /{check.body_regex}/"
    if check.max_latency_ms is not None and latency_ms is not None and latency_ms > check.max_latency_ms:
        return SmokeFailure.SLOW, f"{latency_ms:.0f} ms > {check.max_latency_ms:.0f} ms"
    return None, f"HTTP {status} in {latency_ms:.0f} ms" if latency_ms is not None else f"HTTP {status}"


def container_port(pod: dict, check: SmokeCheck, service_ports: list[dict] | tuple[dict, ...] = ()) -> int | None:
    """Where the check reaches this pod: its explicit port, else the Service port's targetPort resolved on the
    pod (tasks.decisions.workload). None: the pod declares no port of the name asked for."""
    return resolve_port(pod["spec"], check.port, service_port(service_ports, check.service_port))


def summarize(results: list[SmokeResult]) -> str:
    failed = [r for r in results if not r.ok]
    if not failed:
        return f"{len(results)} of {len(results)} smoke checks passed"
    first = failed[0]
    return (f"{len(failed)} of {len(results)} smoke checks failed; first: pod {first.pod} {first.path}: "
            f"{first.failure.value if first.failure else ''} ({first.detail})")
