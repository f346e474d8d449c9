"""Rollback as an explicit compensation stack: every change a release makes pushes the step that undoes it;
on failure the stack unwinds newest first. Each undo step re-reads the cluster and decides for itself whether
it is safe (tasks/decisions/undo.py), so a failed switch-back can never be followed by removing the version that
is still serving.

(Prefect transactions were not used: a task with retries inside one rolls the transaction back on its first
failed attempt even when a retry then succeeds.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect_greenlight.tasks.errors import UndoOutcome

log = logging.getLogger(__name__)


@dataclass
class UndoStack:
    steps: list[tuple[str, Callable[[], str]]] = field(default_factory=list)

    def push(self, name: str, undo: Callable[[], str]) -> None:
        self.steps.append((name, undo))

    def __len__(self) -> int:
        return len(self.steps)

    def unwind(self) -> list[UndoOutcome]:
        """Run every undo step, newest first; a failing step is recorded and the next one still runs (each step
        checks its own safety)."""
        outcomes = []
        while self.steps:
            name, undo = self.steps.pop()
            try:
                outcomes.append(UndoOutcome(name, True, undo()))
            except Exception as exc:  # noqa: BLE001 - reported, never swallowed silently
                log.error("undo step %r failed: %s", name, exc)
                outcomes.append(UndoOutcome(name, False, str(exc)))
        return outcomes
