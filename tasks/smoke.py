"""Smoke tests: HTTP checks against individual pods through port-forward, before (and optionally after) any
traffic moves. `judge` is pure; `check_pod` does the I/O with requests over a Tunnel.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import requests

from tasks.kube import Kube
from tasks.portforward import Target, Tunnel
from tasks.spec import SmokeCheck


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


def container_port(pod: dict, check: SmokeCheck) -> int:
    if check.port:
        return check.port
    for c in pod["spec"]["containers"]:
        for p in c.get("ports") or []:
            return int(p["containerPort"])
    return 80


def check_pod(kube: Kube, pod: dict, check: SmokeCheck, sleep: Callable[[float], None] = time.sleep) -> SmokeResult:
    """Try `check.attempts` times; the pod passes on the first passing answer."""
    name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
    target = Target(ns, name, container_port(pod, check))
    failure, detail, status, latency = SmokeFailure.UNREACHABLE, "", None, None
    with Tunnel(kube, target) as tunnel, requests.Session() as session:
        for attempt in range(1, check.attempts + 1):
            body, error = "", ""
            started = time.perf_counter()
            try:
                resp = session.get(tunnel.url(check.path), timeout=check.timeout_s,
                                   headers={"Connection": "close"})
                status, body = resp.status_code, resp.text
            except requests.RequestException as exc:
                status, error = None, "; ".join(tunnel.errors[-1:]) or type(exc).__name__
            latency = (time.perf_counter() - started) * 1000
            failure, detail = judge(check, status, body, latency if status is not None else None, error)
            if failure is None:
                return SmokeResult(name, check.path, True, attempt, status, latency, None, detail)
            if attempt < check.attempts:
                sleep(check.interval_s)
    return SmokeResult(name, check.path, False, check.attempts, status, latency, failure, detail)


def summarize(results: list[SmokeResult]) -> str:
    failed = [r for r in results if not r.ok]
    if not failed:
        return f"{len(results)} of {len(results)} smoke checks passed"
    first = failed[0]
    return (f"{len(failed)} of {len(results)} smoke checks failed; first: pod {first.pod} {first.path}: "
            f"{first.failure.value if first.failure else ''} ({first.detail})")
