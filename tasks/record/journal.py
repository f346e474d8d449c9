"""Everything a release tells the outside world besides its logs, in one place: the progress artifact updated per
step, the Prefect events (tasks/record/events.py), the markdown report with its before/after EndpointSlice tables, and
the entry in the Service's cluster-side history (tasks/decisions/history.py, written by tasks/kube/history.py). The
flows call it at their numbered steps; none of it can fail a release.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from prefect_greenlight.tasks.decisions.endpoints import EndpointCounts
from prefect_greenlight.tasks.decisions.history import HistoryEntry
from prefect_greenlight.tasks.kube.history import record_release
from prefect_greenlight.tasks.record.events import ReleaseEvent, emit
from prefect_greenlight.tasks.record.history import current_pipeline, current_run
from prefect_greenlight.tasks.record.report import Timeline, artifact_key, in_run, markdown_artifact

log = logging.getLogger(__name__)


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def endpoints_table(counts: EndpointCounts | None) -> str:
    """Markdown table of a Service's EndpointSlice endpoints per owning Deployment."""
    if counts is None:
        return "_not read_"
    names = sorted(set(counts.ready) | set(counts.not_ready))
    if not names:
        return "_no endpoints_"
    lines = ["| Deployment | ready | not ready |", "|---|---:|---:|"]
    lines += [f"| {n} | {counts.ready.get(n, 0)} | {counts.not_ready.get(n, 0)} |" for n in names]
    return "\n".join(lines)


UNDONE = ("rolled-back", "rejected", "aborted")
CLEANUP_FAILED = "cleanup-failed"  # released (the new version serves), but the old one was not taken out of service


def final_events(strategy: str, outcome: str) -> list[ReleaseEvent]:
    """The events that end a run. A release: completed, or rolled-back (when the undo was verified) and failed.
    A rollback or abort run that worked: rolled-back (the Service is back on the old version), nothing else.
    A release cancelled from Prefect whose undo was verified: rolled-back only (a cancel is not a failure)."""
    if outcome == "released":
        return [ReleaseEvent.COMPLETED]
    if outcome == "cancelled":  # cancelled from Prefect and undone, verified: not a failure
        return [ReleaseEvent.ROLLED_BACK]
    if strategy in ("rollback", "abort"):
        return [ReleaseEvent.ROLLED_BACK] if outcome in UNDONE else [ReleaseEvent.FAILED]
    return [ReleaseEvent.ROLLED_BACK, ReleaseEvent.FAILED] if outcome in UNDONE else [ReleaseEvent.FAILED]


def progress_percent(done: int, planned: int) -> float:
    return 100.0 if planned <= 0 else round(min(100.0, 100.0 * done / planned), 1)


@dataclass
class Journal:
    """One release's outward record. `planned` is the number of steps the progress artifact counts to."""

    kube: object
    namespace: str
    service: str
    release_id: str
    strategy: str
    planned: int
    timeline: Timeline = field(default_factory=Timeline)
    started_at: str = field(default_factory=utc_now)
    before: EndpointCounts | None = None
    _t0: float = field(default_factory=time.monotonic)
    approval_note: str = ""
    override: str = ""  # the release policy overridden (--override-freeze): in the history and every event
    asked_by: str = ""  # who or what asked (an alert), in the history and every event
    _progress_id: object = None
    _updates: ThreadPoolExecutor | None = None
    _held: float | None = None  # the last progress update while held (hold_progress)
    _holding: bool = False

    def __post_init__(self) -> None:
        self.timeline.on_step = self._progress

    # -- events ---------------------------------------------------------------------------------------------
    def event(self, kind: ReleaseEvent, **payload) -> None:
        emit(kind, self.namespace, self.service, release_id=self.release_id, strategy=self.strategy,
             override=self.override or None, asked_by=self.asked_by or None, **payload)

    def started(self, before: EndpointCounts | None, **payload) -> None:
        self.before = before
        self._start_progress()
        self.event(ReleaseEvent.STARTED, **payload)

    def approval(self, note: str, approved: bool) -> None:
        """Record the approver's answer: an artifact of its own (the history entry and, when approved, the
        Service annotation written with the switch carry it too)."""
        self.approval_note = note
        markdown_artifact(artifact_key("approval", self.service, self.release_id),
                          f"### Promotion of release `{self.release_id}` (Service `{self.service}`)\n\n{note}",
                          "approved" if approved else "rejected")

    # -- progress artifact ----------------------------------------------------------------------------------
    def _start_progress(self) -> None:
        if not in_run():
            return
        try:
            self._progress_id = create_progress_artifact(
                0.0, key=artifact_key("progress", self.service, self.release_id),
                description=f"{self.strategy} release {self.release_id} of Service {self.service}")
        except Exception as exc:  # noqa: BLE001 - a report, not a release step
            log.warning("could not create the progress artifact: %s", exc)

    def _progress(self, done: int) -> None:
        """Queue an update: one background thread sends them in order, so a release step never waits for the
        Prefect API (9 synchronous updates cost ≈ 0.35 s of a release; BENCHMARKS.md, P3)."""
        if self._progress_id is None:
            return
        if self._updates is None:
            self._updates = ThreadPoolExecutor(max_workers=1, thread_name_prefix="greenlight-progress")
        if self._holding:
            self._held = progress_percent(done, self.planned)
            return
        self._updates.submit(self._send_progress, progress_percent(done, self.planned))

    def hold_progress(self) -> None:
        """Send no progress update until `send_held_progress`: the background thread's Prefect API call (and its
        pydantic parsing) competes for the GIL with a latency-critical step — a rollback's selector PATCH to
        verified took 21-26 ms with it and 11-15 ms without (issue 24, the rollback window). An update already
        on its way is waited for (at most 2 s), so none is in flight after this returns."""
        self._holding = True
        if self._updates is not None:
            try:
                self._updates.submit(lambda: None).result(timeout=2)
            except Exception as exc:  # noqa: BLE001 - a report, not a release step
                log.warning("progress update still in flight: %s", exc)

    def send_held_progress(self) -> None:
        self._holding = False
        held, self._held = self._held, None
        if held is not None and self._updates is not None:
            self._updates.submit(self._send_progress, held)

    def _send_progress(self, percent: float) -> None:
        try:
            update_progress_artifact(self._progress_id, percent)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not update the progress artifact: %s", exc)

    def _flush_progress(self) -> None:
        if self._updates is not None:
            self._updates.shutdown(wait=True)
            self._updates = None

    # -- the end --------------------------------------------------------------------------------------------
    def finish(self, outcome: str, *, from_deployment: str, to_deployment: str, images: list[str],
               after: EndpointCounts | None, reason: str = "", details: str = "") -> None:
        """Report, history entry and final events for a release that ended (`outcome` as in HistoryEntry)."""
        run_id, run_name = current_run()
        entry = HistoryEntry(release_id=self.release_id, strategy=self.strategy, outcome=outcome,
                             from_deployment=from_deployment, to_deployment=to_deployment, images=list(images),
                             started_at=self.started_at, finished_at=utc_now(),
                             seconds=round(time.monotonic() - self._t0, 2), approval=self.approval_note,
                             reason=reason[:500], flow_run_id=run_id, flow_run_name=run_name,
                             asked_by=self.asked_by, override=self.override, **current_pipeline())
        record_release(self.kube, self.namespace, self.service, entry)
        self.send_held_progress()
        moved = outcome in ("released", CLEANUP_FAILED) or (self.strategy in ("rollback", "abort")
                                                             and outcome in UNDONE)
        if moved and outcome != CLEANUP_FAILED:
            self._progress(self.planned)
        self._flush_progress()
        md = "\n\n".join([
            f"## {self.strategy} release `{self.release_id}`: {outcome}",
            f"Service `{self.service}` in `{self.namespace}`: `{from_deployment}` → `{to_deployment}` "
            f"(`{', '.join(images)}`), {entry.seconds:.1f} s",
            self.timeline.markdown(),
            "### EndpointSlices before\n\n" + endpoints_table(self.before),
            "### EndpointSlices after\n\n" + endpoints_table(after),
            *([f"### Approval\n\n{self.approval_note}"] if self.approval_note else []),
            *([details] if details else [])])
        markdown_artifact(artifact_key(self.strategy, self.service, self.release_id), md, f"release {outcome}")
        serving = to_deployment if moved else from_deployment
        for kind in final_events(self.strategy, outcome):
            self.event(kind, outcome=outcome, deployment=serving, images=list(images), seconds=entry.seconds,
                       reason=reason[:500] or None)
