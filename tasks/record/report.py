"""What a release tells people: progress lines (Prefect run logger inside a run, stderr outside), a timeline of
steps with durations, and Prefect artifacts (quietly skipped outside a flow run)."""

from __future__ import annotations

import logging
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging import get_run_logger

log = logging.getLogger("greenlight")


def say(message: str) -> None:
    """One progress line, with concrete counts, to whoever is watching."""
    try:
        if FlowRunContext.get() or TaskRunContext.get():
            get_run_logger().info(message)
            return
    except Exception:  # noqa: BLE001 - logging must never break a release
        pass
    print(f"[greenlight] {message}", file=sys.stderr, flush=True)


@dataclass
class Step:
    name: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass
class Timeline:
    steps: list[Step] = field(default_factory=list)
    on_step: Callable[[int], None] | None = None  # told how many steps have ended (the progress artifact)

    @contextmanager
    def step(self, name: str):
        started = time.perf_counter()
        holder = {"detail": ""}
        try:
            yield holder
        except BaseException as exc:
            first_line = (str(exc).splitlines() or [""])[0][:200]
            self.steps.append(Step(name, time.perf_counter() - started, False, first_line))
            raise
        self.steps.append(Step(name, time.perf_counter() - started, True, holder["detail"]))
        if self.on_step:
            self.on_step(sum(1 for s in self.steps if s.ok))

    def rows(self) -> list[dict]:
        return [{"step": s.name, "seconds": round(s.seconds, 2), "ok": s.ok, "detail": s.detail} for s in self.steps]

    def markdown(self) -> str:
        lines = ["| step | seconds | ok | detail |", "|---|---:|---|---|"]
        lines += [f"| {s.name} | {s.seconds:.2f} | {'yes' if s.ok else 'NO'} | {s.detail} |" for s in self.steps]
        return "\n".join(lines)


def in_run() -> bool:
    try:
        return FlowRunContext.get() is not None
    except Exception:  # noqa: BLE001
        return False


def table_artifact(key: str, rows: list[dict], description: str) -> None:
    if not in_run() or not rows:
        return
    try:
        create_table_artifact(key=key, table=rows, description=description)
    except Exception as exc:  # noqa: BLE001 - an artifact is a report, not a release step
        log.warning("could not record artifact %s: %s", key, exc)


def markdown_artifact(key: str, markdown: str, description: str) -> None:
    if not in_run():
        return
    try:
        create_markdown_artifact(key=key, markdown=markdown, description=description)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not record artifact %s: %s", key, exc)


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]
