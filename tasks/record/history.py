"""Who ran a release, for its history entry (tasks/decisions/history.py): the running Prefect flow run and the
pipeline that started it (its tags), read from Prefect's run context.
"""

from __future__ import annotations

from prefect.context import FlowRunContext, TagsContext

# Read from here by tasks/pipeline/targets.py and flows/pipeline.py (another branch's work); they now live in
# tasks/decisions/history.py.
from prefect_greenlight.tasks.decisions.history import HistoryEntry, pipeline_of, pipeline_tags, read_history

__all__ = ["HistoryEntry", "current_pipeline", "current_run", "pipeline_tags", "read_history"]


def current_run() -> tuple[str, str]:
    """(flow run id, name) of the running Prefect flow, or ("", "") outside one."""
    try:
        ctx = FlowRunContext.get()
        if ctx and ctx.flow_run:
            return str(ctx.flow_run.id), ctx.flow_run.name or ""
    except Exception:  # noqa: BLE001
        pass
    return "", ""


def current_pipeline() -> dict[str, str]:
    """The running flow's pipeline tags (see pipeline_of); all "" outside a pipeline."""
    try:
        ctx = FlowRunContext.get()
        tags = list(ctx.flow_run.tags) if ctx and ctx.flow_run else []
        return pipeline_of(tags + sorted(TagsContext.get().current_tags))
    except Exception:  # noqa: BLE001
        return pipeline_of([])
